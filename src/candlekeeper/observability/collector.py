"""Turns the plain counters of a :class:`~candlekeeper.observability.metrics.Metrics` into
Prometheus metric families, only when ``/metrics`` is scraped (see metrics.py for the names)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from candlekeeper.core.events import ConnectionState, StreamState

if TYPE_CHECKING:
    from candlekeeper.observability.metrics import Metrics

_STREAM_LABELS = ("venue", "symbol", "interval")


class MetricsCollector(Collector):
    """Turns the plain counters of a :class:`Metrics` into metric families at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Any]:
        m = self._m
        m.refresh()
        info = GaugeMetricFamily("candlekeeper_info", "Build information", labels=["version"])
        info.add_metric([m.version], 1)
        yield info
        yield GaugeMetricFamily("candlekeeper_start_time_seconds",
                                "Unix time the service started", value=m.started_at)
        yield from self._streams()
        yield from self._connections()
        yield from self._buses()
        yield from self._sinks()
        yield from self._clocks()
        yield from self._rest()
        errors = CounterMetricFamily("candlekeeper_errors", "Bad input and failures by kind",
                                     labels=["kind"])
        for kind, n in m.errors().items():
            errors.add_metric([kind], n)
        yield errors

    def _streams(self) -> Iterator[Any]:
        labels = list(_STREAM_LABELS)

        def counter(name: str, doc: str) -> Any:
            return CounterMetricFamily(name, doc, labels=labels)

        messages = counter("candlekeeper_stream_messages", "Kline messages received")
        closed = counter("candlekeeper_stream_candles_closed", "CandleClosed events emitted")
        stored = counter("candlekeeper_stream_candles_stored", "Closed candles handed to storage")
        backfilled = counter("candlekeeper_stream_candles_backfilled",
                             "Candles recovered over REST")
        corrections = counter("candlekeeper_stream_corrections",
                              "Closes from REST that the venue's closing frame corrected")
        reconnects = counter("candlekeeper_stream_reconnects",
                             "Times the stream lost its connection")
        stalls = counter("candlekeeper_stream_stalls", "Watchdog STALLED/SILENT flags")
        lag = GaugeMetricFamily("candlekeeper_stream_lag_seconds",
                                "Receive time minus exchange event time of the last message",
                                labels=labels)
        last_close = GaugeMetricFamily("candlekeeper_stream_last_close_time_seconds",
                                       "Close time of the last closed candle", labels=labels)
        state = GaugeMetricFamily("candlekeeper_stream_state", "1 for the stream's current state",
                                  labels=[*labels, "state"])
        now = self._m.now_ms()
        for sm in self._m.streams():
            lv = list(sm.labels)
            messages.add_metric(lv, sm.messages)
            closed.add_metric(lv, sm.closed)
            stored.add_metric(lv, sm.stored)
            backfilled.add_metric(lv, sm.backfilled)
            corrections.add_metric(lv, sm.corrections)
            reconnects.add_metric(lv, sm.reconnects)
            stalls.add_metric(lv, sm.stalls)
            lag_ms = sm.lag_ms(self._m.venue_ms(sm.key.venue, now))
            if lag_ms is not None:
                lag.add_metric(lv, lag_ms / 1000.0)
            if sm.last_close_time_ms is not None:
                last_close.add_metric(lv, sm.last_close_time_ms / 1000.0)
            for st in StreamState:
                state.add_metric([*lv, st.value], 1.0 if sm.state is st else 0.0)
        yield from (messages, closed, stored, backfilled, corrections, reconnects, stalls, lag,
                    last_close, state)
        delay = HistogramMetricFamily(
            "candlekeeper_close_delay_seconds",
            "Venue time from a candle's close to its CandleClosed event",
            labels=["venue", "interval"])
        for (venue, interval), child in self._m.close_delay.items():
            delay.add_metric([venue, interval], child.cumulative(), child.sum)
        yield delay

    def _clocks(self) -> Iterator[Any]:
        offset = GaugeMetricFamily("candlekeeper_clock_offset_seconds",
                                   "Venue clock minus host clock, estimated (+: the host is "
                                   "behind)", labels=["venue"])
        uncertainty = GaugeMetricFamily("candlekeeper_clock_offset_uncertainty_seconds",
                                        "Half the REST round trip behind the clock offset",
                                        labels=["venue"])
        for row in self._m.clocks():
            if row.source == "none":
                continue  # nothing measured yet: no number rather than a made-up 0
            offset.add_metric([row.venue], row.offset_ms / 1000.0)
            if row.uncertainty_ms is not None:
                uncertainty.add_metric([row.venue], row.uncertainty_ms / 1000.0)
        yield from (offset, uncertainty)

    def _rest(self) -> Iterator[Any]:
        """Per venue (the clients of one venue summed; the window's use and limit: the
        largest, as they share one budget per IP)."""
        counters = {
            "requests": CounterMetricFamily("candlekeeper_rest_requests", "REST requests sent",
                                            labels=["venue"]),
            "errors": CounterMetricFamily("candlekeeper_rest_errors", "REST requests that failed",
                                          labels=["venue"]),
            "rate_limited": CounterMetricFamily("candlekeeper_rest_rate_limited",
                                                "Rate-limit answers (HTTP 429)", labels=["venue"]),
            "banned": CounterMetricFamily("candlekeeper_rest_banned", "IP-ban answers (HTTP 418)",
                                          labels=["venue"]),
        }
        granted = CounterMetricFamily("candlekeeper_rest_weight_granted",
                                      "Request weight spent", labels=["venue"])
        used = GaugeMetricFamily("candlekeeper_rest_weight_used",
                                 "Request weight used in the current window", labels=["venue"])
        limit = GaugeMetricFamily("candlekeeper_rest_weight_limit",
                                  "The window's weight limit candlekeeper stays under",
                                  labels=["venue"])
        sums: dict[str, dict[str, int]] = {}
        for venue, client in self._m.rest_clients():
            acc = sums.setdefault(venue, dict.fromkeys(
                (*counters, "granted", "used", "limit"), 0))
            for attr in counters:
                acc[attr] += getattr(client, attr)
            budget = client.budget
            acc["granted"] += budget.granted
            acc["used"] = max(acc["used"], budget.used)
            acc["limit"] = max(acc["limit"], budget.limit)
        for venue, acc in sorted(sums.items()):
            for attr, family in counters.items():
                family.add_metric([venue], acc[attr])
            granted.add_metric([venue], acc["granted"])
            used.add_metric([venue], acc["used"])
            limit.add_metric([venue], acc["limit"])
        yield from counters.values()
        yield from (granted, used, limit)

    def _connections(self) -> Iterator[Any]:
        labels = ["venue", "connection"]
        state = GaugeMetricFamily("candlekeeper_connection_state",
                                  "1 for the connection's current state",
                                  labels=[*labels, "state"])
        families = {
            "reconnects": CounterMetricFamily("candlekeeper_connection_reconnects",
                                              "Reconnects", labels=labels),
            "messages": CounterMetricFamily("candlekeeper_connection_messages",
                                            "Frames received", labels=labels),
            "malformed": CounterMetricFamily("candlekeeper_malformed_frames",
                                             "Frames that could not be decoded", labels=labels),
            "error_frames": CounterMetricFamily("candlekeeper_error_frames",
                                                "Error replies from the venue", labels=labels),
        }
        for cm in self._m.connections():
            lv = [cm.venue, cm.name]
            for st in ConnectionState:
                state.add_metric([*lv, st.value], 1.0 if cm.state is st else 0.0)
            for attr, family in families.items():
                family.add_metric(lv, getattr(cm, attr))
        yield state
        yield from families.values()

    def _buses(self) -> Iterator[Any]:
        labels = ["bus", "subscriber", "event"]
        delivered = CounterMetricFamily("candlekeeper_bus_delivered", "Events delivered",
                                        labels=labels)
        dropped = CounterMetricFamily("candlekeeper_bus_dropped",
                                      "Events dropped by the overflow policy", labels=labels)
        errors = CounterMetricFamily("candlekeeper_handler_errors", "Handlers that raised",
                                     labels=labels)
        depth = GaugeMetricFamily("candlekeeper_bus_queue_depth", "Events waiting",
                                  labels=labels)
        for bus_name, bus in self._m.buses():
            for event_type, sub in bus.subscriptions():
                lv = [bus_name, sub.name, getattr(event_type, "__name__", str(event_type))]
                delivered.add_metric(lv, sub.delivered)
                dropped.add_metric(lv, sub.dropped)
                errors.add_metric(lv, sub.errors)
                depth.add_metric(lv, len(sub.queue))
        yield from (delivered, dropped, errors, depth)

    def _sinks(self) -> Iterator[Any]:
        labels = ["sink"]
        written = CounterMetricFamily("candlekeeper_sink_rows_written", "Rows written",
                                      labels=labels)
        pending = GaugeMetricFamily("candlekeeper_sink_rows_pending",
                                    "Rows accepted but not yet durable", labels=labels)
        failures = CounterMetricFamily("candlekeeper_sink_failures", "Failed write attempts",
                                       labels=labels)
        retries = CounterMetricFamily("candlekeeper_sink_retries", "Write retries",
                                      labels=labels)
        dropped = CounterMetricFamily("candlekeeper_sink_rows_dropped",
                                      "Rows lost to the overflow policy", labels=labels)
        rejected = CounterMetricFamily("candlekeeper_sink_rows_rejected",
                                       "Rows the backend refused as data it can never store "
                                       "(not retried)", labels=labels)
        journal = GaugeMetricFamily("candlekeeper_sink_journal_rows",
                                    "Rows spilled to the durable journal while the backend was "
                                    "down, not yet written", labels=labels)
        journal_bytes = GaugeMetricFamily("candlekeeper_sink_journal_bytes",
                                          "Size of the durable journal", labels=labels)
        oldest = GaugeMetricFamily("candlekeeper_sink_oldest_pending_seconds",
                                   "Age of the oldest row not yet written (alert on this)",
                                   labels=labels)
        for name, stats, _err in self._m.sink_stats():
            if stats is None:
                continue
            written.add_metric([name], stats.written)
            pending.add_metric([name], stats.pending)
            failures.add_metric([name], stats.failures)
            retries.add_metric([name], stats.retries)
            dropped.add_metric([name], stats.dropped)
            # journal and rejection fields exist on writers (``WriterStats``)
            rejected.add_metric([name], getattr(stats, "rejected", 0))
            journal.add_metric([name], getattr(stats, "journal_rows", 0))
            journal_bytes.add_metric([name], getattr(stats, "journal_bytes", 0))
            age = getattr(stats, "oldest_pending_age_s", None)
            oldest.add_metric([name], age if age is not None else 0.0)
        yield from (written, pending, failures, retries, dropped, rejected, journal,
                    journal_bytes, oldest)
