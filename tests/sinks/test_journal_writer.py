"""BatchingWriter with an outage journal, over a real SQLiteSink behind failure-injecting wrappers:
spill on failure and past the threshold, drain journal-first in order, exactly once, replay of a
non-empty journal at the next start (before new data), a torn journal after a crash, a full
journal falling back to memory, retry_open, and the backlog metrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sinkkit import KEY, MINUTE, T0, FailingSink, RecordingSink, make_candle

from candlekeeper.errors import SinkError
from candlekeeper.sinks import BatchingWriter
from candlekeeper.sinks.sqlite import SQLiteSink


def numbers(candles: list) -> list[int]:  # type: ignore[type-arg]
    return [(c.open_time - T0) // MINUTE for c in candles]


def stored(sink: SQLiteSink) -> list[int]:
    return numbers(sink.read(KEY))


class SwitchSink(RecordingSink):
    """Fails while ``down`` is True (a database that is stopped), like a real outage."""

    def __init__(self, inner: SQLiteSink) -> None:
        super().__init__(inner)
        self.down = False

    async def before_write(self, candles: object) -> None:
        if self.down:
            raise SinkError("connection refused")


async def wait_until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def test_an_outage_spills_to_the_journal_then_drains_in_order_exactly_once(
        tmp_path: Path) -> None:
    sqlite = SQLiteSink(tmp_path / "c.db")
    sink = SwitchSink(sqlite)
    writer = BatchingWriter(sink, batch_size=20, flush_interval_s=0.0, retry_initial_s=0.01,
                            retry_max_s=0.05, journal_dir=tmp_path / "journal")
    await writer.start()
    for i in range(30):
        writer.submit(make_candle(i))
    await sink.wait_for(lambda: sum(sink.sizes) == 30)
    sink.down = True
    for i in range(30, 230):
        start = time.perf_counter()
        writer.submit(make_candle(i))
        assert time.perf_counter() - start < 0.01  # the feed never waits for the disk
        if i % 20 == 0:
            await asyncio.sleep(0.01)
    await wait_until(lambda: writer.stats.journal_rows == 200 and writer.stats.in_memory == 0)
    s = writer.stats
    assert (s.pending, s.written, s.dropped) == (200, 30, 0)
    assert s.spilled >= 200 and s.journal_bytes > 0 and s.failures >= 1
    assert s.oldest_pending_age_s is not None and 0 <= s.oldest_pending_age_s < 5
    assert stored(sqlite) == list(range(30))
    for i in range(230, 240):  # arrive during the outage, stay in memory until the next spill
        writer.submit(make_candle(i))
    sink.down = False
    await sink.wait_for(lambda: sum(sink.sizes) == 240)
    assert stored(sqlite) == list(range(240))  # nothing lost, in order
    flat = [n for b in sink.batches for n in numbers(b)]
    assert flat == list(range(240))  # and each candle written exactly once
    await wait_until(lambda: writer.stats.pending == 0)  # the last record's ack follows its write
    s = writer.stats
    assert (s.pending, s.journal_rows, s.journal_bytes, s.written) == (0, 0, 0, 240)
    assert s.replayed == s.spilled and s.oldest_pending_age_s is None
    await writer.stop()
    assert [p.stat().st_size for p in (tmp_path / "journal").glob("seg-*")] == [8]  # compacted


async def test_a_restart_with_a_non_empty_journal_replays_it_before_new_data(
        tmp_path: Path) -> None:
    down = FailingSink(SQLiteSink(tmp_path / "c.db"), fail_times=10**9)
    first = BatchingWriter(down, batch_size=25, flush_interval_s=0.0, retry_initial_s=0.01,
                           journal_dir=tmp_path / "journal")
    await first.start()
    for i in range(100):
        first.submit(make_candle(i))
    await first.stop(drain_timeout_s=0.2)  # the database never came back: spill and exit
    assert (first.stats.journal_rows, first.stats.in_memory, first.stats.dropped) == (100, 0, 0)

    sqlite = SQLiteSink(tmp_path / "c.db")
    sink = RecordingSink(sqlite)
    second = BatchingWriter(sink, batch_size=25, flush_interval_s=0.0,
                            journal_dir=tmp_path / "journal")
    assert second.stats.journal_rows == 0  # not opened yet
    await second.start()
    for i in range(100, 130):  # new data arrives immediately after the start
        second.submit(make_candle(i))
    await sink.wait_for(lambda: sum(sink.sizes) == 130)
    assert numbers([c for b in sink.batches for c in b]) == list(range(130))  # journal first
    assert second.stats.replayed == 100
    await second.stop()
    check = SQLiteSink(tmp_path / "c.db")
    await check.open()
    assert stored(check) == list(range(130))
    await check.close()


async def test_a_slow_sink_spills_past_the_threshold_and_keeps_order(tmp_path: Path) -> None:
    class SlowSink(RecordingSink):
        async def before_write(self, candles: object) -> None:
            await asyncio.sleep(0.01)

    sqlite = SQLiteSink(tmp_path / "c.db")
    sink = SlowSink(sqlite)
    writer = BatchingWriter(sink, batch_size=10, flush_interval_s=0.0, spill_threshold=50,
                            max_pending=1000, journal_dir=tmp_path / "journal")
    await writer.start()
    peak = 0
    for i in range(300):  # 10 candles per ms against 10 candles per 10 ms
        writer.submit(make_candle(i))
        if i % 10 == 9:
            await asyncio.sleep(0.001)
            peak = max(peak, writer.stats.in_memory)
    await sink.wait_for(lambda: sum(sink.sizes) == 300, timeout=10.0)
    s = writer.stats
    assert s.spilled > 0 and s.replayed == s.spilled and s.failures == 0
    # memory stays near the threshold (plus what arrives during one 10 ms write), not 300
    assert 50 <= peak < 160
    assert [n for b in sink.batches for n in numbers(b)] == list(range(300))  # once, in order
    await writer.stop()


async def test_a_torn_journal_after_a_crash_never_crashes_the_writer(tmp_path: Path) -> None:
    down = FailingSink(SQLiteSink(tmp_path / "c.db"), fail_times=10**9)
    first = BatchingWriter(down, batch_size=10, flush_interval_s=0.0, retry_initial_s=0.01,
                           journal_dir=tmp_path / "journal")
    await first.start()
    for i in range(30):
        first.submit(make_candle(i))
    await first.stop(drain_timeout_s=0.1)
    [seg] = (tmp_path / "journal").glob("seg-*")
    data = seg.read_bytes()
    seg.write_bytes(data[:-50] + b"\x00" * 7)  # the last record torn mid-write, plus junk

    sqlite = SQLiteSink(tmp_path / "c.db")
    sink = RecordingSink(sqlite)
    second = BatchingWriter(sink, batch_size=10, flush_interval_s=0.0,
                            journal_dir=tmp_path / "journal")
    await second.start()
    second.submit(make_candle(30))
    await sink.wait_for(lambda: sum(sink.sizes) == 21)
    assert stored(sqlite) == [*range(20), 30]  # the torn record (20..29) is gone, loudly
    assert second.stats.journal_corrupt_bytes > 0
    await second.stop()


async def test_a_full_journal_falls_back_to_memory(tmp_path: Path) -> None:
    sqlite = SQLiteSink(tmp_path / "c.db")
    sink = SwitchSink(sqlite)
    sink.down = True
    writer = BatchingWriter(sink, batch_size=10, flush_interval_s=0.0, retry_initial_s=0.01,
                            retry_max_s=0.02, journal_dir=tmp_path / "journal",
                            journal_segment_bytes=4096, journal_max_bytes=4096)
    await writer.start()
    for i in range(10):  # ~3.5 KB: fits
        writer.submit(make_candle(i))
    await wait_until(lambda: writer.stats.journal_rows == 10)
    for i in range(10, 40):  # ~10 KB more: does not
        writer.submit(make_candle(i))
    await wait_until(lambda: writer.stats.journal_errors >= 1)
    s = writer.stats
    assert (s.journal_rows, s.in_memory, s.dropped) == (10, 30, 0)
    sink.down = False
    await sink.wait_for(lambda: sum(sink.sizes) == 40)
    assert stored(sqlite) == list(range(40))
    await writer.stop()


async def test_retry_open_keeps_candles_until_the_sink_can_open(tmp_path: Path) -> None:
    class LateSink(RecordingSink):
        def __init__(self, inner: SQLiteSink) -> None:
            super().__init__(inner)
            self.refuse = True

        async def open(self) -> None:
            self.opens += 1
            if self.refuse:
                raise SinkError("server is starting up")
            await self.inner.open()

    sink = LateSink(SQLiteSink(tmp_path / "c.db"))
    strict = BatchingWriter(sink, journal_dir=tmp_path / "j1")
    with pytest.raises(SinkError, match="starting up"):
        await strict.start()

    writer = BatchingWriter(sink, batch_size=5, flush_interval_s=0.0, retry_initial_s=0.01,
                            retry_max_s=0.02, journal_dir=tmp_path / "j2", retry_open=True)
    await writer.start()
    for i in range(12):
        writer.submit(make_candle(i))
    await wait_until(lambda: writer.stats.journal_rows == 12)
    assert writer.stats.last_error == "SinkError: server is starting up"
    sink.refuse = False
    await sink.wait_for(lambda: sum(sink.sizes) == 12)
    await writer.stop()
    assert writer.stats.written == 12 and writer.stats.pending == 0
