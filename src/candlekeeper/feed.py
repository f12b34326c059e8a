"""``CandleFeed``: the library face of candlekeeper.

A feed owns one venue's streams (``symbols × intervals``): a connection pool that shards them,
one ring buffer per stream, and an event bus. It turns the raw per-frame candles from the
transport into the two guarantees users build on:

* every live frame is offered as an update (``on_update`` / ``updates()``), and
* each closed candle is emitted **exactly once per (venue, symbol, interval, open_time), in
  open-time order per stream** (``on_closed`` / ``closed()``), even when the exchange repeats
  the closed frame or an older one arrives late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from candlekeeper.backfill.fetcher import KlineFetcher
from candlekeeper.backfill.http import RestClient
from candlekeeper.core.buffers import DEFAULT_CAPACITY, BufferSet, RingBuffer, to_dataframe
from candlekeeper.core.bus import EventBus, OverflowPolicy, Subscription
from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import Clock, SystemClock
from candlekeeper.core.events import (
    CandleClosed,
    CandleUpdate,
    ConnectionStatus,
    StreamState,
    StreamStatus,
)
from candlekeeper.core.sequence import Offer, StreamSequence
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.core.symbols import normalize_symbol
from candlekeeper.errors import ConfigError
from candlekeeper.gapfill import GapFiller, GapFillOptions, HistorySource
from candlekeeper.observability.metrics import Metrics, StreamMetrics
from candlekeeper.transport import ConnectionPool, SessionStats, TransportOptions
from candlekeeper.venues.contract import HistoryCodec, StreamCodec
from candlekeeper.venues.registry import history_codec, stream_codec

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from candlekeeper.transport.base import Connector

log = logging.getLogger(__name__)

#: transport states after which a stream may have missed closes
_BREAKS = frozenset({StreamState.DISCONNECTED, StreamState.STALLED, StreamState.SILENT})

CandleHandler = Callable[[Candle], None] | Callable[[Candle], Awaitable[None]]
StatusHandler = Callable[[StreamStatus], None] | Callable[[StreamStatus], Awaitable[None]]


class StreamStats:
    """One stream inside the feed: its hot path and the state behind its guarantees.

    :meth:`deliver` is what the transport calls for every kline frame of this stream (resolved
    once per stream, so no per-frame lookup). Closed candles go through ``seq`` (a
    :class:`StreamSequence`), which emits each open time exactly once and in order, holding
    closes that skip ahead until the gap filler has fetched what is missing. Counters shown on
    ``/metrics`` and the dashboard live in ``metrics`` (shared with the service's
    :class:`Metrics`).
    """

    __slots__ = ("_closed_subs", "_on_hole", "_pressure", "_update_subs", "buffer", "forming",
                 "infer_close", "key", "last_closed", "metrics", "now_ms", "seq")

    def __init__(self, key: StreamKey, metrics: StreamMetrics, buffer: RingBuffer, bus: EventBus,
                 now_ms: Callable[[], int], on_hole: Callable[[StreamKey], None], *,
                 closed_flag: bool = True) -> None:
        self.key = key
        self.metrics = metrics
        self.buffer = buffer
        self.last_closed: Candle | None = None
        self.now_ms = now_ms
        #: no closed flag on the wire: a push for a newer candle closes the forming one;
        #: that inferred close is held until REST confirms it (REST wins where they differ)
        self.infer_close = not closed_flag
        self.forming: Candle | None = None
        self.seq = StreamSequence(key.interval, self._emit, prefer_rest=self.infer_close)
        self._on_hole = on_hole
        self._update_subs = bus.subscribers(CandleUpdate)
        self._closed_subs = bus.subscribers(CandleClosed)
        self._pressure = bus.pressure_flag

    @property
    def state(self) -> StreamState:
        return self.metrics.state

    @property
    def messages(self) -> int:
        return self.metrics.messages

    @property
    def closed(self) -> int:
        return self.metrics.closed

    @property
    def duplicates(self) -> int:
        return self.seq.duplicates

    @property
    def late(self) -> int:
        return self.seq.late

    @property
    def last_closed_open_time(self) -> int:
        return self.seq.last

    def deliver(self, candle: Candle) -> bool:
        """Every frame of this stream. Returns True when a consumer asks for backpressure."""
        self.metrics.last_event_time_ms = candle.event_time
        for sub in self._update_subs:
            sub.offer(candle)
        if candle.closed:
            if self.seq.offer(candle) is Offer.HELD:
                self._on_hole(self.key)
        elif self.infer_close:
            self._infer(candle)
        return self._pressure.on

    def _infer(self, candle: Candle) -> None:
        forming = self.forming
        if forming is None or candle.open_time > forming.open_time:
            self.forming = candle
            if forming is not None:
                inferred = msgspec.structs.replace(forming, closed=True)
                if self.seq.hold(inferred) is Offer.HELD:
                    self._on_hole(self.key)
        elif candle.open_time == forming.open_time:
            self.forming = candle

    def _emit(self, candle: Candle) -> None:
        """The sequence decided: this is the next closed candle of the stream."""
        self.last_closed = candle
        self.metrics.on_closed(candle, self.now_ms())
        if candle.source == "rest":
            self.metrics.backfilled += 1
        self.buffer.append(candle)
        for sub in self._closed_subs:
            sub.offer(candle)


class CandleFeed:
    """Real-time candles of one venue.

    ``venue`` is a registered venue id (``candlekeeper.venues.registry.VENUES``).

    >>> async with CandleFeed(venue=venue_id, symbols=["BTCUSDT"],
    ...                       intervals=["1m"]) as feed:          # doctest: +SKIP
    ...     async for candle in feed.closed():
    ...         print(candle.close, feed.latest("BTCUSDT", "1m", 20))
    """

    def __init__(self, venue: str, symbols: Sequence[str] = (), intervals: Sequence[str] = (),
                 *, keys: Sequence[StreamKey] | None = None, ws_url: str | None = None,
                 rest_url: str | None = None, testnet: bool = False,
                 buffer_size: int = DEFAULT_CAPACITY, clock: Clock | None = None,
                 transport: TransportOptions | None = None,
                 gap_fill: GapFillOptions | None = None,
                 history_source: HistorySource | None = None, backfill: bool = True,
                 resume_from: Mapping[StreamKey, int] | None = None,
                 preload: Mapping[StreamKey, Sequence[Candle]] | None = None,
                 bus: EventBus | None = None, connector: Connector | None = None,
                 metrics: Metrics | None = None) -> None:
        """The streams are ``symbols × intervals``, or exactly ``keys`` (each symbol with its
        own intervals: ``[StreamKey(venue, "BTCUSDT", "1m"), StreamKey(venue, "ETHUSDT",
        "1h")]``). ``ws_url``/``rest_url`` override the venue's endpoints (e.g. the simulator).

        Gap-free operation (``backfill=True``, the default) uses REST: at start the ring
        buffers are warmed with ``gap_fill.history`` candles, a stream listed in
        ``resume_from`` (open time of the last candle already persisted) first emits
        everything after it, and after every break, hole or late close the missing candles
        are fetched and emitted before any newer one. ``preload`` seeds ring buffers (e.g.
        from storage). ``history_source`` replaces the REST fetcher (tests, custom stores).
        """
        self.codec: StreamCodec = stream_codec(venue)
        self.history: HistoryCodec = history_codec(venue)
        self.spec = self.codec.spec
        self.venue = venue
        if keys is not None:
            if symbols or intervals:
                raise ConfigError("give a feed symbols and intervals, or keys, not both")
            other = sorted({k.venue for k in keys} - {venue})
            if other:
                raise ConfigError(f"a {venue} feed cannot take streams of {', '.join(other)}")
            symbols = [k.symbol for k in keys]
            intervals = list(dict.fromkeys(k.interval for k in keys))
        if not symbols:
            raise ConfigError("a feed needs at least one symbol")
        if not intervals:
            raise ConfigError("a feed needs at least one interval")
        for interval in intervals:
            if interval not in self.spec.intervals:
                raise ConfigError(
                    f"{venue} has no interval {interval!r}; "
                    f"expected one of {', '.join(self.spec.intervals)}"
                )
        canonical = list(dict.fromkeys(normalize_symbol(s) for s in symbols))
        self.keys: list[StreamKey] = list(dict.fromkeys(
            StreamKey(venue, normalize_symbol(k.symbol), k.interval) for k in keys
        )) if keys is not None else [
            StreamKey(venue, s, i) for s in canonical for i in dict.fromkeys(intervals)
        ]
        self.ws_url = ws_url or (self.spec.ws_testnet_base if testnet else self.spec.ws_base)
        self.clock: Clock = clock or SystemClock()
        self.bus = bus or EventBus()
        self._buffers = BufferSet(buffer_size)
        self.metrics = metrics if metrics is not None else Metrics(now_ms=self.clock.time_ms)
        self.metrics.track_bus(self.bus, venue)
        self.metrics.add_refresher(self.refresh_metrics)
        self._streams: dict[tuple[str, str], StreamStats] = {
            (k.symbol, k.interval): StreamStats(k, self.metrics.stream(k), self._buffers.get(k),
                                                self.bus, self.clock.time_ms, self._hole,
                                                closed_flag=self.spec.closed_flag)
            for k in self.keys
        }
        self.rest_url = rest_url or (self.spec.rest_testnet_base if testnet
                                     else self.spec.rest_base)
        self._rest: RestClient | None = None
        self.gap_fill = gap_fill or GapFillOptions(history=buffer_size)
        source = history_source
        if source is None and backfill:
            self._rest = RestClient(self.history, self.rest_url)
            source = KlineFetcher(self.history, self._rest, clock=self.clock,
                                  close_margin_ms=self.gap_fill.close_margin_ms)
        self.filler: GapFiller | None = (GapFiller(source, self.clock, self.gap_fill)
                                         if source is not None else None)
        resume = dict(resume_from or {})
        for key, st in self._by_key().items():
            if preload and key in preload:
                st.buffer.extend(list(preload[key]))
            if key in resume:
                st.seq.last = resume[key]
            if self.filler is not None:
                self.filler.track(key, st.seq, resume=key in resume,
                                  on_history=st.buffer.extend)
        self._pool = ConnectionPool(self.codec, self.keys, self, ws_base=self.ws_url,
                                    clock=self.clock, options=transport, connector=connector)
        self._task: asyncio.Task[None] | None = None
        self._started = False

    def _by_key(self) -> dict[StreamKey, StreamStats]:
        return {st.key: st for st in self._streams.values()}

    def _hole(self, key: StreamKey) -> None:
        if self.filler is not None:
            self.filler.request(key, "hole")

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and subscribe. Idempotent: a second call does nothing."""
        if self._started:
            return
        self._started = True
        await self.bus.start()
        if self.filler is not None:
            await self.filler.start()  # warm-up / resume fills run while we connect
        self._task = asyncio.get_running_loop().create_task(self._pool.run(),
                                                            name=f"pool:{self.venue}")

    async def stop(self) -> None:
        """Close connections, then let handlers drain. Idempotent."""
        if not self._started:
            return
        self._started = False
        await self._pool.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.filler is not None:
            await self.filler.stop()
        if self._rest is not None:
            await self._rest.close()
        await self.bus.stop()

    async def __aenter__(self) -> CandleFeed:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- consumer API -----------------------------------------------------------------------
    def on_closed(self, handler: CandleHandler, *, maxsize: int = 100_000,
                  policy: OverflowPolicy = OverflowPolicy.BLOCK,
                  inline: bool = False) -> Subscription[Any]:
        """Call ``handler(candle)`` once per closed candle. The default policy never drops:
        a slow handler applies backpressure to the socket instead."""
        return self.bus.subscribe(CandleClosed, handler, maxsize=maxsize, policy=policy,
                                  inline=inline, name=_name(handler))

    def on_update(self, handler: CandleHandler, *, maxsize: int = 10_000,
                  policy: OverflowPolicy = OverflowPolicy.DROP_OLDEST,
                  inline: bool = False) -> Subscription[Any]:
        """Call ``handler(candle)`` for every live frame (closed or not). Updates supersede each
        other, so by default a slow handler loses the oldest ones, never the feed."""
        return self.bus.subscribe(CandleUpdate, handler, maxsize=maxsize, policy=policy,
                                  inline=inline, name=_name(handler))

    def on_status(self, handler: StatusHandler) -> Subscription[StreamStatus]:
        """Stream state changes (subscribed, live, stalled, silent, rejected, ...)."""
        return self.bus.subscribe(StreamStatus, handler, maxsize=10_000,
                                  policy=OverflowPolicy.DROP_OLDEST, name=_name(handler))

    async def closed(self, *, maxsize: int = 100_000) -> AsyncIterator[Candle]:
        """Iterate over closed candles (exactly once each, in order per stream)."""
        async for candle in self.bus.stream(CandleClosed, maxsize=maxsize, name="closed()"):
            yield candle

    async def updates(self, *, maxsize: int = 10_000) -> AsyncIterator[Candle]:
        async for candle in self.bus.stream(CandleUpdate, maxsize=maxsize,
                                            policy=OverflowPolicy.DROP_OLDEST, name="updates()"):
            yield candle

    def latest(self, symbol: str, interval: str, n: int | None = None) -> list[Candle]:
        """The newest ``n`` closed candles, oldest first. Safe to call from any thread."""
        return self._stream(symbol, interval).buffer.latest(n)

    def latest_df(self, symbol: str, interval: str, n: int | None = None) -> pd.DataFrame:
        return to_dataframe(self.latest(symbol, interval, n))

    def stats(self) -> list[StreamStats]:
        self.refresh_metrics()
        return list(self._streams.values())

    def connection_stats(self) -> list[SessionStats]:
        return list(self._pool.stats())

    def _stream(self, symbol: str, interval: str) -> StreamStats:
        try:
            return self._streams[(normalize_symbol(symbol), interval)]
        except KeyError:
            raise KeyError(f"{self.venue} feed has no stream {symbol} {interval}") from None

    # -- StreamListener (called by the transport) -------------------------------------------
    def stream_sink(self, key: StreamKey) -> Callable[[Candle], bool]:
        return self._streams[(key.symbol, key.interval)].deliver

    def on_stream_status(self, status: StreamStatus) -> None:
        st = self._streams.get((status.key.symbol, status.key.interval))
        if st is not None:
            st.metrics.set_state(status.state, status.detail, status.ts_ms)
            if self.filler is not None:
                if status.state in _BREAKS:
                    self.filler.interrupted(status.key)
                elif status.state is StreamState.LIVE:
                    self.filler.live(status.key)
        self.bus.publish(status)

    def on_malformed(self, key: StreamKey) -> None:
        """A frame of ``key`` was dropped as malformed: fetch that stream's candles over REST
        now rather than wait for the late-close check."""
        if self.filler is not None:
            self.filler.request(key, "malformed")

    def on_connection_status(self, status: ConnectionStatus) -> None:
        self.metrics.on_connection_status(status, self.venue)
        self.bus.publish(status)

    def refresh_metrics(self) -> None:
        """Copy the transport's counters into the metrics (at scrape time, not per frame)."""
        for key, count in self._pool.stream_counts().items():
            self.metrics.stream(key).messages = count
        for s in self._pool.stats():
            cm = self.metrics.connection(s.name, self.venue)
            cm.messages, cm.malformed, cm.error_frames = s.messages, s.malformed, s.error_frames
            cm.state, cm.streams, cm.reconnects = s.state, s.streams, s.reconnects
            if s.last_error:
                cm.detail = s.last_error

    async def relieve(self) -> None:
        await self.bus.relieve()


def _name(handler: Callable[..., Any]) -> str:
    return str(getattr(handler, "__qualname__", repr(handler)))
