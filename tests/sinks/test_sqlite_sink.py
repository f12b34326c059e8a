"""SQLiteSink against real database files: exact round trip of captured Binance frames, the upsert
policy, reads, concurrency with a reader thread, locking failures and schema versioning."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from sinkkit import KEY, MINUTE, T0, make_candle

from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError, SinkError
from candlekeeper.sinks import Sink
from candlekeeper.sinks.sqlite import SQLiteSink
from candlekeeper.venues.binance.endpoints import BINANCE_USDM
from candlekeeper.venues.binance.stream import BinanceStreamCodec

CAPTURE = "binance_usdm_ws_kline_capture_2021-07-22.jsonl"


def captured_candles(samples: Path) -> list[Candle]:
    codec = BinanceStreamCodec(BINANCE_USDM)
    out = [codec.decode(line) for line in (samples / CAPTURE).read_text().splitlines()]
    assert all(isinstance(c, Candle) for c in out)
    return out  # type: ignore[return-value]


def raw_rows(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


async def test_captured_closed_candles_round_trip_every_field_exactly(
        sink: SQLiteSink, samples: Path, db_path: Path) -> None:
    closed = [c for c in captured_candles(samples) if c.closed]
    assert len(closed) == 4
    before = time.time_ns() // 1_000_000
    await sink.write(closed)
    after = time.time_ns() // 1_000_000

    sushi_key = StreamKey("binance-usdm", "SUSHIUSDT", "1m")
    [sushi] = sink.read(sushi_key)
    assert sushi == next(c for c in closed if c.symbol == "SUSHIUSDT")  # every field equal
    assert str(sushi.close) == "7.6170"
    assert str(sushi.quote_volume) == "22875.8590"
    assert (sushi.open_time, sushi.close_time, sushi.trades) == (1626992700000, 1626992759999, 113)
    assert (sushi.first_trade_id, sushi.last_trade_id) == (126902874, 126902986)
    assert (sushi.event_time, sushi.source, sushi.closed) == (1626992760203, "ws", True)
    for c in closed:
        assert sink.read(c.key) == [c]

    # on disk: decimals are TEXT exactly as sent; source and ingested_at are recorded
    [(close, close_type, source, ingested_at)] = raw_rows(
        db_path, "SELECT close, typeof(close), source, ingested_at FROM candles "
        "WHERE symbol = 'SUSHIUSDT'")
    assert (close, close_type, source) == ("7.6170", "text", "ws")
    assert isinstance(ingested_at, int)
    assert before <= ingested_at <= after


async def test_all_captured_frames_in_one_batch_keep_one_row_per_candle(
        sink: SQLiteSink, samples: Path) -> None:
    frames = captured_candles(samples)
    await sink.write(frames)  # 67 updates of a handful of candles, repeats included: no failure
    expected: dict[tuple[StreamKey, int], Candle] = {}
    for c in frames:
        old = expected.get((c.key, c.open_time))
        if old is None or not (old.closed and not c.closed):
            expected[(c.key, c.open_time)] = c
    assert sink.count() == len(expected)
    for (key, open_time), c in expected.items():
        stored = sink.read(key, open_time, open_time)
        assert len(stored) == 1
        assert stored[0].same_values(c)
    stored_keys = sink.keys()
    assert sorted(stored_keys) == stored_keys
    assert {k.symbol for k in stored_keys} == {c.symbol for c in frames}


async def test_duplicates_never_add_rows_nor_fail_the_batch(sink: SQLiteSink) -> None:
    a, b, c = make_candle(0), make_candle(1), make_candle(2)
    await sink.write([a, a, b])
    assert (sink.count(KEY), sink.rows_changed) == (2, 2)
    await sink.write([a, b, c])
    assert (sink.count(KEY), sink.rows_changed, sink.rows_written) == (3, 3, 6)
    assert sink.read(KEY) == [a, b, c]


async def test_identical_rewrite_keeps_the_first_row(sink: SQLiteSink, db_path: Path) -> None:
    ws = make_candle(0)
    await sink.write([ws])
    with sqlite3.connect(db_path) as conn:  # mark the row so any rewrite would show
        conn.execute("UPDATE candles SET ingested_at = 1")
    # the same values confirmed over REST later: nothing changes
    rest = msgspec.structs.replace(ws, source="rest", event_time=None)
    await sink.write([rest, ws])
    assert raw_rows(db_path, "SELECT source, ingested_at FROM candles") == [("ws", 1)]
    assert sink.rows_changed == 1
    assert sink.read(KEY) == [ws]


async def test_rest_correction_replaces_ws_values_but_keeps_known_fields(
        sink: SQLiteSink) -> None:
    ws = make_candle(0, close="7.6170")
    await sink.write([ws])
    rest = make_candle(0, close="7.6190", source="rest", first_trade_id=None, event_time=None)
    rest = msgspec.structs.replace(rest, event_time=None)
    await sink.write([rest])
    [stored] = sink.read(KEY)
    assert str(stored.close) == "7.6190"
    assert stored.source == "rest"
    # REST has no trade ids or event time: absent means unknown, the WS values stay
    assert (stored.first_trade_id, stored.last_trade_id) == (126902874, 126902986)
    assert stored.event_time == ws.event_time
    assert sink.count() == 1


async def test_unclosed_candle_never_replaces_a_closed_one(sink: SQLiteSink) -> None:
    live = make_candle(0, close="7.6100", closed=False)
    final = make_candle(0, close="7.6170", closed=True)
    await sink.write([live])
    assert sink.read(KEY) == [live]
    await sink.write([final])
    assert sink.read(KEY) == [final]
    await sink.write([live])  # a late, stale update
    assert sink.read(KEY) == [final]


async def test_read_helpers(sink: SQLiteSink) -> None:
    other = StreamKey("binance-spot", "BTCUSDT", "5m")
    assert sink.last_open_time(KEY) is None
    assert sink.read(KEY) == []
    assert sink.latest(KEY, 3) == []
    await sink.write([make_candle(i) for i in (4, 2, 0, 1, 3)] + [make_candle(0, key=other)])
    assert sink.last_open_time(KEY) == T0 + 4 * MINUTE
    assert [c.open_time for c in sink.read(KEY)] == [T0 + i * MINUTE for i in range(5)]
    # both bounds inclusive
    assert [c.open_time for c in sink.read(KEY, T0 + MINUTE, T0 + 3 * MINUTE)] == [
        T0 + MINUTE, T0 + 2 * MINUTE, T0 + 3 * MINUTE]
    assert [c.open_time for c in sink.read(KEY, start=T0 + 3 * MINUTE)] == [
        T0 + 3 * MINUTE, T0 + 4 * MINUTE]
    assert [c.open_time for c in sink.read(KEY, end=T0)] == [T0]
    assert [c.open_time for c in sink.latest(KEY, 2)] == [T0 + 3 * MINUTE, T0 + 4 * MINUTE]
    assert sink.latest(KEY, 0) == []
    assert (sink.count(), sink.count(KEY), sink.count(other)) == (6, 5, 1)
    assert sink.keys() == [other, KEY]
    assert sink.schema_version() == 1


async def test_malformed_candle_is_rejected_alone(sink: SQLiteSink) -> None:
    bad = msgspec.structs.replace(make_candle(1), close_str=7.617)  # a float sneaked in
    [rejection] = await sink.write([make_candle(0), bad, make_candle(2)])
    assert sink.rejected == 1 and sink.rows_written == 2
    assert [c.open_time for c in sink.read(KEY)] == [T0, T0 + 2 * MINUTE]
    assert rejection.candle is bad
    assert rejection.reason == "close must be decimal text, got 7.617"


async def test_locked_database_raises_sink_error_then_recovers(db_path: Path) -> None:
    sink = SQLiteSink(db_path, busy_timeout_s=0.05)
    await sink.open()
    locker = sqlite3.connect(db_path, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(SinkError, match="database is locked"):
            await sink.write([make_candle(0)])
        locker.execute("COMMIT")
        await sink.write([make_candle(0)])
        assert sink.count() == 1
    finally:
        locker.close()
        await sink.close()


async def test_reader_thread_sees_only_whole_batches_while_writing(sink: SQLiteSink) -> None:
    batches, size = 40, 250
    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                n = sink.count(KEY)
                rows = sink.read(KEY)
                seen.append(n)
                assert len(rows) >= n
                assert [c.open_time for c in rows] == sorted(c.open_time for c in rows)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for b in range(batches):
            await sink.write([make_candle(b * size + i) for i in range(size)])
    finally:
        done.set()
        await asyncio.to_thread(thread.join)
    assert errors == []
    assert len(seen) > 1
    assert seen == sorted(seen)  # never goes backwards
    assert all(n % size == 0 for n in seen)  # one transaction per batch: never half a batch
    assert sink.count(KEY) == batches * size


async def test_write_runs_off_the_event_loop(sink: SQLiteSink) -> None:
    ticks: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    await sink.write([make_candle(i) for i in range(60_000)])
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    assert sink.count() == 60_000
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) >= 5, f"loop starved during a {elapsed:.2f}s write"
    assert max(gaps) < max(0.25, elapsed / 4), (max(gaps), elapsed)


async def test_lifecycle_and_bad_paths(db_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a file path"):
        SQLiteSink(":memory:")
    sink = SQLiteSink(db_path, name="main")
    assert isinstance(sink, Sink)
    with pytest.raises(SinkError, match="'main' is not open"):
        await sink.write([make_candle(0)])
    with pytest.raises(SinkError, match="is not open"):
        sink.count()
    await sink.open()
    await sink.open()  # idempotent
    assert sink.is_open
    await sink.write([])
    await sink.close()
    await sink.close()  # idempotent
    assert not sink.is_open
    await sink.open()  # re-opening a closed sink works
    assert sink.count() == 0
    await sink.close()
    assert raw_rows(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert [r[0] for r in raw_rows(db_path, "SELECT version FROM schema_migrations")] == [1]
    # a clean close checkpoints the WAL into the main file
    wal = db_path.with_name(db_path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0


async def test_unusable_path_is_a_sink_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SinkError, match="cannot create folder"):
        await SQLiteSink(blocker / "candles.db").open()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SinkError, match=r"cannot prepare .*file is not a database"):
        await SQLiteSink(garbage).open()


async def test_newer_schema_is_refused(db_path: Path) -> None:
    sink = SQLiteSink(db_path)
    await sink.open()
    await sink.close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'from the future', 0)")
    with pytest.raises(SinkError, match="schema v99, newer than this candlekeeper"):
        await SQLiteSink(db_path).open()


async def test_reopen_keeps_schema_and_rows(db_path: Path) -> None:
    first = SQLiteSink(db_path)
    await first.open()
    await first.write([make_candle(0, close="0.00000010")])
    await first.close()
    second = SQLiteSink(db_path)
    await second.open()
    try:
        [c] = second.read(KEY)
        assert c.close == Decimal("0.00000010")
        assert format(c.close, "f") == "0.00000010"
        assert second.schema_version() == 1
        assert len(raw_rows(db_path, "SELECT * FROM schema_migrations")) == 1
    finally:
        await second.close()
