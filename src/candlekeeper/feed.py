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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from candlekeeper.backfill.fetcher import KlineFetcher
from candlekeeper.backfill.http import RestClient
from candlekeeper.backfill.options import RestOptions
from candlekeeper.clock_sync import ClockSync
from candlekeeper.core.buffers import DEFAULT_CAPACITY, BufferSet
from candlekeeper.core.bus import EventBus, OverflowPolicy, Subscription
from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import Clock, SystemClock
from candlekeeper.core.events import (
    CandleClosed,
    CandleCorrected,
    CandleUpdate,
    ConnectionStatus,
    StreamState,
    StreamStatus,
)
from candlekeeper.core.ratelog import RateLimitedLog
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.core.venue_clock import VenueClock
from candlekeeper.errors import ConfigError
from candlekeeper.fallback import Fallback, say_budget
from candlekeeper.fast_close import FastPlan, plan_fast, say_plan
from candlekeeper.feed_derived import DerivedStream, plan_streams, resume_points
from candlekeeper.feed_stream import StreamStats
from candlekeeper.gapfill import GapFiller, GapFillOptions, HistorySource
from candlekeeper.gapfill_options import ClosePolicy
from candlekeeper.observability.metrics import Metrics
from candlekeeper.transport import ConnectionPool, SessionStats, TransportMode, TransportOptions
from candlekeeper.venues.contract import HistoryCodec, StreamCodec
from candlekeeper.venues.registry import canonical_symbol, history_codec, stream_codec

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import pandas as pd

    from candlekeeper.config import Config
    from candlekeeper.replay import Instant, ReplayFeed
    from candlekeeper.stored import StoredCandles
    from candlekeeper.transport.base import Connector

__all__ = ["CandleFeed", "FeedPlumbing", "StreamStats"]

log = logging.getLogger(__name__)

#: transport states after which a stream may have missed closes
_BREAKS = frozenset({StreamState.DISCONNECTED, StreamState.STALLED, StreamState.SILENT})

CandleHandler = Callable[[Candle], None] | Callable[[Candle], Awaitable[None]]
StatusHandler = Callable[[StreamStatus], None] | Callable[[StreamStatus], Awaitable[None]]


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
                 mode: TransportMode | str = TransportMode.AUTO,
                 close_policy: ClosePolicy | str = ClosePolicy.FLAG,
                 plumbing: FeedPlumbing | None = None, rest: RestOptions | None = None,
                 derive_from: str = "1m", anchor: str | None = None) -> None:
        """The streams are ``symbols × intervals``, or exactly ``keys`` (each symbol with its
        own intervals: ``[StreamKey(venue, "BTCUSDT", "1m"), StreamKey(venue, "ETHUSDT",
        "1h")]``). ``ws_url``/``rest_url`` override the venue's endpoints (e.g. the simulator).

        ``transport`` and ``gap_fill`` are the same option models as the service config's
        ``transport:`` and ``gap_fill:`` sections. Gap-free operation (``gap_fill.enabled``, the
        default) uses REST: at start the ring buffers are warmed with ``gap_fill.history``
        candles (``buffer_size`` by default), and after every break, hole or late close the
        missing candles are fetched and emitted before any newer one. ``mode``: ``websocket``,
        ``rest`` (every stream polled over REST just after each of its closes) or ``auto`` (the
        WebSocket, falling back to polling while it is unavailable; see ``fallback.py``).
        ``close_policy``: ``flag`` (a close is emitted when the venue's stream says so) or
        ``fast`` (as soon as the close time has passed, confirmed over REST, within the budget
        share ``gap_fill.fast_budget_share``; see ``fast_close.py``).
        ``plumbing`` connects the feed to a service or a test (resume points, storage preload, a
        shared bus or metrics, another connector or history source). ``rest`` is the service
        config's ``rest:`` section (by default the venue's REST budget is shared with the other
        candlekeeper processes of this host; see ``backfill/ledger.py``).

        An interval the venue lacks (``2m``, ``3h``, ``1d+08:00``) is derived from the finer
        native ``derive_from`` (or ``5m@1m``: an explicit base, also to derive an interval the
        venue has); ``anchor`` (``UTC+8``) moves day-or-longer bars off UTC. The base is
        subscribed as an ordinary stream; see ``docs/derived-intervals.md``.
        """
        self.codec: StreamCodec = stream_codec(venue)
        self.history: HistoryCodec = history_codec(venue)
        self.spec = self.codec.spec
        self.venue = venue
        self.plan = plan_streams(venue, self.spec.intervals,
                                 _stream_keys(venue, symbols, intervals, keys),
                                 derive_from=derive_from, anchor=anchor)
        #: the streams subscribed at the venue (asked ones plus the bases of derived ones)
        self.keys = self.plan.native
        #: the streams built here from a finer base (``docs/derived-intervals.md``)
        self.derived_keys = list(self.plan.derived)
        self.ws_url = ws_url or (self.spec.ws_testnet_base if testnet else self.spec.ws_base)
        self.rest_url = rest_url or (self.spec.rest_testnet_base if testnet
                                     else self.spec.rest_base)
        #: venue time: ``clock`` (the host's) plus the venue's estimated offset, fed by
        #: ``_clock_sync``; every decision below (closes, late closes, REST finality) uses it
        self.venue_clock = VenueClock(clock or SystemClock())
        self.clock: Clock = self.venue_clock
        wired = plumbing or FeedPlumbing()
        self.bus = wired.bus or EventBus()
        self._buffers = BufferSet(buffer_size)
        self.metrics = wired.metrics or Metrics(now_ms=self.venue_clock.base.time_ms)
        self.metrics.track_bus(self.bus, venue)
        self.metrics.add_refresher(self._refresh_metrics)
        self.gap_fill = gap_fill or GapFillOptions()
        self._ratelog = RateLimitedLog(log)
        self._history_handlers: list[Callable[[list[Candle]], object]] = []
        self._streams: dict[tuple[str, str], StreamStats] = {
            (k.symbol, k.interval): StreamStats(
                k, self.metrics.stream(k), self._buffers.get(k), self.bus, self.clock.time_ms,
                self._hole, closed_flag=self.spec.closed_flag,
                future_tolerance_ms=self.gap_fill.future_tolerance_ms,
                max_held=self.gap_fill.max_held, on_rejected=self._rejected)
            for k in self.keys
        }
        self._rest: RestClient | None = None
        source = wired.history_source
        if source is None and self.gap_fill.enabled:
            self._rest = RestClient(self.history, self.rest_url, options=rest,
                                    count_error=self.metrics.count_error)
            self.metrics.track_rest(venue, self._rest)
            source = KlineFetcher(self.history, self._rest, clock=self.clock,
                                  max_concurrency=self.gap_fill.rest_concurrency,
                                  close_margin_ms=self.gap_fill.close_margin_ms,
                                  count_error=self.metrics.count_error)
        self._clock_sync = ClockSync(self.venue_clock, venue, self._rest,
                                     event_time=self._newest_event_time, options=self.gap_fill,
                                     count_error=self.metrics.count_error)
        self.metrics.track_clock(venue, self.venue_clock, self.gap_fill.clock_offset_warn_ms)
        self.filler: GapFiller | None = (
            GapFiller(source, self.clock, self.gap_fill, buffer_size=buffer_size,
                      clock_ready=self._clock_sync.ready)
            if source is not None else None)
        resume = resume_points(self.plan, wired.resume_from or {})
        self._derived: dict[tuple[str, str], DerivedStream] = {}
        for dkey, (dspec, base) in self.plan.derived.items():
            base_st = self._streams[(base.symbol, base.interval)]
            ds = self._derived[(dkey.symbol, dkey.interval)] = DerivedStream(
                dkey, dspec, base, self._buffers.get(dkey), self.metrics.stream(dkey), self.bus,
                self.clock.time_ms, floor=resume.get(dkey, -1),
                count_error=self.metrics.count_error, base_buffer=base_st.buffer)
            if wired.preload and dkey in wired.preload:
                ds.buffer.extend(list(wired.preload[dkey]))
            base_st.taps.append(ds.offer)
            base_st.retaps.append(ds.corrected)
        #: each base's stored candles, to resume its derived streams with at start
        self._seeds: dict[StreamKey, list[Candle]] = {}
        for key, st in self._by_key().items():
            held = list(wired.preload[key]) if wired.preload and key in wired.preload else []
            if held:
                st.buffer.extend(held)
                self._seeds[key] = held
            if key in resume:
                st.seq.last = st.seq.first = resume[key]
            if self.filler is not None:
                self.filler.track(key, st.seq, resume=key in resume,
                                  on_history=self._history_of(st),
                                  stored=(held[0].open_time, len(held)) if held else None)
        self.transport = transport or TransportOptions()
        self.mode = _mode(mode, self.filler is not None)
        self.close_policy = ClosePolicy(close_policy)
        self.fast_plan: FastPlan | None = None
        if self.close_policy is ClosePolicy.FAST:
            self.fast_plan = plan_fast(self.spec, self.keys, self.gap_fill)
            if self.filler is not None:
                for key in self.fast_plan.fast:
                    self.filler.fast(key)
        self.fallback = Fallback(self.mode, self.keys, self.transport, poll=self._poll,
                                 show=self._show, now_ms=self.clock.time_ms)
        self._pool = ConnectionPool(self.codec, self.keys, _Listener(self), ws_base=self.ws_url,
                                    clock=self.clock, options=self.transport,
                                    connector=wired.connector)
        self._task: asyncio.Task[None] | None = None
        self._started = False

    def _by_key(self) -> dict[StreamKey, StreamStats]:
        return {st.key: st for st in self._streams.values()}

    def _rejected(self, candle: Candle, why: str) -> None:
        self.metrics.count_error("rejected_candle")
        self._ratelog.warning(f"rejected:{candle.key}", "%s: rejected a candle (%s)",
                              candle.key, why)

    def _history_of(self, st: StreamStats) -> Callable[[list[Candle]], None]:
        derived = [ds for ds in self._derived.values() if ds.base == st.key]

        def warm(candles: list[Candle]) -> None:
            st.buffer.extend(candles)
            for handler in self._history_handlers:
                try:
                    handler(candles)
                except Exception as exc:  # a consumer's bug must not cost the warm-up
                    self._ratelog.error("history", "history handler raised %r", exc)
            for ds in derived:
                ds.history(candles, self._history_handlers)
        return warm

    def _poll(self, key: StreamKey, on: bool) -> None:
        if self.filler is not None:
            st = self._streams[(key.symbol, key.interval)]
            self.filler.poll(key, on, forming=st.offer_update)

    def _show(self, status: StreamStatus) -> None:
        """A state consumers see (the transport's, or ``polling``)."""
        st = self._streams.get((status.key.symbol, status.key.interval))
        if st is not None:
            st.metrics.set_state(status.state, status.detail, status.ts_ms)
            for ds in self._derived.values():  # a derived stream is as live as its base
                if ds.base == st.key:
                    ds.metrics.set_state(status.state, status.detail, status.ts_ms)
        self.bus.publish(status)

    def _newest_event_time(self) -> int | None:
        """The newest venue event time any stream received (sampled by the clock sync once a
        second: the hot path already writes it, so no clock is read per frame)."""
        return max((t for st in self._streams.values()
                    if (t := st.metrics.last_event_time_ms) is not None), default=None)

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
        for ds in self._derived.values():  # before any base close: they continue the seeds
            ds.seed(self._seeds.get(ds.base, ()), self._history_handlers)
        self._seeds.clear()
        await self._clock_sync.start()  # fills wait for the venue's time (ClockSync.ready)
        if self.filler is not None:
            await self.filler.start()  # warm-up / resume fills run while we connect
        self.fallback.start()
        if self.mode is TransportMode.REST:
            say_budget(self.venue, self.spec, self.keys, self.gap_fill.poll_budget_share)
        elif self.fast_plan is not None:
            say_plan(self.venue, self.fast_plan)
        if self.fallback.uses_websocket:
            self._task = asyncio.get_running_loop().create_task(self._pool.run(),
                                                                name=f"pool:{self.venue}")

    async def stop(self) -> None:
        """Close connections, then let handlers drain. Idempotent."""
        if not self._started:
            return
        self._started = False
        await self.fallback.stop()
        await self._pool.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.filler is not None:
            await self.filler.stop()
        await self._clock_sync.stop()
        if self._rest is not None:
            await self._rest.close()
        await self.bus.stop()

    async def __aenter__(self) -> CandleFeed:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @classmethod
    def replay(cls, source: StoredCandles | str | Path | Config, symbols: Sequence[str] = (),
               intervals: Sequence[str] = (), start: Instant | None = None,
               end: Instant | None = None, *, speed: float | None = None,
               **options: Any) -> ReplayFeed:
        """Stored candles through this consumer API (``on_closed``, ``closed()``,
        ``latest()``): a :class:`~candlekeeper.replay.ReplayFeed`. See docs/export-replay.md."""
        from candlekeeper.replay import ReplayFeed

        return ReplayFeed(source, symbols, intervals, start=start, end=end, speed=speed,
                          **options)

    # -- consumer API -----------------------------------------------------------------------
    def on_corrected(self, handler: Callable[[CandleCorrected], None], *,
                     maxsize: int = 10_000, inline: bool = False) -> Subscription[Any]:
        """Call ``handler(event)`` for each :class:`CandleCorrected`: a close emitted from REST
        (a fast close, or a late one) that the venue's closing frame then contradicted.
        ``event.candle`` replaces ``event.previous``; ``latest()`` already holds it. Never
        dropped (the policy blocks, as ``on_closed``'s does)."""
        return self.bus.subscribe(CandleCorrected, handler, maxsize=maxsize,
                                  policy=OverflowPolicy.BLOCK, inline=inline,
                                  name=_name(handler))

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
        return self._stream(symbol, interval).buffer.latest_df(n)

    def stats(self) -> list[StreamStats]:
        """The native streams (derived ones: :meth:`derived_streams`)."""
        self._refresh_metrics()
        return list(self._streams.values())

    def derived_streams(self) -> list[DerivedStream]:
        return list(self._derived.values())

    def connection_stats(self) -> list[SessionStats]:
        return list(self._pool.stats())

    def _stream(self, symbol: str, interval: str) -> StreamStats | DerivedStream:
        name = (canonical_symbol(self.venue, symbol), interval)
        try:
            return self._streams.get(name) or self._derived[name]
        except KeyError:
            raise KeyError(f"{self.venue} feed has no stream {symbol} {interval}") from None

    def on_history(self, handler: Callable[[list[Candle]], object]) -> None:
        """Call ``handler(candles)`` with each stream's warm-up history (closed candles from
        REST, oldest first) that is *not* emitted as ``CandleClosed`` (``gap_fill.emit_history``
        off): the service stores it, a strategy may prime its indicators with it. Runs before
        any live close of that stream is emitted."""
        self._history_handlers.append(handler)

    def _refresh_metrics(self) -> None:
        """Copy the transport's counters into the metrics (at scrape time, not per frame)."""
        for key, count in self._pool.stream_counts().items():
            self.metrics.stream(key).messages = count
        for s in self._pool.stats():
            cm = self.metrics.connection(s.name, self.venue)
            cm.messages, cm.malformed, cm.error_frames = s.messages, s.malformed, s.error_frames
            cm.state, cm.streams, cm.reconnects = s.state, s.streams, s.reconnects
            if s.last_error:
                cm.detail = s.last_error


@dataclass(frozen=True, kw_only=True)
class FeedPlumbing:
    """How a feed is wired into a service or a test; a library user needs none of it.

    ``resume_from``: open time of the last candle already persisted, per stream (the stream
    first emits everything after it). ``preload``: candles to seed ring buffers with (from
    storage). ``bus``/``metrics``: shared with other feeds. ``connector``: another WebSocket
    implementation (the in-memory one in tests). ``history_source``: replaces the REST fetcher.
    """

    resume_from: Mapping[StreamKey, int] | None = None
    preload: Mapping[StreamKey, Sequence[Candle]] | None = None
    bus: EventBus | None = None
    metrics: Metrics | None = None
    connector: Connector | None = None
    history_source: HistorySource | None = None


class _Listener:
    """The feed as the transport sees it (``StreamListener``), kept off the feed's public
    face: these are callbacks of the connection pool, not API."""

    __slots__ = ("_feed",)

    def __init__(self, feed: CandleFeed) -> None:
        self._feed = feed

    def stream_sink(self, key: StreamKey) -> Callable[[Candle], bool]:
        return self._feed._streams[(key.symbol, key.interval)].deliver

    def on_stream_status(self, status: StreamStatus) -> None:
        feed = self._feed
        if feed.filler is not None:
            if status.state in _BREAKS:
                feed.filler.interrupted(status.key)
            elif status.state is StreamState.LIVE:
                feed.filler.live(status.key)
        if feed.fallback.on_transport(status):  # a polled stream shows "polling" instead
            feed._show(status)

    def on_malformed(self, key: StreamKey) -> None:
        """A frame of ``key`` was dropped as malformed: fetch that stream's candles over REST
        now rather than wait for the late-close check."""
        if self._feed.filler is not None:
            self._feed.filler.request(key, "malformed")

    def on_connection_status(self, status: ConnectionStatus) -> None:
        self._feed.metrics.on_connection_status(status, self._feed.venue)
        self._feed.bus.publish(status)

    async def relieve(self) -> None:
        await self._feed.bus.relieve()


def _mode(mode: TransportMode | str, can_poll: bool) -> TransportMode:
    try:
        chosen = TransportMode(mode)
    except ValueError:
        raise ConfigError(f"unknown transport mode {mode!r}; expected one of "
                          f"{', '.join(m.value for m in TransportMode)}") from None
    if chosen is TransportMode.REST and not can_poll:
        raise ConfigError("transport mode 'rest' polls over REST: it needs gap filling "
                          "(gap_fill.enabled)")
    if chosen is TransportMode.AUTO and not can_poll:
        return TransportMode.WEBSOCKET  # nothing to fall back on
    return chosen


def _stream_keys(venue: str, symbols: Sequence[str], intervals: Sequence[str],
                 keys: Sequence[StreamKey] | None) -> list[StreamKey]:
    """``symbols × intervals`` or the explicit ``keys``, canonical, deduplicated (the intervals
    are checked by :func:`~candlekeeper.feed_derived.plan_streams`)."""
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
    if keys is not None:
        return list(dict.fromkeys(
            StreamKey(venue, canonical_symbol(venue, k.symbol), k.interval) for k in keys))
    canonical = list(dict.fromkeys(canonical_symbol(venue, s) for s in symbols))
    return [StreamKey(venue, s, i) for s in canonical for i in dict.fromkeys(intervals)]


def _name(handler: Callable[..., Any]) -> str:
    return str(getattr(handler, "__qualname__", repr(handler)))
