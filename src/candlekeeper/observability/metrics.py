"""Prometheus metrics on a private registry, cheap enough for the per-message hot path.

Design:

* **Private ``CollectorRegistry``** per :class:`Metrics`, never the global one: several feeds in
  one process, and tests, each get their own numbers without name clashes.
* **Hot path = attribute increments.** The feed holds a :class:`StreamMetrics` per stream
  (created once, cached by key) and does ``sm.on_candle(candle)``: two attribute writes,
  no lock, no label lookup. A custom collector turns those plain ints into Prometheus families
  only when ``/metrics`` is scraped. (A prometheus-client ``Counter.inc`` takes a lock per call;
  at 80k msgs/s that alone would be a measurable share of the CPU budget.)
* **Pull, don't push, what others already count.** Event-bus subscribers (delivered, dropped,
  handler errors, queue depth), sink writers (``WriterStats``) and connections are read at
  scrape time through :meth:`track_bus`, :meth:`track_sink` and :meth:`connection`.
* No locks: the feed writes on the event loop; a scrape (``/metrics`` renders in a worker
  thread so it does not stall the loop) only reads ints and takes atomic copies of the
  registration dicts. A scrape may see one stream a message ahead of another - harmless.

Metric names (labels in braces; ``stream`` labels = ``venue, symbol, interval``):

=============================================  =========  =======================================
``candlekeeper_info{version}``                 gauge      always 1
``candlekeeper_start_time_seconds``            gauge      Unix time the Metrics object was made
``candlekeeper_stream_messages_total``         counter    kline messages received {stream}
``candlekeeper_stream_candles_closed_total``   counter    CandleClosed events emitted {stream}
``candlekeeper_stream_candles_stored_total``   counter    closed candles handed to storage {stream}
``candlekeeper_stream_candles_backfilled_total`` counter  candles recovered over REST {stream}
``candlekeeper_stream_corrections_total``      counter    REST closes a closing frame corrected
``candlekeeper_stream_lag_seconds``            gauge      now - event time of the last msg {stream}
``candlekeeper_stream_last_close_time_seconds`` gauge     close time of the last closed candle
``candlekeeper_stream_state``                  gauge      1 for the current state {stream,state}
``candlekeeper_stream_reconnects_total``       counter    times the stream lost its connection
``candlekeeper_stream_stalls_total``           counter    watchdog STALLED/SILENT flags {stream}
``candlekeeper_close_delay_seconds``           histogram  candle close -> CandleClosed {venue,
                                                          interval}, in venue time
``candlekeeper_connection_state``              gauge      1 for the current state {venue,
                                                          connection,state}
``candlekeeper_connection_reconnects_total``   counter    {venue,connection}
``candlekeeper_connection_messages_total``     counter    frames received {venue,connection}
``candlekeeper_malformed_frames_total``        counter    undecodable frames {venue,connection}
``candlekeeper_error_frames_total``            counter    venue error replies {venue,connection}
``candlekeeper_bus_delivered_total``           counter    {bus,subscriber,event}
``candlekeeper_bus_dropped_total``             counter    overflow-policy drops {bus,subscriber,
                                                          event}
``candlekeeper_handler_errors_total``          counter    handlers that raised {bus,subscriber,
                                                          event}
``candlekeeper_bus_queue_depth``               gauge      events waiting {bus,subscriber,event}
``candlekeeper_sink_rows_written_total``       counter    {sink}
``candlekeeper_sink_rows_pending``             gauge      backlog not yet durable {sink}
``candlekeeper_sink_failures_total``           counter    failed write attempts {sink}
``candlekeeper_sink_retries_total``            counter    {sink}
``candlekeeper_sink_rows_dropped_total``       counter    lost to overflow (data loss!) {sink}
``candlekeeper_sink_rows_rejected_total``      counter    refused as data the backend can never
                                                          store (not retried) {sink}
``candlekeeper_sink_journal_rows``             gauge      spilled to the journal, not yet written
``candlekeeper_sink_journal_bytes``            gauge      journal size {sink}
``candlekeeper_sink_oldest_pending_seconds``   gauge      age of the oldest unwritten row {sink}
``candlekeeper_clock_offset_seconds``          gauge      venue clock - host clock, estimated
                                                          {venue} (+: the host is behind)
``candlekeeper_clock_offset_uncertainty_seconds`` gauge   half the REST round trip behind it
``candlekeeper_rest_requests_total``           counter    REST requests sent {venue}
``candlekeeper_rest_errors_total``             counter    REST requests that failed {venue}
``candlekeeper_rest_rate_limited_total``       counter    rate-limit answers (HTTP 429) {venue}
``candlekeeper_rest_banned_total``             counter    IP-ban answers (HTTP 418) {venue}
``candlekeeper_rest_weight_granted_total``     counter    request weight spent {venue}
``candlekeeper_rest_weight_used``              gauge      weight used in the current window
``candlekeeper_rest_weight_limit``             gauge      the window's limit we stay under {venue}
``candlekeeper_errors_total``                  counter    other bad input / failures {kind}
=============================================  =========  =======================================
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from candlekeeper.core.bus import EventBus
from candlekeeper.core.candle import Candle
from candlekeeper.core.events import (
    ConnectionState,
    ConnectionStatus,
    StreamState,
    StreamStatus,
)
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.core.venue_clock import VenueClock
from candlekeeper.observability.redact import redact_text

if TYPE_CHECKING:  # pragma: no cover
    from prometheus_client import CollectorRegistry

from candlekeeper.observability.snapshot import (
    ClockRow,
    ConnectionRow,
    HealthSnapshot,
    SinkRow,
    StreamRow,
)

CLOSE_DELAY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class HistogramChild:
    """One label set of a histogram: per-bucket counts, sum and count, as plain numbers (the
    collector turns them into a Prometheus histogram at scrape time). Ours rather than
    prometheus-client's so a library feed needs no Prometheus at all."""

    __slots__ = ("bounds", "buckets", "count", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count of observations <= le)``, +Inf last, as Prometheus wants them."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, n in zip((*self.bounds, float("inf")), self.buckets, strict=True):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
        return out
_INTERRUPTED = frozenset({StreamState.STALLED, StreamState.SILENT})


class RestBudgetLike(Protocol):
    @property
    def used(self) -> int: ...
    @property
    def limit(self) -> int: ...
    @property
    def granted(self) -> int: ...


class RestStatsLike(Protocol):
    """What :meth:`Metrics.track_rest` reads (``candlekeeper.backfill.http.RestClient`` fits)."""

    @property
    def requests(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def rate_limited(self) -> int: ...
    @property
    def banned(self) -> int: ...
    @property
    def budget(self) -> RestBudgetLike: ...


class SinkStatsLike(Protocol):
    """What :meth:`Metrics.track_sink` reads (``candlekeeper.sinks.WriterStats`` fits;
    its journal and rejection fields are read when present)."""

    @property
    def written(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def failures(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...


class StreamMetrics:
    """Counters of one stream. The feed keeps a reference and updates attributes directly."""

    __slots__ = (
        "_close_delay",
        "backfilled",
        "closed",
        "corrections",
        "detail",
        "key",
        "labels",
        "last_close_price",
        "last_close_time_ms",
        "last_event_time_ms",
        "messages",
        "reconnects",
        "stalls",
        "state",
        "state_since_ms",
        "stored",
    )

    def __init__(self, key: StreamKey, close_delay: Any) -> None:
        self.key = key
        self.labels: tuple[str, str, str] = (key.venue, key.symbol, key.interval)
        self.messages = 0
        self.closed = 0
        self.stored = 0
        self.backfilled = 0
        #: closes emitted from REST that the venue's closing frame then corrected
        self.corrections = 0
        #: exchange event time of the newest message (the feed writes it per frame; lag is
        #: derived from it when read, so the hot path never reads a clock)
        self.last_event_time_ms: int | None = None
        self.last_close_price: Decimal | None = None
        self.last_close_time_ms: int | None = None
        self.state = StreamState.SUBSCRIBING
        self.state_since_ms = 0
        self.detail = ""
        self.reconnects = 0
        self.stalls = 0
        self._close_delay = close_delay  # the histogram child for (venue, interval)

    def on_candle(self, candle: Candle) -> None:
        """Every kline message (hot path; the feed inlines this)."""
        self.messages += 1
        if candle.event_time is not None:
            self.last_event_time_ms = candle.event_time

    def on_message(self, event_time_ms: int) -> None:
        """Same as :meth:`on_candle` for callers that have only the event time."""
        self.messages += 1
        self.last_event_time_ms = event_time_ms

    def lag_ms(self, now_ms: int) -> int | None:
        """Age of the newest data: now - exchange event time of the last message. Equal to the
        delivery lag while the stream is busy; it keeps growing when the stream goes quiet,
        which is what an operator wants to see."""
        t = self.last_event_time_ms
        return None if t is None else now_ms - t

    def on_closed(self, candle: Candle, now_ms: int) -> None:
        """A ``CandleClosed`` was emitted for this stream (``now_ms`` in venue time)."""
        self.closed += 1
        self.last_close_price = candle.close
        self.last_close_time_ms = candle.close_time
        self._close_delay.observe(max(0.0, (now_ms - candle.close_time) / 1000.0))

    def set_state(self, state: StreamState, detail: str = "", ts_ms: int = 0) -> None:
        if state != self.state:
            if state is StreamState.DISCONNECTED:
                self.reconnects += 1
            elif state in _INTERRUPTED:
                self.stalls += 1
            self.state = state
            self.state_since_ms = ts_ms
        self.detail = detail

    def row(self, now_ms: int) -> StreamRow:
        return StreamRow(
            venue=self.key.venue, symbol=self.key.symbol, interval=self.key.interval,
            state=self.state.value, detail=self.detail, messages=self.messages,
            closed=self.closed, stored=self.stored,
            last_close_price=None if self.last_close_price is None
            else str(self.last_close_price),
            last_close_time_ms=self.last_close_time_ms, lag_ms=self.lag_ms(now_ms),
            reconnects=self.reconnects, stalls=self.stalls, corrections=self.corrections,
            backfilled=self.backfilled)


class ConnectionMetrics:
    """One WebSocket connection; updated from ``ConnectionStatus`` events and session stats."""

    __slots__ = ("detail", "error_frames", "malformed", "messages", "name", "reconnects",
                 "state", "streams", "venue")

    def __init__(self, name: str, venue: str) -> None:
        self.name = name
        self.venue = venue
        self.state = ConnectionState.CONNECTING
        self.streams = 0
        self.reconnects = 0
        self.messages = 0
        self.malformed = 0
        self.error_frames = 0
        self.detail = ""

    def on_status(self, status: ConnectionStatus) -> None:
        self.state = status.state
        self.streams = status.streams
        self.reconnects = status.reconnects
        self.detail = status.detail

    def row(self) -> ConnectionRow:
        return ConnectionRow(venue=self.venue, name=self.name, state=self.state.value,
                             streams=self.streams, reconnects=self.reconnects,
                             messages=self.messages, malformed=self.malformed,
                             error_frames=self.error_frames, detail=self.detail)


class Metrics:
    """All metrics of one service (or one library feed), on its own registry."""

    def __init__(self, *, version: str | None = None,
                 now_ms: Callable[[], int] | None = None) -> None:
        from candlekeeper import __version__

        #: "now" in venue time (the simulator's clock runs faster than the wall)
        self.now_ms: Callable[[], int] = now_ms or (lambda: time.time_ns() // 1_000_000)
        self._registry: CollectorRegistry | None = None
        self.started_at = time.time()
        self._started_monotonic = time.monotonic()
        self.version = version or __version__
        self._streams: dict[StreamKey, StreamMetrics] = {}
        self._connections: dict[str, ConnectionMetrics] = {}
        self._buses: list[tuple[str, EventBus]] = []
        self._sinks: dict[str, Callable[[], SinkStatsLike]] = {}
        #: ``candlekeeper_close_delay_seconds`` by (venue, interval)
        self.close_delay: dict[tuple[str, str], HistogramChild] = {}
        self._errors: dict[str, int] = {}
        self._refreshers: list[Callable[[], None]] = []
        #: each venue's clock and the offset (ms) beyond which it is worth a warning
        self._clocks: dict[str, tuple[VenueClock, float]] = {}
        self._rest: list[tuple[str, RestStatsLike]] = []

    @property
    def registry(self) -> CollectorRegistry:
        """This object's private Prometheus registry, made on first use: only ``/metrics``
        needs prometheus-client (the ``service`` extra); a library feed never imports it."""
        if self._registry is None:
            from prometheus_client import CollectorRegistry

            from candlekeeper.observability.collector import MetricsCollector

            self._registry = CollectorRegistry(auto_describe=True)
            self._registry.register(MetricsCollector(self))
        return self._registry

    # -- registration (not on the hot path) ------------------------------------------------
    def stream(self, key: StreamKey) -> StreamMetrics:
        """The (cached) counters of ``key``; keep the result instead of calling per message."""
        sm = self._streams.get(key)
        if sm is None:
            child = self.close_delay.get((key.venue, key.interval))
            if child is None:
                child = HistogramChild(CLOSE_DELAY_BUCKETS)
                self.close_delay[(key.venue, key.interval)] = child
            sm = self._streams[key] = StreamMetrics(key, child)
        return sm

    def streams(self) -> list[StreamMetrics]:
        return list(self._streams.values())

    def connection(self, name: str, venue: str = "") -> ConnectionMetrics:
        cm = self._connections.get(name)
        if cm is None:
            cm = self._connections[name] = ConnectionMetrics(name, venue)
        return cm

    def connections(self) -> list[ConnectionMetrics]:
        return list(self._connections.values())

    def buses(self) -> list[tuple[str, EventBus]]:
        return list(self._buses)

    def track_bus(self, bus: EventBus, name: str = "feed") -> None:
        """Export every subscriber of ``bus`` (read at scrape time, nothing on publish)."""
        self._buses.append((name, bus))

    def track_sink(self, name: str, stats: Callable[[], SinkStatsLike]) -> None:
        """Export a sink writer's counters, e.g. ``track_sink("sqlite", lambda: w.stats)``."""
        self._sinks[name] = stats

    def track_clock(self, venue: str, clock: VenueClock, warn_ms: float = 1_000.0) -> None:
        """Export ``venue``'s clock offset; stream lags of ``venue`` are then in its time."""
        self._clocks[venue] = (clock, warn_ms)

    def track_rest(self, venue: str, client: RestStatsLike) -> None:
        """Export a REST client's requests, rate-limit answers and weight (read at scrape)."""
        self._rest.append((venue, client))

    def rest_clients(self) -> list[tuple[str, RestStatsLike]]:
        return list(self._rest)

    def venue_ms(self, venue: str, now_ms: int) -> int:
        """``now_ms`` (host time, :attr:`now_ms`) as ``venue``'s clock reads it."""
        tracked = self._clocks.get(venue)
        return now_ms if tracked is None else now_ms + tracked[0].decision_offset_ms

    def clocks(self) -> tuple[ClockRow, ...]:
        rows: list[ClockRow] = []
        for venue, (clock, warn_ms) in list(self._clocks.items()):
            est = clock.estimate()
            sure = abs(est.offset_ms) - (est.uncertainty_ms or 0.0)
            rows.append(ClockRow(venue=venue, offset_ms=est.offset_ms,
                                 uncertainty_ms=est.uncertainty_ms, source=est.source,
                                 samples=est.rest_samples,
                                 warning=est.source != "none" and sure > warn_ms))
        return tuple(rows)

    # -- events ---------------------------------------------------------------------------
    def on_stream_status(self, status: StreamStatus) -> None:
        self.stream(status.key).set_state(status.state, status.detail, status.ts_ms)

    def on_connection_status(self, status: ConnectionStatus, venue: str = "") -> None:
        self.connection(status.connection, venue).on_status(status)

    def count_error(self, kind: str, n: int = 1) -> None:
        """Count bad input that has no more specific metric (e.g. ``rest_error``)."""
        self._errors[kind] = self._errors.get(kind, 0) + n

    def errors(self) -> dict[str, int]:
        """Counts by kind of everything passed to :meth:`count_error`."""
        return dict(self._errors)

    # -- reading ---------------------------------------------------------------------------
    def uptime_s(self) -> float:
        return time.monotonic() - self._started_monotonic

    def sink_stats(self) -> list[tuple[str, SinkStatsLike | None, str | None]]:
        """``(name, stats, error)`` per tracked sink; a provider that raises is reported, not
        propagated (a broken sink must not break ``/metrics``)."""
        out: list[tuple[str, SinkStatsLike | None, str | None]] = []
        for name, provider in list(self._sinks.items()):
            try:
                out.append((name, provider(), None))
            except Exception as exc:
                out.append((name, None, redact_text(repr(exc))))
        return out

    def add_refresher(self, refresh: Callable[[], None]) -> None:
        """Call ``refresh`` before every scrape or snapshot: for counters that are cheaper to
        copy from their owner when read than to update on the hot path."""
        self._refreshers.append(refresh)

    def refresh(self) -> None:
        for refresh in self._refreshers:
            refresh()

    def snapshot(self, now_ms: int | None = None) -> HealthSnapshot:
        """Everything the health endpoint and the dashboard show (a ``SnapshotProvider``)."""
        self.refresh()
        now = now_ms if now_ms is not None else self.now_ms()
        streams = tuple(sm.row(self.venue_ms(sm.key.venue, now))
                        for sm in self._streams.values())
        sinks = tuple(
            SinkRow(name=name, written=s.written, pending=s.pending, failures=s.failures,
                    retries=s.retries, dropped=s.dropped, last_error=s.last_error,
                    rejected=getattr(s, "rejected", 0),
                    last_rejection=getattr(s, "last_rejection", None))
            if s is not None else SinkRow(name=name, last_error=f"stats unavailable: {err}")
            for name, s, err in self.sink_stats())
        return HealthSnapshot(
            ts_ms=now,
            uptime_s=self.uptime_s(), streams=streams,
            connections=tuple(cm.row() for cm in self._connections.values()),
            sinks=sinks, messages_total=sum(r.messages for r in streams),
            clocks=self.clocks())

    def exposition(self) -> bytes:
        """The Prometheus text format of this registry."""
        from prometheus_client import generate_latest

        data: bytes = generate_latest(self.registry)
        return data
