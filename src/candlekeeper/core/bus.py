"""In-process publish/subscribe for feed events.

Why it looks like this:

* **Topics.** Subscribers register for a topic: an event type (``StreamStatus``: the payload is
  the event) or a marker topic whose payload is something else (``CandleClosed`` and
  ``CandleUpdate`` carry the :class:`Candle` itself, so the per-frame path allocates no
  envelope object).
* ``publish`` is synchronous and never awaits, so the WebSocket read loop is not slowed by a
  consumer. Each subscriber has its own bounded queue drained by its own task, in batches; a slow
  consumer only affects itself, according to its declared :class:`OverflowPolicy`.
* ``BLOCK`` subscribers (e.g. a consumer that must see every closed candle) never lose events:
  the queue accepts the event and sets :attr:`EventBus.pressure`; the publisher then awaits
  :meth:`EventBus.relieve` to apply backpressure upstream (the transport stops reading the
  socket) instead of dropping.
* A handler that raises is logged (rate-limited) and counted; it never kills the feed or the
  subscriber's task.
* ``inline=True`` runs a sync handler inside ``publish`` itself: zero-latency, used by internal
  components (storage) and latency-critical strategies that promise to be fast.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

from candlekeeper.core.ratelog import RateLimitedLog

log = logging.getLogger(__name__)
_limited = RateLimitedLog(log)

E = TypeVar("E")
Handler = Callable[[E], None] | Callable[[E], Awaitable[None]]


class OverflowPolicy(enum.StrEnum):
    """What a full subscriber queue does with a new event."""

    DROP_OLDEST = "drop_oldest"  # keep the newest events (right for live updates)
    DROP_NEWEST = "drop_newest"  # keep what is queued, refuse the new event
    BLOCK = "block"  # never drop: apply backpressure to the publisher


class PressureFlag:
    """Shared flag a BLOCK queue raises when full; read once per frame by the publisher."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = False


_Pressure = PressureFlag


class Subscription(Generic[E]):
    """One subscriber: a bounded queue plus counters."""

    def __init__(self, name: str, maxsize: int, policy: OverflowPolicy,
                 pressure: _Pressure | None = None) -> None:
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
        self._pressure = pressure or _Pressure()
        #: the consumer's pending wait, if it is idle (a bare future: cheaper to check per
        #: event than ``asyncio.Event.set``, which the hot path would call for every frame)
        self._waiter: asyncio.Future[None] | None = None
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
                self._pressure.on = True
        q.append(event)
        if self._waiter is not None:
            self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def full(self) -> bool:
        return len(self.queue) >= self.maxsize

    async def wait_space(self) -> None:
        while self.full and not self.closed:
            self._space.clear()
            await self._space.wait()

    async def get_batch(self) -> list[E]:
        """Wait for at least one event and take everything queued (or [] once closed)."""
        while not self.queue:
            if self.closed:
                return []
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        batch = list(self.queue)
        self.queue.clear()
        self._space.set()
        return batch

    def close(self) -> None:
        self.closed = True
        self._wake()
        self._space.set()


class _HandlerSubscription(Subscription[E]):
    def __init__(self, name: str, handler: Handler[E], maxsize: int,
                 policy: OverflowPolicy, pressure: _Pressure) -> None:
        super().__init__(name, maxsize, policy, pressure)
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - callable objects with async __call__
        )
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Drain the queue in batches: one wake-up per burst, not per event."""
        while True:
            batch = await self.get_batch()
            if not batch:
                return
            if self.is_async:
                await self._run_async(batch)
            else:
                self._run_sync(batch)

    def _run_sync(self, batch: list[E]) -> None:
        handler = self.handler
        ok = 0
        for event in batch:
            try:
                handler(event)
                ok += 1
            except Exception as exc:
                self._failed(exc)
        self.delivered += ok

    async def _run_async(self, batch: list[E]) -> None:
        handler = self.handler
        for event in batch:
            try:
                await handler(event)  # type: ignore[misc]
                self.delivered += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(exc)

    def _failed(self, exc: Exception) -> None:
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
    """Routes payloads by topic to subscribers."""

    def __init__(self) -> None:
        self._subs: dict[object, list[Subscription[Any]]] = {}
        self._blocking: list[Subscription[Any]] = []
        self._pressure = _Pressure()
        self._running = False

    # -- subscribing ------------------------------------------------------------------------
    def subscribe(self, topic: object, handler: Handler[Any], *, maxsize: int = 10_000,
                  policy: OverflowPolicy = OverflowPolicy.BLOCK, inline: bool = False,
                  name: str | None = None) -> Subscription[Any]:
        """Call ``handler`` (sync or async) for every payload published on ``topic``."""
        label = str(name or getattr(handler, "__qualname__", repr(handler)))
        sub: Subscription[Any]
        if inline:
            if inspect.iscoroutinefunction(handler):
                raise TypeError("inline handlers must be synchronous")
            sub = _InlineSubscription(label, handler)  # type: ignore[arg-type]
        else:
            hsub = _HandlerSubscription(label, handler, maxsize, policy, self._pressure)
            if self._running:
                hsub.task = asyncio.get_running_loop().create_task(hsub.run(), name=label)
            sub = hsub
        self._add(topic, sub)
        return sub

    def stream(self, topic: object, *, maxsize: int = 10_000,
               policy: OverflowPolicy = OverflowPolicy.BLOCK,
               name: str = "iterator") -> AsyncIterator[Any]:
        """An async iterator over the payloads of ``topic`` (ends when the bus stops)."""
        sub: Subscription[Any] = Subscription(name, maxsize, policy, self._pressure)
        self._add(topic, sub)
        return self._iterate(topic, sub)

    async def _iterate(self, topic: object, sub: Subscription[Any]) -> AsyncIterator[Any]:
        try:
            while True:
                batch = await sub.get_batch()
                if not batch:
                    return
                for event in batch:
                    sub.delivered += 1
                    yield event
        finally:
            self.unsubscribe(topic, sub)

    def _add(self, topic: object, sub: Subscription[Any]) -> None:
        self.subscribers(topic).append(sub)
        if sub.policy is OverflowPolicy.BLOCK and not isinstance(sub, _InlineSubscription):
            self._blocking.append(sub)

    def subscribers(self, topic: object) -> list[Subscription[Any]]:
        """The live list of ``topic``'s subscribers. Publishers on the hot path may keep it and
        call ``offer`` on each element themselves; it is updated in place."""
        subs = self._subs.get(topic)
        if subs is None:
            subs = self._subs[topic] = []
        return subs

    def unsubscribe(self, topic: object, sub: Subscription[Any]) -> None:
        subs = self._subs.get(topic, [])
        if sub in subs:
            subs.remove(sub)
        if sub in self._blocking:
            self._blocking.remove(sub)
        sub.close()

    def subscriptions(self) -> list[tuple[object, Subscription[Any]]]:
        return [(t, s) for t, subs in self._subs.items() for s in subs]

    # -- publishing -------------------------------------------------------------------------
    def publish(self, event: Any) -> None:
        """Hand ``event`` to every subscriber of its type. Never blocks, never raises."""
        topic: object = type(event)
        subs = self._subs.get(topic)
        if subs:
            for sub in subs:
                sub.offer(event)

    def publish_to(self, topic: object, payload: Any) -> None:
        """Hand ``payload`` to every subscriber of ``topic``."""
        subs = self._subs.get(topic)
        if subs:
            for sub in subs:
                sub.offer(payload)

    @property
    def pressure_flag(self) -> PressureFlag:
        """The flag object itself, for publishers that check it once per frame."""
        return self._pressure

    @property
    def pressure(self) -> bool:
        """True once a BLOCK subscriber hit capacity; the publisher should ``await relieve()``.
        A plain flag (not a scan of the queues) because the transport asks after every frame."""
        return self._pressure.on

    async def relieve(self) -> None:
        """Wait until every BLOCK subscriber has room again, then clear the pressure flag."""
        for sub in list(self._blocking):
            await sub.wait_space()
        self._pressure.on = False

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
        self._pressure.on = False
