"""In-process publish/subscribe for feed events.

Why it looks like this:

* ``publish`` is synchronous and never awaits, so the WebSocket read loop is not slowed by a
  consumer. Each subscriber has its own bounded queue drained by its own task; a slow consumer
  only affects itself, according to its declared :class:`OverflowPolicy`.
* ``BLOCK`` subscribers (e.g. a consumer that must see every closed candle) never lose events:
  the queue accepts the event and raises ``under_pressure``; the publisher then awaits
  :meth:`EventBus.relieve` to apply backpressure upstream instead of dropping.
* A handler that raises is logged (rate-limited) and counted; it never kills the feed or the
  subscriber's task.
* ``inline=True`` runs a sync handler inside ``publish`` itself: zero-latency, used by internal
  components and latency-critical strategies that promise to be fast.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

from candlekeeper.observability.logging import RateLimitedLog

log = logging.getLogger(__name__)
_limited = RateLimitedLog(log)

E = TypeVar("E")
Handler = Callable[[E], None] | Callable[[E], Awaitable[None]]


class OverflowPolicy(enum.StrEnum):
    """What a full subscriber queue does with a new event."""

    DROP_OLDEST = "drop_oldest"  # keep the newest events (right for live updates)
    DROP_NEWEST = "drop_newest"  # keep what is queued, refuse the new event
    BLOCK = "block"  # never drop: apply backpressure to the publisher


class Subscription(Generic[E]):
    """One subscriber: a bounded queue plus counters."""

    def __init__(self, name: str, maxsize: int, policy: OverflowPolicy) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.name = name
        self.maxsize = maxsize
        self.policy = policy
        self.queue: deque[E] = deque()
        self.delivered = 0
        self.dropped = 0
        self.errors = 0
        self.closed = False
        self._wakeup = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()

    def offer(self, event: E) -> None:
        q = self.queue
        if len(q) >= self.maxsize:
            if self.policy is OverflowPolicy.DROP_OLDEST:
                q.popleft()
                self.dropped += 1
            elif self.policy is OverflowPolicy.DROP_NEWEST:
                self.dropped += 1
                return
            else:
                self._space.clear()
        q.append(event)
        self._wakeup.set()

    @property
    def full(self) -> bool:
        return len(self.queue) >= self.maxsize

    async def wait_space(self) -> None:
        while self.full and not self.closed:
            self._space.clear()
            await self._space.wait()

    def _took(self) -> None:
        if len(self.queue) < self.maxsize:
            self._space.set()

    async def get_batch(self) -> list[E]:
        """Wait for at least one event and take everything queued (or [] once closed)."""
        while not self.queue:
            if self.closed:
                return []
            self._wakeup.clear()
            await self._wakeup.wait()
        batch = list(self.queue)
        self.queue.clear()
        self._space.set()
        return batch

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()
        self._space.set()


class _HandlerSubscription(Subscription[E]):
    def __init__(self, name: str, handler: Handler[E], maxsize: int,
                 policy: OverflowPolicy) -> None:
        super().__init__(name, maxsize, policy)
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - callable objects with async __call__
        )
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        handler = self.handler
        while True:
            if not self.queue:
                if self.closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            event = self.queue.popleft()
            self._took()
            try:
                result = handler(event)
                if self.is_async:
                    await result  # type: ignore[misc]
                self.delivered += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.errors += 1
                _limited.error(f"handler:{self.name}", "event handler %s raised %r; continuing",
                               self.name, exc)


class _InlineSubscription(Subscription[E]):
    def __init__(self, name: str, handler: Callable[[E], None]) -> None:
        super().__init__(name, 1, OverflowPolicy.DROP_NEWEST)
        self.handler = handler

    def offer(self, event: E) -> None:
        try:
            self.handler(event)
            self.delivered += 1
        except Exception as exc:
            self.errors += 1
            _limited.error(f"handler:{self.name}", "inline handler %s raised %r; continuing",
                           self.name, exc)


class EventBus:
    """Routes events by their exact type to subscribers."""

    def __init__(self) -> None:
        self._subs: dict[type[Any], list[Subscription[Any]]] = {}
        self._blocking: list[Subscription[Any]] = []
        self._running = False

    # -- subscribing ------------------------------------------------------------------------
    def subscribe(self, event_type: type[E], handler: Handler[E], *, maxsize: int = 10_000,
                  policy: OverflowPolicy = OverflowPolicy.BLOCK, inline: bool = False,
                  name: str | None = None) -> Subscription[E]:
        """Call ``handler`` (sync or async) for every event of ``event_type``."""
        label = str(name or getattr(handler, "__qualname__", repr(handler)))
        sub: Subscription[E]
        if inline:
            if inspect.iscoroutinefunction(handler):
                raise TypeError("inline handlers must be synchronous")
            sub = _InlineSubscription(label, handler)  # type: ignore[arg-type]
        else:
            hsub = _HandlerSubscription(label, handler, maxsize, policy)
            if self._running:
                hsub.task = asyncio.get_running_loop().create_task(hsub.run(), name=label)
            sub = hsub
        self._add(event_type, sub)
        return sub

    def stream(self, event_type: type[E], *, maxsize: int = 10_000,
               policy: OverflowPolicy = OverflowPolicy.BLOCK,
               name: str = "iterator") -> AsyncIterator[E]:
        """An async iterator over events of ``event_type`` (ends when the bus stops)."""
        sub: Subscription[E] = Subscription(name, maxsize, policy)
        self._add(event_type, sub)
        return self._iterate(event_type, sub)

    async def _iterate(self, event_type: type[E], sub: Subscription[E]) -> AsyncIterator[E]:
        try:
            while True:
                batch = await sub.get_batch()
                if not batch:
                    return
                for event in batch:
                    sub.delivered += 1
                    yield event
        finally:
            self.unsubscribe(event_type, sub)

    def _add(self, event_type: type[Any], sub: Subscription[Any]) -> None:
        self._subs.setdefault(event_type, []).append(sub)
        if sub.policy is OverflowPolicy.BLOCK and not isinstance(sub, _InlineSubscription):
            self._blocking.append(sub)

    def unsubscribe(self, event_type: type[Any], sub: Subscription[Any]) -> None:
        subs = self._subs.get(event_type, [])
        if sub in subs:
            subs.remove(sub)
        if sub in self._blocking:
            self._blocking.remove(sub)
        sub.close()

    def subscriptions(self) -> list[tuple[type[Any], Subscription[Any]]]:
        return [(t, s) for t, subs in self._subs.items() for s in subs]

    # -- publishing -------------------------------------------------------------------------
    def publish(self, event: Any) -> None:
        """Hand ``event`` to every subscriber of its type. Never blocks, never raises."""
        subs = self._subs.get(type(event))
        if subs:
            for sub in subs:
                sub.offer(event)

    @property
    def under_pressure(self) -> bool:
        """True when a BLOCK subscriber is at capacity; the publisher should ``await relieve()``.

        The transport asks this after every kline, so it is a plain loop: ``any()`` over a
        generator cost ~0.1 µs more per message, even with no BLOCK subscriber at all
        (``benchmarks/README.md``)."""
        for s in self._blocking:  # noqa: SIM110 - any(genexpr) is the slow version
            if len(s.queue) >= s.maxsize:
                return True
        return False

    async def relieve(self) -> None:
        for sub in list(self._blocking):
            await sub.wait_space()

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        loop = asyncio.get_running_loop()
        for _, sub in self.subscriptions():
            if isinstance(sub, _HandlerSubscription) and sub.task is None:
                sub.task = loop.create_task(sub.run(), name=sub.name)

    async def stop(self, timeout: float = 10.0) -> None:
        """Let every handler drain its queue (within ``timeout``), then stop."""
        if not self._running:
            return
        self._running = False
        subs = [s for _, s in self.subscriptions()]
        for sub in subs:
            sub.close()
        tasks = [s.task for s in subs if isinstance(s, _HandlerSubscription) and s.task]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                log.warning("handler %s did not drain within %.1fs; cancelling",
                            task.get_name(), timeout)
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for sub in subs:
            if isinstance(sub, _HandlerSubscription):
                sub.task = None
