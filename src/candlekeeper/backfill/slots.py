"""Request slots served by priority: what keeps the live guarantee goes before deep history.

Every REST request of a venue shares one budget, and at start-up thousands of streams may want
history at once (a universe warm-up takes minutes inside the budget). A plain semaphore serves
them first come, first served, so a hole in a live stream, a late close or a resume after a
restart would queue behind minutes of warm-up. :class:`PrioritySlots` bounds the requests in
flight the same way but hands a freed slot to the waiter with the smallest priority (ties in
arrival order); the shared budget behind it only ever sees a handful of requests, so the order
chosen here is the order the venue sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator
from typing import Final

#: (class, rank): smaller goes first
Priority = tuple[int, int]

#: holes, late and fast closes, polls, confirmations, breaks: the live guarantee
LIVE: Final[Priority] = (0, 0)


def resume(gap_candles: int) -> Priority:
    """A stream catching up to its last stored candle after a restart: smallest gaps first."""
    return (1, gap_candles)


def warm_up(interval_ms: int) -> Priority:
    """History behind a stream that is already live: shortest intervals first."""
    return (2, interval_ms)


class PrioritySlots:
    """At most ``n`` holders at once; waiters served by priority, then arrival."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError("n must be >= 1")
        self._free = n
        self._waiters: list[tuple[Priority, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())

    @contextlib.asynccontextmanager
    async def take(self, priority: Priority = LIVE) -> AsyncIterator[None]:
        if self._free > 0 and not self.waiting:
            self._free -= 1
        else:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiters, (priority, next(self._order), fut))
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._release()  # granted as we were cancelled: pass it on
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1
