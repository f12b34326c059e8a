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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.core.symbols import normalize_symbol
from candlekeeper.errors import ConfigError
from candlekeeper.observability.logging import RateLimitedLog
from candlekeeper.observability.metrics import Metrics, StreamMetrics
from candlekeeper.transport import ConnectionPool, SessionStats, TransportOptions
from candlekeeper.venues.base import VenueCodec
from candlekeeper.venues.registry import make_codec

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from candlekeeper.transport.base import Connector

log = logging.getLogger(__name__)

CandleHandler = Callable[[Candle], None] | Callable[[Candle], Awaitable[None]]
StatusHandler = Callable[[StreamStatus], None] | Callable[[StreamStatus], Awaitable[None]]


class StreamStats:
    """One stream inside the feed: the state behind its guarantees and its hot path.

    :meth:`deliver` is what the transport calls for every kline frame of this stream (resolved
    once per stream, so no per-frame lookup). Counters shown on ``/metrics`` and the dashboard
    live in ``metrics`` (shared with the service's :class:`Metrics`).
    """

    __slots__ = ("_closed_subs", "_pressure", "_update_subs", "buffer", "duplicates", "key",
                 "last_closed", "last_closed_open_time", "late", "metrics", "now_ms")

    def __init__(self, key: StreamKey, metrics: StreamMetrics, buffer: RingBuffer, bus: EventBus,
                 now_ms: Callable[[], int]) -> None:
        self.key = key
        self.metrics = metrics
        self.buffer = buffer
        self.duplicates = 0
        self.late = 0
        self.last_closed_open_time = -1
        self.last_closed: Candle | None = None
        self.now_ms = now_ms
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

    def deliver(self, candle: Candle) -> bool:
        """Every frame of this stream. Returns True when a consumer asks for backpressure."""
        self.metrics.last_event_time_ms = candle.event_time
        for sub in self._update_subs:
            sub.offer(candle)
        if candle.closed:
            self._close(candle)
        return self._pressure.on

    def _close(self, candle: Candle) -> None:
        t = candle.open_time
        if t <= self.last_closed_open_time:  # a repeated or older close: never emitted twice
            if t == self.last_closed_open_time:
                self.duplicates += 1
            else:
                self.late += 1
            return
        self.last_closed_open_time = t
        self.last_closed = candle
        self.metrics.on_closed(candle, self.now_ms())
        self.buffer.append(candle)
        for sub in self._closed_subs:
            sub.offer(candle)


@dataclass(slots=True)
class FeedCounters:
    connection_events: int = 0
    connections: dict[str, ConnectionStatus] = field(default_factory=dict)


class CandleFeed:
    """Real-time candles of one venue.

    >>> async with CandleFeed(venue="binance-usdm", symbols=["BTCUSDT"],
    ...                       intervals=["1m"]) as feed:          # doctest: +SKIP
    ...     async for candle in feed.closed():
    ...         print(candle.close, feed.latest("BTCUSDT", "1m", 20))
    """

    def __init__(self, venue: str, symbols: Sequence[str], intervals: Sequence[str], *,
                 ws_url: str | None = None, testnet: bool = False,
                 buffer_size: int = DEFAULT_CAPACITY, clock: Clock | None = None,
                 transport: TransportOptions | None = None, bus: EventBus | None = None,
                 connector: Connector | None = None, metrics: Metrics | None = None) -> None:
        self.codec: VenueCodec = make_codec(venue)
        self.spec = self.codec.spec
        self.venue = venue
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
        self.keys: list[StreamKey] = [
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
                                                self.bus, self.clock.time_ms)
            for k in self.keys
        }
        self.counters = FeedCounters()
        self._pool = ConnectionPool(self.codec, self.keys, self, ws_base=self.ws_url,
                                    clock=self.clock, options=transport, connector=connector)
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._limited = RateLimitedLog(log)

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and subscribe. Idempotent: a second call does nothing."""
        if self._started:
            return
        self._started = True
        await self.bus.start()
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
        self.bus.publish(status)

    def on_connection_status(self, status: ConnectionStatus) -> None:
        self.counters.connection_events += 1
        self.counters.connections[status.connection] = status
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
