"""The asynchronous face of a :class:`~candlekeeper.sinks.journal.Journal` for the writer.

Every journal call runs on one dedicated worker thread, so ``fsync`` never stalls the event loop
and the calls reach the disk in the order they were made (a single thread is a queue). Appends
are *shielded*: if the writer task is cancelled while an append is on the thread (a drain deadline
during shutdown), the append still completes, and :meth:`JournalSpool.settle` tells the writer
whether those candles reached the disk — so a cancelled spill can neither lose nor duplicate them.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from candlekeeper.core.candle import Candle
from candlekeeper.sinks.journal import Journal, JournalRecord

__all__ = ["JournalSpool"]

_T = TypeVar("_T")


class JournalSpool:
    """Runs a journal on its own thread; see the module docstring."""

    def __init__(self, directory: str | Path, *, name: str, segment_bytes: int = 64 << 20,
                 max_bytes: int | None = None) -> None:
        self.journal = Journal(directory, segment_bytes=segment_bytes, max_bytes=max_bytes)
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        #: the append in progress (possibly orphaned by a cancelled caller) and its candles
        self.spilling: list[Candle] = []
        self._spill_future: asyncio.Future[int] | None = None

    @property
    def rows(self) -> int:
        return self.journal.rows

    @property
    def bytes(self) -> int:
        return self.journal.bytes

    @property
    def oldest_ms(self) -> int | None:
        return self.journal.oldest_ms

    async def _call(self, fn: Callable[..., _T], *args: object, **kwargs: object) -> _T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1,
                                                thread_name_prefix=f"journal-{self._name}")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def open(self) -> None:
        await self._call(self.journal.open)

    async def append(self, candles: list[Candle], *, oldest_ms: int, record_rows: int) -> None:
        """Append durably; raises ``JournalError`` (nothing appended) on failure. If the caller
        is cancelled the append continues; call :meth:`settle` before trusting ``spilling``."""
        self.spilling = candles
        future = asyncio.ensure_future(self._call(self.journal.append, candles,
                                                  oldest_ms=oldest_ms, record_rows=record_rows))
        self._spill_future = future
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            raise  # the append goes on in its thread: settle() resolves it
        finally:
            if future.done():
                self._spill_future = None
                self.spilling = []

    async def settle(self) -> list[Candle]:
        """Wait for an append orphaned by cancellation; return its candles if it failed (they
        are still only in memory), else an empty list."""
        future, self._spill_future = self._spill_future, None
        candles, self.spilling = self.spilling, []
        if future is None:
            return candles
        try:
            await future
        except Exception:
            return candles
        return []

    async def peek(self) -> JournalRecord | None:
        return await self._call(self.journal.peek)

    async def ack(self, record: JournalRecord) -> None:
        await self._call(self.journal.ack, record)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            self.journal.close()
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(executor, self.journal.close)
        finally:
            executor.shutdown(wait=False)
