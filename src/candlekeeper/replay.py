"""``ReplayFeed``: stored candles through the live feed's consumer API, so a strategy written
against :class:`~candlekeeper.feed.CandleFeed` runs unchanged on history.

It reads the streams from storage (a SQLite file, a PostgreSQL DSN, a config's sink), merges
them in close-time order (a k-way merge over one page per stream: memory does not grow with
the range), and hands each candle to the same pieces the live feed uses: the stream's
:class:`~candlekeeper.core.buffers.RingBuffer` first (so ``latest()`` inside a handler already
holds the candle, as live), then the :class:`~candlekeeper.core.bus.EventBus` topic
``CandleClosed``. ``on_closed`` handlers, ``async for c in feed.closed()``, ``latest()`` and
``latest_df()`` therefore behave as live; ``closed()`` ends when the replay does.

``speed=None`` replays as fast as the consumers take it: a ``BLOCK`` subscriber whose queue is
full pauses the replay (the bus's backpressure), nothing is dropped. ``speed=60`` paces the
candles by their close times, 60 × real time.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from candlekeeper.core.buffers import DEFAULT_CAPACITY, BufferSet
from candlekeeper.core.bus import EventBus, OverflowPolicy, Subscription
from candlekeeper.core.candle import Candle
from candlekeeper.core.events import CandleClosed, CandleUpdate, StreamStatus
from candlekeeper.core.intervals import INTERVAL_MS
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError
from candlekeeper.stored import DEFAULT_PAGE_ROWS, StoredCandles
from candlekeeper.venues.registry import VENUES, canonical_symbol

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from candlekeeper.config import Config
    from candlekeeper.feed import CandleHandler, StatusHandler

__all__ = ["ReplayFeed"]

log = logging.getLogger(__name__)

#: a replay yields to the event loop this often even when no consumer is full, so handlers
#: and other tasks run while it emits
_YIELD_EVERY = 256
#: consumers drain whatever is queued when the replay ends, however long it takes
_DRAIN_S = 365 * 86_400.0

Source = StoredCandles | str | Path
#: a time: Unix ms, an aware datetime (a naive one is UTC), or ISO text (``2024-01-01``)
Instant = int | datetime | str


class ReplayFeed:
    """Stored candles of ``symbols × intervals`` (or exactly ``keys``; neither: every stored
    stream) with ``start <= open_time < end`` (Unix ms, datetimes or ISO text), emitted as
    closed candles.

    ``source``: a SQLite path, a PostgreSQL DSN, a :class:`StoredCandles`, or a
    :class:`~candlekeeper.config.Config` (its ``sink``, default the first readable). ``venue``
    narrows the stored streams (needed to name symbols in the venue's own ways).

    Subscribe before the replay runs — ``on_closed`` before ``start()``, or begin iterating
    ``closed()`` right after it: the first candle goes out at the first ``await`` after
    ``start()`` returns.
    """

    def __init__(self, source: Source | Config, symbols: Sequence[str] = (),
                 intervals: Sequence[str] = (), *, venue: str | None = None,
                 keys: Sequence[StreamKey] | None = None, start: Instant | None = None,
                 end: Instant | None = None, speed: float | None = None, sink: str | None = None,
                 buffer_size: int = DEFAULT_CAPACITY, history: int = 0,
                 page_rows: int = DEFAULT_PAGE_ROWS) -> None:
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise ConfigError(f"speed must be a positive number or None, got {speed!r}")
        if keys is not None and (symbols or intervals):
            raise ConfigError("give a replay symbols and intervals, or keys, not both")
        if history < 0:
            raise ConfigError(f"history must be >= 0, got {history}")
        if venue is not None and venue not in VENUES:
            raise ConfigError(f"unknown venue {venue!r}; expected one of {', '.join(VENUES)}")
        self.source = source if isinstance(source, StoredCandles) else StoredCandles.of(
            source, sink=sink)
        self.venue = venue
        self._want = (list(symbols), list(intervals), None if keys is None else list(keys))
        self.keys: list[StreamKey] = []
        self.start_ms, self.end_ms, self.speed = _ms(start), _ms(end), speed
        self.page_rows = page_rows
        self.history = history
        self.bus = EventBus()
        self._buffers = BufferSet(buffer_size)
        self._history_handlers: list[Callable[[list[Candle]], object]] = []
        self._task: asyncio.Task[None] | None = None
        self._started = False
        #: set when every candle was emitted and every consumer has drained
        self.done = asyncio.Event()
        #: candles emitted so far
        self.emitted = 0
        self._ending = False
        self.error: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the source, resolve the streams and begin the replay. Idempotent."""
        if self._started:
            return
        self._started = True
        await self.source.open()
        try:
            self.keys = await self._resolve()
        except BaseException:
            await self.source.close()
            raise
        for key in self.keys:
            self._buffers.get(key)
        try:
            await self._warm_up()
        except BaseException:
            await self.source.close()
            raise
        await self.bus.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="replay")

    async def wait(self) -> None:
        """Until the replay has ended and the consumers drained it; re-raises its error."""
        await self.done.wait()
        if self.error is not None:
            raise self.error

    async def stop(self) -> None:
        """End the replay now (or after it ended): stop emitting, drain, close. Idempotent."""
        if not self._started:
            return
        self._started = False
        task = self._task
        if task is not None and not task.done():
            if not self._ending:  # still emitting: stop there; finishing: let it drain
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._finish()

    async def __aenter__(self) -> ReplayFeed:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _resolve(self) -> list[StreamKey]:
        symbols, intervals, keys = self._want
        venue = self.venue
        if keys is not None:
            return list(dict.fromkeys(keys))
        if venue is not None and symbols and intervals:
            return list(dict.fromkeys(StreamKey(venue, canonical_symbol(venue, s), i)
                                      for s in symbols for i in intervals))
        found = []
        for k in await self.source.keys():
            if venue is not None and k.venue != venue:
                continue
            if intervals and k.interval not in intervals:
                continue
            if symbols and k.symbol not in {_canonical(k.venue, s) for s in symbols}:
                continue
            found.append(k)
        if not found:
            raise ConfigError(f"no stored stream in {self.source.shown} matches the replay")
        return found

    async def _warm_up(self) -> None:
        """As a live feed warms its buffers from REST: the stored candles of the ``history``
        intervals before ``start`` go into the buffers and to ``on_history`` handlers, not out
        as closes."""
        start = self.start_ms
        if not self.history or start is None:
            return
        for key in self.keys:
            after = start - self.history * INTERVAL_MS[key.interval] - 1
            candles = await self.source.page(key, after, start, self.history)
            if not candles:
                continue
            self._buffers.get(key).extend(candles)
            for handler in self._history_handlers:
                try:
                    handler(list(candles))
                except Exception as exc:  # a consumer's bug must not cost the replay
                    log.error("history handler raised %r", exc)

    # -- the replay -------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await asyncio.sleep(0)  # let the caller subscribe (see the class docstring)
            await self._emit_all()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a database failure mid-replay: end, and say why (wait())
            self.error = exc
        await self._finish()

    async def _emit_all(self) -> None:
        loop = asyncio.get_running_loop()
        subs = self.bus.subscribers(CandleClosed)
        pressure = self.bus.pressure_flag
        t0: float | None = None
        first_close = 0
        n = 0
        async for candle in self._merged():
            if self.speed is not None:
                if t0 is None:
                    t0, first_close = loop.time(), candle.close_time
                delay = t0 + (candle.close_time - first_close) / 1000 / self.speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            self._buffers.get(candle.key).append(candle)
            for sub in subs:
                sub.offer(candle)
            self.emitted += 1
            n += 1
            if pressure.on:
                await self.bus.relieve()
            elif n % _YIELD_EVERY == 0:
                await asyncio.sleep(0)

    async def _merged(self) -> AsyncIterator[Candle]:
        """Every stream's candles in close-time order (ties: the streams' order): a k-way merge
        holding one page per stream."""
        pages = [self.source.pages(k, self.start_ms, self.end_ms, self.page_rows)
                 for k in self.keys]
        heads: list[list[Candle]] = [[] for _ in pages]
        heap: list[tuple[int, int, int]] = []  # close time, stream index, position in its page

        async def refill(i: int) -> None:
            heads[i] = await anext(pages[i], [])
            if heads[i]:
                heapq.heappush(heap, (heads[i][0].close_time, i, 0))

        for i in range(len(pages)):
            await refill(i)
        while heap:
            _, i, pos = heapq.heappop(heap)
            yield heads[i][pos]
            if pos + 1 < len(heads[i]):
                heapq.heappush(heap, (heads[i][pos + 1].close_time, i, pos + 1))
            else:
                await refill(i)

    async def _finish(self) -> None:
        if self._ending:
            return
        self._ending = True  # from here on a new closed()/updates() ends at once
        await self.bus.stop(timeout=_DRAIN_S)  # handlers drain; closed() iterators end
        await self.source.close()
        self.done.set()

    # -- consumer API (as CandleFeed's) -------------------------------------------------------
    def on_closed(self, handler: CandleHandler, *, maxsize: int = 100_000,
                  policy: OverflowPolicy = OverflowPolicy.BLOCK,
                  inline: bool = False) -> Subscription[Any]:
        """Call ``handler(candle)`` once per replayed candle, in close-time order. The default
        policy never drops: a slow handler slows the replay down."""
        return self.bus.subscribe(CandleClosed, handler, maxsize=maxsize, policy=policy,
                                  inline=inline, name=str(getattr(handler, "__qualname__",
                                                                  repr(handler))))

    async def closed(self, *, maxsize: int = 100_000) -> AsyncIterator[Candle]:
        """Iterate over the replayed candles; ends when the replay has ended."""
        if self._ending:
            return
        async for candle in self.bus.stream(CandleClosed, maxsize=maxsize, name="closed()"):
            yield candle

    def on_history(self, handler: Callable[[list[Candle]], object]) -> None:
        """Call ``handler(candles)`` with each stream's warm-up history (``history=N``: the
        stored candles of the N intervals before ``start``, oldest first), before the replay
        emits anything — as a live feed's REST warm-up."""
        self._history_handlers.append(handler)

    def on_update(self, handler: CandleHandler, *, maxsize: int = 10_000,
                  policy: OverflowPolicy = OverflowPolicy.DROP_OLDEST,
                  inline: bool = False) -> Subscription[Any]:
        """Accepted so that live code runs unchanged; storage holds no forming candles, so a
        replay publishes no updates."""
        return self.bus.subscribe(CandleUpdate, handler, maxsize=maxsize, policy=policy,
                                  inline=inline)

    async def updates(self, *, maxsize: int = 10_000) -> AsyncIterator[Candle]:
        """As ``on_update``: no updates; the iteration ends when the replay does."""
        if self._ending:
            return
        async for candle in self.bus.stream(CandleUpdate, maxsize=maxsize,
                                            policy=OverflowPolicy.DROP_OLDEST, name="updates()"):
            yield candle

    def on_status(self, handler: StatusHandler) -> Subscription[StreamStatus]:
        """Accepted so that live code runs unchanged; a replay has no connection states."""
        return self.bus.subscribe(StreamStatus, handler, maxsize=10_000,
                                  policy=OverflowPolicy.DROP_OLDEST)

    def latest(self, symbol: str, interval: str, n: int | None = None) -> list[Candle]:
        """The newest ``n`` replayed candles, oldest first. Safe to call from any thread."""
        return self._buffers.get(self._key(symbol, interval)).latest(n)

    def latest_df(self, symbol: str, interval: str, n: int | None = None) -> pd.DataFrame:
        return self._buffers.get(self._key(symbol, interval)).latest_df(n)

    def _key(self, symbol: str, interval: str) -> StreamKey:
        for k in self.keys:
            if k.interval == interval and k.symbol == _canonical(k.venue, symbol):
                return k
        raise KeyError(f"the replay has no stream {symbol} {interval}")


def _ms(value: Instant | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"{value!r} is not a time: give Unix ms, a datetime or ISO text "
                              "such as 2024-01-01T12:00") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _canonical(venue: str, symbol: str) -> str:
    return canonical_symbol(venue, symbol) if venue in VENUES else symbol
