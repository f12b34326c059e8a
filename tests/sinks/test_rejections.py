"""Rows a real SQLite database refuses (a trigger acting as a CHECK constraint, an integer beyond
64 bits, a malformed value) are isolated, counted per sink, logged once at a limited rate and
shown in ``/metrics`` and ``/health`` — while a database that is *down* (locked) keeps every
candle and retries: an outage never becomes a rejection."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from sinkkit import KEY, MINUTE, T0, make_candle

from candlekeeper.core.candle import Candle
from candlekeeper.core.events import StreamState
from candlekeeper.errors import SinkError
from candlekeeper.observability.metrics import Metrics
from candlekeeper.sinks import BatchingWriter
from candlekeeper.sinks.sqlite import SQLiteSink

REFUSE_ZERO_CLOSE = """CREATE TRIGGER refuse_zero_close BEFORE INSERT ON candles
    WHEN NEW.close = '0' BEGIN SELECT RAISE({action}, 'close must not be 0'); END"""


def bad(i: int) -> Candle:
    """Candle ``i`` with a close the trigger refuses."""
    return make_candle(i, close="0")


def stored(sink: SQLiteSink) -> list[int]:
    return [(c.open_time - T0) // MINUTE for c in sink.read(KEY)]


def add_trigger(path: Path, action: str = "ABORT") -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(REFUSE_ZERO_CLOSE.format(action=action))


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def rejection_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "rejected" in r.getMessage()]


@pytest.mark.parametrize("action", ["ABORT", "FAIL", "ROLLBACK"])
async def test_a_refused_row_is_isolated_and_the_others_stored(db_path: Path,
                                                               action: str) -> None:
    sink = SQLiteSink(db_path)
    await sink.open()
    add_trigger(db_path, action)  # ROLLBACK ends the whole transaction, not only the row
    batch = [make_candle(0), bad(1), make_candle(2), bad(3), make_candle(4)]
    rejected = await sink.write(batch)
    assert [r.candle for r in rejected] == [batch[1], batch[3]]
    assert all(r.reason == "IntegrityError: close must not be 0" for r in rejected)
    assert stored(sink) == [0, 2, 4]
    assert (sink.rows_written, sink.rejected) == (3, 2)
    await sink.close()


async def test_an_integer_sqlite_cannot_hold_is_rejected_not_retried(sink: SQLiteSink) -> None:
    huge = msgspec.structs.replace(make_candle(1), trades=2**64)
    [rejection] = await sink.write([make_candle(0), huge, make_candle(2)])
    assert rejection.candle is huge and rejection.reason.startswith("OverflowError: ")
    assert stored(sink) == [0, 2]


async def test_the_writer_counts_logs_once_and_exports_rejections(
        db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sink = SQLiteSink(db_path)
    await sink.open()
    add_trigger(db_path)
    metrics = Metrics()
    writer = BatchingWriter(sink, batch_size=5, flush_interval_s=0.01)
    metrics.track_sink("sqlite", lambda: writer.stats)
    await writer.start()
    malformed = msgspec.structs.replace(make_candle(8), close_str="7,61")
    for c in [make_candle(0), bad(1), make_candle(2), make_candle(3), make_candle(4),
              make_candle(5), bad(6), make_candle(7), malformed, make_candle(9)]:
        writer.submit(c)
    await until(lambda: writer.stats.pending == 0)
    stats = writer.stats
    assert (stats.written, stats.rejected, stats.failures, stats.retries) == (7, 3, 0, 0)
    assert stats.last_rejection == ("binance-usdm:SUSHIUSDT:1m:1626993180000: close must be "
                                    "decimal text, got '7,61'")
    assert stored(sink) == [0, 2, 3, 4, 5, 7, 9]
    # two batches with rejections: one log line (rate-limited), at ERROR
    [line] = rejection_lines(caplog)
    assert line.levelno == logging.ERROR
    assert line.getMessage() == (
        "sink 'sqlite' rejected 1 candle(s) as data it can never store; not retried, 1 rejected "
        "in total (first: binance-usdm:SUSHIUSDT:1m:1626992760000: IntegrityError: close must "
        "not be 0)")
    # /metrics and /health
    text = metrics.exposition().decode()
    assert 'candlekeeper_sink_rows_rejected_total{sink="sqlite"} 3.0' in text
    assert 'candlekeeper_sink_rows_written_total{sink="sqlite"} 7.0' in text
    [row] = metrics.snapshot().sinks
    assert (row.rejected, row.last_rejection) == (3, stats.last_rejection)
    metrics.stream(KEY).set_state(StreamState.LIVE)  # ingesting fine: the sink is the news
    report = json.loads(json.dumps(metrics.snapshot().to_report()))
    assert report["status"] == "degraded"
    assert report["sinks"][0]["rejected"] == 3
    assert ("sink sqlite rejected 3 candle(s) as data it cannot store (last: "
            f"{stats.last_rejection})") in report["reasons"]
    await writer.stop()


async def test_a_locked_database_is_an_outage_not_a_rejection(db_path: Path) -> None:
    sink = SQLiteSink(db_path, busy_timeout_s=0.05)
    await sink.open()
    add_trigger(db_path)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    with pytest.raises(SinkError, match="database is locked"):
        await sink.write([make_candle(0), bad(1)])  # a data error *and* an outage: outage wins
    assert sink.rejected == 0
    writer = BatchingWriter(sink, batch_size=3, flush_interval_s=0.01, retry_initial_s=0.01,
                            retry_max_s=0.05)
    await writer.start()
    for c in [make_candle(0), bad(1), make_candle(2)]:
        writer.submit(c)
    await until(lambda: writer.stats.failures >= 3)
    assert (writer.stats.rejected, writer.stats.written, writer.stats.pending) == (0, 0, 3)
    blocker.execute("ROLLBACK")
    blocker.close()
    await until(lambda: writer.stats.pending == 0)
    assert (writer.stats.written, writer.stats.rejected) == (2, 1)
    assert stored(sink) == [0, 2]
    await writer.stop()
