"""A point-in-time picture of the service, shared by ``/health`` and the terminal dashboard.

The health server and the dashboard never reach into the feed, transport or sinks: they call a
``SnapshotProvider`` (any ``() -> HealthSnapshot``; :meth:`Metrics.snapshot` is one) and render
what it returns. That keeps both testable with a hand-built snapshot and keeps the service free
to change how it gathers the numbers.

Prices are strings (the exact decimal the exchange sent), times are Unix ms in venue time.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import msgspec

from candlekeeper.core.events import ConnectionState, StreamState


class HealthStatus(enum.StrEnum):
    OK = "ok"  # every stream live, every connection up, no sink failing
    DEGRADED = "degraded"  # some data flows, something needs attention
    DOWN = "down"  # no stream is live: nothing is being ingested


class StreamRow(msgspec.Struct, frozen=True, kw_only=True):
    venue: str
    symbol: str
    interval: str
    state: str  # a StreamState value
    detail: str = ""
    messages: int = 0
    closed: int = 0  # CandleClosed events emitted
    stored: int = 0  # closed candles handed to storage
    last_close_price: str | None = None
    last_close_time_ms: int | None = None  # close time of the last closed candle
    lag_ms: int | None = None  # receive time - exchange event time of the last message
    reconnects: int = 0  # times this stream lost its connection
    stalls: int = 0  # times the watchdog flagged it STALLED or SILENT
    corrections: int = 0  # closes from REST that the venue's closing frame corrected
    backfilled: int = 0  # candles recovered over REST (gaps, warm-up)


class ConnectionRow(msgspec.Struct, frozen=True, kw_only=True):
    venue: str
    name: str
    state: str  # a ConnectionState value
    streams: int = 0
    reconnects: int = 0
    messages: int = 0
    malformed: int = 0
    error_frames: int = 0
    detail: str = ""


class SinkRow(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    written: int = 0
    pending: int = 0  # the backlog: accepted but not yet durable
    failures: int = 0
    retries: int = 0
    dropped: int = 0  # lost to the overflow policy; any non-zero value means data loss
    last_error: str | None = None
    rejected: int = 0  # refused by the backend as data it can never store (not retried)
    last_rejection: str | None = None  # "venue:symbol:interval:open_time: why" of the latest


class ClockRow(msgspec.Struct, frozen=True, kw_only=True):
    """One venue's clock as candlekeeper estimates it (``core/venue_clock.py``)."""

    venue: str
    offset_ms: float  # venue clock minus host clock, best estimate (+: the host is behind)
    uncertainty_ms: float | None = None  # half the REST round trip behind it; None: none yet
    source: str = "none"  # "rest" (server time), "ws" (event times only) or "none"
    samples: int = 0  # REST server-time answers in the estimator's window
    #: surely beyond ``gap_fill.clock_offset_warn_ms`` (the estimate minus its uncertainty)
    warning: bool = False


class HealthSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    ts_ms: int
    uptime_s: float
    streams: tuple[StreamRow, ...] = ()
    connections: tuple[ConnectionRow, ...] = ()
    sinks: tuple[SinkRow, ...] = ()
    messages_total: int = 0  # all kline messages so far (the dashboard derives msgs/s)
    shard: str | None = None  # "K/N" when this instance ingests one shard of the symbols
    clocks: tuple[ClockRow, ...] = ()  # each venue's clock offset from the host's
    #: streams still fetching their warm-up history behind their live closes (informational)
    warming: int = 0

    @property
    def sink_backlog(self) -> int:
        return sum(s.pending for s in self.sinks)

    def evaluate(self) -> tuple[HealthStatus, list[str]]:
        """Overall status and the reasons it is not ``ok``.

        ``down`` when no stream is live (including at start-up before the first message: the
        endpoint doubles as a readiness check); ``degraded`` when some stream is not live, a
        connection is not connected, a sink is failing, or a sink lost candles since the start
        (dropped by the overflow policy, or rejected as data it cannot store: both are holes in
        that store, said until a restart; alert on the counters for rates); ``ok`` otherwise.
        """
        reasons: list[str] = []
        # a stream polled over REST is served; by choice (rest mode) it is also healthy
        live = sum(1 for s in self.streams if s.state in _SERVED)
        if not self.streams:
            return HealthStatus.DOWN, ["no streams"]
        if live == 0:
            reasons.append(f"no stream is live (0/{len(self.streams)})")
        elif any(not _healthy(s) for s in self.streams):
            counts: dict[str, int] = {}
            for s in self.streams:
                if not _healthy(s):
                    counts[s.state] = counts.get(s.state, 0) + 1
            reasons.append(
                f"{sum(counts.values())}/{len(self.streams)} streams not live ("
                + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + ")")
        for c in self.connections:
            if c.state != ConnectionState.CONNECTED:
                reasons.append(f"connection {c.name} is {c.state}"
                               + (f": {c.detail}" if c.detail else ""))
        for sink in self.sinks:
            if sink.last_error is not None and sink.pending:
                reasons.append(f"sink {sink.name} failing ({sink.pending} pending): "
                               f"{sink.last_error}")
            if sink.dropped:
                reasons.append(f"sink {sink.name} dropped {sink.dropped} candle(s) to the "
                               "overflow policy (data loss)")
            if sink.rejected:
                reasons.append(f"sink {sink.name} rejected {sink.rejected} candle(s) as data it "
                               f"cannot store (last: {sink.last_rejection})")
        if live == 0:
            return HealthStatus.DOWN, reasons
        return (HealthStatus.DEGRADED if reasons else HealthStatus.OK), reasons

    def to_report(self) -> dict[str, object]:
        """The ``/health`` JSON body: status, reasons, then every row."""
        status, reasons = self.evaluate()
        body: dict[str, object] = {"status": status.value, "reasons": reasons,
                                   "sink_backlog": self.sink_backlog}
        built = msgspec.to_builtins(self)
        assert isinstance(built, dict)
        body.update(built)
        return body


SnapshotProvider = Callable[[], HealthSnapshot]


_SERVED = frozenset({StreamState.LIVE, StreamState.POLLING})
#: the detail of a stream polled because its feed runs in ``rest`` mode (``fallback.REST_MODE``)
_BY_CHOICE = "rest mode"


def _healthy(s: StreamRow) -> bool:
    return s.state == StreamState.LIVE or (s.state == StreamState.POLLING
                                           and s.detail == _BY_CHOICE)
