"""Metrics: per-stream counters, status events, pulled bus/sink stats, and their exposition."""

from __future__ import annotations

from obskit import candle
from prometheus_client.parser import text_string_to_metric_families

from candlekeeper.core.bus import EventBus, OverflowPolicy
from candlekeeper.core.candle import Candle
from candlekeeper.core.events import (
    CandleClosed,
    ConnectionState,
    ConnectionStatus,
    StreamState,
    StreamStatus,
)
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.observability.metrics import Metrics
from candlekeeper.sinks import WriterStats

KEY = StreamKey("binance-usdm", "BTCUSDT", "1m")
LABELS = {"venue": "binance-usdm", "symbol": "BTCUSDT", "interval": "1m"}


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Parse our own exposition back: (sample name, labels) -> value."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, frozenset(labels.items()))]


def test_stream_counters_and_lag() -> None:
    now = [1_700_000_042_500]
    m = Metrics(now_ms=lambda: now[0])
    sm = m.stream(KEY)
    assert m.stream(KEY) is sm  # cached: the feed keeps it and never looks it up again
    c = candle(event_time=1_700_000_041_000)
    for _ in range(3):
        sm.on_candle(c)
    sm.on_message(event_time_ms=1_700_000_041_000)
    closed = candle("64001.20", closed=True)
    sm.on_closed(closed, now_ms=closed.close_time + 801)
    sm.stored += 1
    assert value(m, "candlekeeper_stream_messages_total", **LABELS) == 4
    assert value(m, "candlekeeper_stream_candles_closed_total", **LABELS) == 1
    assert value(m, "candlekeeper_stream_candles_stored_total", **LABELS) == 1
    assert value(m, "candlekeeper_stream_lag_seconds", **LABELS) == 1.5
    assert value(m, "candlekeeper_stream_last_close_time_seconds", **LABELS) == \
        closed.close_time / 1000
    hist = {"venue": "binance-usdm", "interval": "1m"}
    assert value(m, "candlekeeper_close_delay_seconds_count", **hist) == 1
    assert value(m, "candlekeeper_close_delay_seconds_sum", **hist) == 0.801
    assert value(m, "candlekeeper_close_delay_seconds_bucket", le="0.5", **hist) == 0
    assert value(m, "candlekeeper_close_delay_seconds_bucket", le="1.0", **hist) == 1
    row = m.snapshot().streams[0]
    assert row.last_close_price == "64001.20"  # exact decimal, as sent
    assert row.messages == 4
    assert row.closed == 1
    assert row.lag_ms == 1500


def test_candle_without_event_time_keeps_previous_lag() -> None:
    sm = Metrics().stream(KEY)
    sm.on_candle(candle(event_time=1000))
    sm.on_candle(candle(event_time=None))
    assert sm.messages == 2
    assert sm.lag_ms(1100) == 100  # lag = data age: grows while nothing newer arrives
    assert sm.lag_ms(99_999) == 98_999


def test_stream_state_transitions() -> None:
    m = Metrics()
    for state in (StreamState.SUBSCRIBED, StreamState.LIVE, StreamState.STALLED,
                  StreamState.LIVE, StreamState.DISCONNECTED, StreamState.DISCONNECTED,
                  StreamState.SUBSCRIBING, StreamState.SILENT):
        m.on_stream_status(StreamStatus(KEY, state, detail=f"now {state}", ts_ms=5))
    sm = m.stream(KEY)
    assert sm.state is StreamState.SILENT
    assert sm.reconnects == 1  # a repeated DISCONNECTED status is one loss, not two
    assert sm.stalls == 2
    assert sm.detail == "now silent"
    assert value(m, "candlekeeper_stream_state", state="silent", **LABELS) == 1
    assert value(m, "candlekeeper_stream_state", state="live", **LABELS) == 0
    assert value(m, "candlekeeper_stream_reconnects_total", **LABELS) == 1
    assert value(m, "candlekeeper_stream_stalls_total", **LABELS) == 2


def test_connection_metrics() -> None:
    m = Metrics()
    m.on_connection_status(ConnectionStatus("usdm-0", ConnectionState.RECONNECTING, streams=3,
                                            detail="connection refused", reconnects=2),
                           venue="binance-usdm")
    cm = m.connection("usdm-0")
    cm.malformed += 5
    cm.error_frames += 1
    cm.messages += 100
    labels = {"venue": "binance-usdm", "connection": "usdm-0"}
    assert value(m, "candlekeeper_connection_state", state="reconnecting", **labels) == 1
    assert value(m, "candlekeeper_connection_state", state="connected", **labels) == 0
    assert value(m, "candlekeeper_connection_reconnects_total", **labels) == 2
    assert value(m, "candlekeeper_malformed_frames_total", **labels) == 5
    assert value(m, "candlekeeper_error_frames_total", **labels) == 1
    assert value(m, "candlekeeper_connection_messages_total", **labels) == 100
    [conn] = m.snapshot().connections
    assert (conn.state, conn.streams, conn.detail) == ("reconnecting", 3, "connection refused")


async def test_bus_drops_and_handler_errors_are_pulled_at_scrape_time() -> None:
    m = Metrics()
    bus = EventBus()
    m.track_bus(bus, name="feed")

    def boom(_candle: Candle) -> None:
        raise RuntimeError("strategy bug")

    bus.subscribe(CandleClosed, boom, inline=True, name="strategy")
    bus.subscribe(CandleClosed, lambda e: None, maxsize=2, policy=OverflowPolicy.DROP_NEWEST,
                  name="slow")
    for i in range(5):
        bus.publish_to(CandleClosed, candle(open_time=i * 60_000))
    strategy = {"bus": "feed", "subscriber": "strategy", "event": "CandleClosed"}
    slow = {"bus": "feed", "subscriber": "slow", "event": "CandleClosed"}
    assert value(m, "candlekeeper_handler_errors_total", **strategy) == 5
    assert value(m, "candlekeeper_bus_dropped_total", **slow) == 3
    assert value(m, "candlekeeper_bus_queue_depth", **slow) == 2
    assert value(m, "candlekeeper_bus_delivered_total", **slow) == 0


def test_sink_stats_and_a_failing_provider() -> None:
    m = Metrics()
    stats = WriterStats(written=1200, pending=34, batches=3, failures=2, retries=2, dropped=0,
                        last_error="database is locked", last_flush_monotonic=None)
    m.track_sink("sqlite", lambda: stats)

    def broken() -> WriterStats:
        raise OSError("gone")

    m.track_sink("other", broken)
    assert value(m, "candlekeeper_sink_rows_written_total", sink="sqlite") == 1200
    assert value(m, "candlekeeper_sink_rows_pending", sink="sqlite") == 34
    assert value(m, "candlekeeper_sink_failures_total", sink="sqlite") == 2
    assert value(m, "candlekeeper_sink_retries_total", sink="sqlite") == 2
    assert value(m, "candlekeeper_sink_rows_dropped_total", sink="sqlite") == 0
    assert ("candlekeeper_sink_rows_written_total", frozenset({("sink", "other")})) \
        not in samples(m)
    snap = m.snapshot()
    assert snap.sink_backlog == 34
    assert snap.sinks[1].last_error == "stats unavailable: OSError('gone')"


def test_error_counter_and_info() -> None:
    m = Metrics(version="9.9.9")
    m.count_error("rest_error")
    m.count_error("rest_error", 2)
    assert m.errors() == {"rest_error": 3}
    assert value(m, "candlekeeper_errors_total", kind="rest_error") == 3
    assert value(m, "candlekeeper_info", version="9.9.9") == 1
    assert value(m, "candlekeeper_start_time_seconds") == m.started_at


def test_two_instances_do_not_share_a_registry() -> None:
    a, b = Metrics(), Metrics()
    a.stream(KEY).messages += 7
    assert value(a, "candlekeeper_stream_messages_total", **LABELS) == 7
    assert ("candlekeeper_stream_messages_total", frozenset(LABELS.items())) not in samples(b)


def test_writer_backlog_and_journal_are_exported() -> None:
    m = Metrics()
    stats = WriterStats(written=10, pending=300, batches=1, failures=3, retries=3, dropped=0,
                        last_error="database down", last_flush_monotonic=None, in_memory=100,
                        journal_rows=200, journal_bytes=40_960, oldest_pending_age_s=12.5)
    m.track_sink("postgres", lambda: stats)
    assert value(m, "candlekeeper_sink_rows_pending", sink="postgres") == 300
    assert value(m, "candlekeeper_sink_journal_rows", sink="postgres") == 200
    assert value(m, "candlekeeper_sink_journal_bytes", sink="postgres") == 40_960
    assert value(m, "candlekeeper_sink_oldest_pending_seconds", sink="postgres") == 12.5


def test_rejected_and_dropped_rows_are_exported_and_degrade_health() -> None:
    m = Metrics()
    stats = WriterStats(written=998, pending=0, batches=2, failures=0, retries=0, dropped=5,
                        last_error=None, last_flush_monotonic=None, rejected=2,
                        last_rejection="binance-usdm:BTCUSDT:1m:0: value out of range")
    m.track_sink("postgres", lambda: stats)
    m.stream(KEY).set_state(StreamState.LIVE)
    assert value(m, "candlekeeper_sink_rows_rejected_total", sink="postgres") == 2
    assert value(m, "candlekeeper_sink_rows_dropped_total", sink="postgres") == 5
    [row] = m.snapshot().sinks
    assert (row.rejected, row.last_rejection) == (2, stats.last_rejection)
    report = m.snapshot().to_report()
    assert report["status"] == "degraded"
    assert report["reasons"] == [
        "sink postgres dropped 5 candle(s) to the overflow policy (data loss)",
        "sink postgres rejected 2 candle(s) as data it cannot store (last: "
        "binance-usdm:BTCUSDT:1m:0: value out of range)"]


def test_a_failing_stats_provider_shows_no_credentials() -> None:
    m = Metrics()

    def broken() -> WriterStats:
        raise OSError("cannot reach nats://app:s3cret@h:4222 (password=hunter2)")

    m.track_sink("nats", broken)
    [row] = m.snapshot().sinks
    assert row.last_error == ("stats unavailable: OSError('cannot reach nats://***@h:4222 "
                              "(password=***)')")
