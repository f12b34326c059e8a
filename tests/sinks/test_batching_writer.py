"""BatchingWriter over a real SQLiteSink: batching by size and by time, retry after failures (a
real locked database and injected errors), drain on stop within a deadline, overflow policy."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

import pytest
from sinkkit import KEY, MINUTE, T0, FailingSink, GateSink, HangOnceSink, RecordingSink, make_candle

from candlekeeper.errors import SinkError
from candlekeeper.sinks import BatchingWriter
from candlekeeper.sinks.sqlite import SQLiteSink


def open_times(sink: SQLiteSink) -> list[int]:
    return [(c.open_time - T0) // MINUTE for c in sink.read(KEY)]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"batch_size": 0}, "batch_size"),
    ({"flush_interval_s": -1.0}, "flush_interval_s"),
    ({"batch_size": 10, "max_pending": 5}, "max_pending"),
    ({"retry_initial_s": 2.0, "retry_max_s": 1.0}, "retry_initial_s"),
    ({"write_timeout_s": 0.0}, "write_timeout_s"),
])
def test_invalid_settings_are_refused(db_path: Path, kwargs: dict[str, float],
                                      message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchingWriter(SQLiteSink(db_path), **kwargs)  # type: ignore[arg-type]


# -- batching ----------------------------------------------------------------------------------
async def test_flushes_full_batches_without_waiting_for_the_interval(db_path: Path) -> None:
    sqlite = SQLiteSink(db_path)
    sink = RecordingSink(sqlite)
    writer = BatchingWriter(sink, batch_size=100, flush_interval_s=60.0)
    await writer.start()
    for i in range(250):
        writer.submit(make_candle(i))
    await sink.wait_for(lambda: len(sink.batches) == 2, timeout=2.0)  # long before 60 s
    assert sink.sizes == [100, 100]
    assert writer.stats.pending == 50
    assert open_times(sqlite) == list(range(200))
    await writer.stop()
    assert sink.sizes == [100, 100, 50]
    s = writer.stats
    assert (s.written, s.pending, s.batches, s.failures, s.dropped) == (250, 0, 3, 0, 0)
    assert (sink.opens, sink.closes) == (1, 1)


async def test_flushes_a_partial_batch_after_the_interval(db_path: Path) -> None:
    sink = RecordingSink(SQLiteSink(db_path))
    writer = BatchingWriter(sink, batch_size=1000, flush_interval_s=0.1)
    await writer.start()
    try:
        start = time.monotonic()
        for i in range(3):
            writer.submit(make_candle(i))
        await sink.wait_for(lambda: len(sink.batches) == 1)
        elapsed = time.monotonic() - start
        assert sink.sizes == [3]
        assert 0.09 <= elapsed < 1.0
        last = writer.stats.last_flush_monotonic
        assert last is not None
        assert start < last <= time.monotonic()
        # a later trickle gets its own timer
        writer.submit(make_candle(3))
        await sink.wait_for(lambda: len(sink.batches) == 2)
        assert sink.sizes == [3, 1]
    finally:
        await writer.stop()


async def test_submit_before_start_is_buffered(db_path: Path) -> None:
    sqlite = SQLiteSink(db_path)
    writer = BatchingWriter(sqlite, batch_size=10, flush_interval_s=0.01)
    for i in range(25):
        writer.submit(make_candle(i))
    assert writer.stats.pending == 25
    await writer.start()
    await writer.start()  # idempotent
    await writer.stop()
    reader = SQLiteSink(db_path)
    await reader.open()
    assert open_times(reader) == list(range(25))
    await reader.close()


# -- failures and retry --------------------------------------------------------------------------
async def test_retries_failed_batches_then_writes_everything_once(db_path: Path) -> None:
    sqlite = SQLiteSink(db_path)
    sink = FailingSink(sqlite, fail_times=3)
    writer = BatchingWriter(sink, batch_size=50, flush_interval_s=0.01, retry_initial_s=0.01,
                            retry_max_s=0.02)
    await writer.start()
    for i in range(120):
        writer.submit(make_candle(i))
    await sink.wait_for(lambda: sum(sink.sizes) == 120)
    s = writer.stats
    assert (s.written, s.pending, s.failures, s.retries, s.dropped) == (120, 0, 3, 3, 0)
    assert s.last_error == "SinkError: simulated failure 3/3"
    assert sink.sizes == [50, 50, 20]  # the failed batch was kept whole and written first
    assert open_times(sqlite) == list(range(120))  # no loss, no duplicate, in order
    await writer.stop()


async def test_a_buggy_sink_exception_is_retried_too(db_path: Path) -> None:
    sink = FailingSink(SQLiteSink(db_path), fail_times=1, exc=RuntimeError("bug"))
    writer = BatchingWriter(sink, batch_size=5, flush_interval_s=0.0, retry_initial_s=0.01)
    await writer.start()
    writer.submit(make_candle(0))
    await sink.wait_for(lambda: len(sink.batches) == 1)
    assert writer.stats.failures == 1
    assert writer.stats.last_error == "RuntimeError: bug"
    await writer.stop()


async def test_recovers_when_a_locked_database_is_released(
        db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sqlite = SQLiteSink(db_path, busy_timeout_s=0.01)
    sink = RecordingSink(sqlite)
    writer = BatchingWriter(sink, batch_size=10, flush_interval_s=0.0, retry_initial_s=0.01,
                            retry_max_s=0.05)
    await writer.start()
    locker = sqlite3.connect(db_path, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the database
        for i in range(30):
            writer.submit(make_candle(i))
        await sink.wait_for(lambda: writer.stats.failures >= 3)
        assert sink.batches == []
        assert writer.stats.failures >= 3
        assert "database is locked" in (writer.stats.last_error or "")
        assert writer.stats.pending == 30
        locker.execute("COMMIT")
        await sink.wait_for(lambda: sum(sink.sizes) == 30)
    finally:
        locker.close()
    assert open_times(sqlite) == list(range(30))
    assert writer.stats.written == 30
    assert writer.stats.retries == writer.stats.failures
    assert "keeping them and retrying" in caplog.text
    await writer.stop()


async def test_a_hung_write_times_out_and_is_retried(db_path: Path) -> None:
    sqlite = SQLiteSink(db_path)
    sink = HangOnceSink(sqlite)
    writer = BatchingWriter(sink, batch_size=5, flush_interval_s=0.0, retry_initial_s=0.01,
                            write_timeout_s=0.05)
    await writer.start()
    for i in range(5):
        writer.submit(make_candle(i))
    await sink.wait_for(lambda: len(sink.batches) == 1)
    assert writer.stats.failures == 1
    assert writer.stats.last_error == "write timed out after 0.05s"
    assert open_times(sqlite) == list(range(5))
    await writer.stop()


# -- shutdown ------------------------------------------------------------------------------------
async def test_stop_drains_everything_pending(db_path: Path) -> None:
    sqlite = SQLiteSink(db_path)
    writer = BatchingWriter(sqlite, batch_size=1000, flush_interval_s=60.0)
    await writer.start()
    for i in range(10):
        writer.submit(make_candle(i))
    await writer.stop(drain_timeout_s=5.0)
    assert writer.stats.pending == 0
    assert writer.stats.written == 10
    assert not sqlite.is_open  # the writer closed its sink
    reader = SQLiteSink(db_path)
    await reader.open()
    assert open_times(reader) == list(range(10))
    await reader.close()


async def test_stop_keeps_retrying_within_the_deadline(db_path: Path) -> None:
    sink = FailingSink(SQLiteSink(db_path), fail_times=2)
    writer = BatchingWriter(sink, batch_size=1000, flush_interval_s=60.0, retry_initial_s=0.01)
    await writer.start()
    for i in range(7):
        writer.submit(make_candle(i))
    await writer.stop(drain_timeout_s=5.0)
    assert (writer.stats.written, writer.stats.failures, writer.stats.pending) == (7, 2, 0)


async def test_stop_gives_up_at_the_deadline_and_reports_what_is_left(
        db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sink = FailingSink(SQLiteSink(db_path), fail_times=10**9)
    writer = BatchingWriter(sink, batch_size=4, flush_interval_s=0.0, retry_initial_s=0.01,
                            retry_max_s=0.02)
    await writer.start()
    for i in range(10):
        writer.submit(make_candle(i))
    start = time.monotonic()
    await writer.stop(drain_timeout_s=0.2)
    assert 0.19 <= time.monotonic() - start < 2.0
    s = writer.stats
    assert (s.written, s.pending) == (0, 10)
    assert s.failures >= 2
    assert "drain deadline (0.2s) passed with 10 candle(s) not written" in caplog.text
    assert sink.closes == 1
    await writer.stop()  # idempotent
    writer.submit(make_candle(11))  # never raises after stop; counted as lost
    assert writer.stats.dropped == 1
    with pytest.raises(SinkError, match="was stopped"):
        await writer.start()


# -- overflow ------------------------------------------------------------------------------------
async def test_overflow_drops_the_oldest_queued_candles_loudly(
        db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sqlite = SQLiteSink(db_path)
    sink = GateSink(sqlite)
    writer = BatchingWriter(sink, batch_size=5, flush_interval_s=0.0, max_pending=10)
    await writer.start()
    for i in range(5):
        writer.submit(make_candle(i))
    await asyncio.wait_for(sink.entered.wait(), 2.0)  # batch 0..4 is in flight, blocked
    caplog.set_level(logging.ERROR)
    start = time.perf_counter()
    for i in range(5, 25):
        writer.submit(make_candle(i))  # the feed is never blocked
    assert time.perf_counter() - start < 0.05
    s = writer.stats
    assert (s.pending, s.dropped) == (10, 15)
    assert "dropped" in caplog.text
    assert "DATA LOSS" in caplog.text
    sink.gate.set()
    await writer.stop(drain_timeout_s=5.0)
    reader = SQLiteSink(db_path)
    await reader.open()
    # the in-flight batch survives, then the newest candles that fitted
    assert open_times(reader) == [0, 1, 2, 3, 4, 20, 21, 22, 23, 24]
    await reader.close()
    assert writer.stats.written == 10
