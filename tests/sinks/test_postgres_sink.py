"""PostgresSink against a real PostgreSQL 15 server: exact numeric round trip of captured Binance
frames, the upsert policy (same as SQLite), partitions across month boundaries (rows checked by
``tableoid``), the default-partition safety net, malformed candles, concurrent writers, schema
versioning and the SQL helpers."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import asyncpg
import msgspec
import pytest
from sinkkit import KEY, MINUTE, T0, make_candle

from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError, SinkError
from candlekeeper.sinks import Sink
from candlekeeper.sinks.postgres import PostgresSink
from candlekeeper.sinks.postgres_schema import (
    LATEST_VERSION,
    month_of,
    month_start_ms,
    months_between,
)
from candlekeeper.venues.binance.endpoints import BINANCE_USDM
from candlekeeper.venues.binance.stream import BinanceStreamCodec
from servers import PostgresServer

CAPTURE = "binance_usdm_ws_kline_capture_2021-07-22.jsonl"
JUL_31 = 1_627_689_600_000  # 2021-07-31T00:00:00Z


class Database(NamedTuple):
    dsn: str


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    """One server for the module (a cluster takes ~0.6 s to create); each test gets its own
    database on it, so tests stay independent."""
    srv = PostgresServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
async def db(server: PostgresServer, request: pytest.FixtureRequest) -> Database:
    name = "t_" + hashlib.blake2b(request.node.nodeid.encode(), digest_size=8).hexdigest()
    admin = await asyncpg.connect(server.dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return Database(server.dsn.rsplit("/", 1)[0] + "/" + name)


@pytest.fixture(params=[1000, 1], ids=["unnest", "copy"])
async def pg(db: Database, request: pytest.FixtureRequest) -> AsyncIterator[PostgresSink]:
    """The sink, once with small batches through ``unnest`` (the default) and once with every
    batch through COPY + staging table."""
    sink = PostgresSink(db.dsn, copy_min_rows=request.param)
    await sink.open()
    yield sink
    await sink.close()


async def sql(server: Database | PostgresServer, query: str,
              *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(server.dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


def captured_candles(samples: Path) -> list[Candle]:
    codec = BinanceStreamCodec(BINANCE_USDM)
    out = [codec.decode(line) for line in (samples / CAPTURE).read_text().splitlines()]
    assert all(isinstance(c, Candle) for c in out)
    return out  # type: ignore[return-value]


# -- pure partition arithmetic --------------------------------------------------------------------
def test_month_arithmetic() -> None:
    assert month_of(T0) == (2021 - 1970) * 12 + 6  # July 2021
    assert month_start_ms(month_of(T0)) == 1_625_097_600_000  # 2021-07-01T00:00Z
    assert month_of(month_start_ms(600) - 1) == 599
    assert list(months_between(JUL_31, JUL_31 + 40 * 86_400_000)) == [618, 619, 620]
    assert list(months_between(-5, -1)) == []


# -- round trip -----------------------------------------------------------------------------------
async def test_captured_frames_round_trip_every_field_exactly(
        pg: PostgresSink, db: Database, samples: Path) -> None:
    assert isinstance(pg, Sink)
    frames = captured_candles(samples)
    closed = [c for c in frames if c.closed]
    assert len(closed) == 4
    await pg.write(closed)
    sushi_key = StreamKey("binance-usdm", "SUSHIUSDT", "1m")
    [sushi] = await pg.read(sushi_key)
    assert sushi == next(c for c in closed if c.symbol == "SUSHIUSDT")  # every field equal
    assert str(sushi.close) == "7.6170" and str(sushi.quote_volume) == "22875.8590"
    assert (sushi.first_trade_id, sushi.last_trade_id) == (126902874, 126902986)
    for c in closed:
        assert await pg.read(c.key) == [c]
    # the columns really are numeric, and keep the scale the exchange sent
    [row] = await sql(db, "SELECT pg_typeof(close)::text AS t, close, close::text AS s, "
                      "source, ingested_at FROM candles WHERE symbol = 'SUSHIUSDT'")
    assert (row["t"], row["close"], row["s"], row["source"]) == (
        "numeric", Decimal("7.6170"), "7.6170", "ws")
    assert row["ingested_at"] is not None
    # every live (unclosed) frame too: the last one per key wins unless the key is closed
    await pg.write(frames)
    assert await pg.count() == len({(c.key, c.open_time) for c in frames})
    assert pg.rows_written == len(closed) + len(frames)


async def test_tiny_and_huge_decimals_keep_their_digits(pg: PostgresSink) -> None:
    c = Candle.of("binance-spot", "SHIBUSDT", "1m", T0, T0 + MINUTE - 1, "0.00000010",
                  "0.00001000", "0.00000001", "0.000010", "123456789012345678901234567890.50",
                  quote_volume="0", closed=True)
    await pg.write([c])
    [back] = await pg.read(c.key)
    assert back == c
    assert (back.open_str, back.close_str, back.volume_str, back.quote_volume_str) == (
        "0.00000010", "0.000010", "123456789012345678901234567890.50", "0")
    assert back.trades is None and back.first_trade_id is None


# -- upsert policy --------------------------------------------------------------------------------
async def test_duplicates_are_no_ops_and_never_fail_a_batch(pg: PostgresSink,
                                                            db: Database) -> None:
    batch = [make_candle(i) for i in range(5)]
    await pg.write(batch)
    [before] = await sql(db, "SELECT max(ingested_at) AS t FROM candles")
    changed = pg.rows_changed
    await pg.write([*batch, make_candle(5)])  # 5 duplicates + 1 new
    assert pg.rows_changed - changed == 1
    assert await pg.count(KEY) == 6
    [after] = await sql(db, "SELECT ingested_at AS t FROM candles WHERE open_time = $1",
                        T0)
    assert after["t"] == before["t"]  # the duplicate did not touch the row


async def test_different_values_replace_same_value_other_scale_too(pg: PostgresSink) -> None:
    await pg.write([make_candle(0)])
    rest = make_candle(0, close="7.6190", source="rest", first_trade_id=None, event_time=None)
    await pg.write([rest])
    [got] = await pg.read(KEY)
    assert (got.close_str, got.source) == ("7.6190", "rest")
    # absent fields keep what was stored
    assert (got.first_trade_id, got.last_trade_id) == (126902874, 126902986)
    assert got.event_time == make_candle(0).event_time
    # numerically equal, textually different: the policy is "same digits", so it replaces
    changed = pg.rows_changed
    await pg.write([make_candle(0, close="7.619", source="rest", first_trade_id=None)])
    assert pg.rows_changed - changed == 1
    assert (await pg.read(KEY))[0].close_str == "7.619"


async def test_unclosed_never_replaces_closed(pg: PostgresSink) -> None:
    await pg.write([make_candle(0)])
    changed = pg.rows_changed
    await pg.write([make_candle(0, close="9.9999", closed=False)])
    assert pg.rows_changed == changed
    assert (await pg.read(KEY))[0].close_str == "7.6170"
    # and a closed one does replace an unclosed one
    await pg.write([make_candle(1, close="1.0", closed=False)])
    await pg.write([make_candle(1)])
    got = (await pg.read(KEY))[1]
    assert (got.close_str, got.closed) == ("7.6170", True)


async def test_a_key_repeated_within_a_batch_is_applied_in_order(pg: PostgresSink) -> None:
    ws = make_candle(0)
    rest = make_candle(0, close="7.6190", source="rest", first_trade_id=None)
    late_live = make_candle(0, close="1.0000", closed=False)
    await pg.write([ws, make_candle(1), rest, late_live, make_candle(1)])
    first, second = await pg.read(KEY)
    # ws then rest (replaces, keeps trade ids), then the unclosed one is refused
    assert (first.close_str, first.source, first.first_trade_id) == ("7.6190", "rest", 126902874)
    assert second == make_candle(1)
    assert await pg.count() == 2


async def test_malformed_candles_are_rejected_alone(pg: PostgresSink) -> None:
    good = [make_candle(i) for i in range(3)]
    bad_text = msgspec.structs.replace(make_candle(3), close_str="7,61")
    bad_type = msgspec.structs.replace(make_candle(4), trades="many")
    await pg.write([good[0], bad_text, good[1], bad_type, good[2]])
    assert pg.rejected == 2
    assert await pg.read(KEY) == good


# -- partitions -----------------------------------------------------------------------------------
async def test_partitions_are_created_across_month_boundaries(
        pg: PostgresSink, db: Database) -> None:
    # 2021-07-31 23:58 .. 2021-08-01 00:02, then one in September
    start = JUL_31 + 86_400_000 - 2 * MINUTE
    batch = [msgspec.structs.replace(make_candle(0), open_time=start + i * MINUTE,
                                     close_time=start + (i + 1) * MINUTE - 1) for i in range(4)]
    sept = msgspec.structs.replace(make_candle(0), open_time=JUL_31 + 33 * 86_400_000,
                                   close_time=JUL_31 + 33 * 86_400_000 + MINUTE - 1)
    await pg.write([*batch, sept])
    rows = await sql(db, "SELECT open_time, tableoid::regclass::text AS part FROM candles "
                     "ORDER BY open_time")
    assert [(r["open_time"], r["part"]) for r in rows] == [
        (start, "candles_p202107"), (start + MINUTE, "candles_p202107"),
        (start + 2 * MINUTE, "candles_p202108"), (start + 3 * MINUTE, "candles_p202108"),
        (sept.open_time, "candles_p202109")]
    parts = await sql(db, "SELECT c.relname FROM pg_inherits i JOIN pg_class c "
                      "ON c.oid = i.inhrelid WHERE i.inhparent = 'candles'::regclass "
                      "ORDER BY 1")
    assert [r[0] for r in parts] == ["candles_default", "candles_p202107", "candles_p202108",
                                     "candles_p202109"]
    # a second sink (another process) sees the existing partitions and writes into them
    other = PostgresSink(db.dsn)
    await other.open()
    await other.write([make_candle(5)])
    await other.close()
    assert await pg.count() == 6


async def test_rows_in_the_default_partition_move_into_a_new_partition(
        pg: PostgresSink, db: Database) -> None:
    # someone inserted a row for a month that has no partition yet: it lands in the default
    stray = make_candle(0)
    await sql(db, "INSERT INTO candles (venue, symbol, interval, open_time, close_time, "
              "open, high, low, close, volume, closed, source) VALUES ($1, $2, $3, $4, $5, "
              "1, 1, 1, 1, 1, true, 'rest')", *KEY, stray.open_time, stray.close_time)
    [row] = await sql(db, "SELECT tableoid::regclass::text FROM candles")
    assert row[0] == "candles_default"
    await pg.write([make_candle(0), make_candle(1)])  # creates July, moving the stray row
    rows = await sql(db, "SELECT open_time, close::text, tableoid::regclass::text AS p "
                     "FROM candles ORDER BY open_time")
    assert [(r[1], r[2]) for r in rows] == [("7.6170", "candles_p202107"),
                                            ("7.6170", "candles_p202107")]


# -- concurrency ----------------------------------------------------------------------------------
async def test_concurrent_writers_on_overlapping_keys(db: Database) -> None:
    sinks = [PostgresSink(db.dsn, name=f"w{i}", pool_max_size=2) for i in range(4)]
    await asyncio.gather(*(s.open() for s in sinks))  # concurrent migrations are serialised
    keys = [StreamKey("binance-usdm", f"S{i}USDT", "1m") for i in range(4)]
    # every writer writes every key over the same 3 months (partition creation races too)
    batches = [[make_candle(i * 1500, key=k) for i in range(60) for k in keys]
               for _ in sinks]
    await asyncio.gather(*(s.write(b) for s, b in zip(sinks, batches, strict=True)))
    assert await sinks[0].count() == 240
    assert [len(await sinks[0].read(k)) for k in keys] == [60, 60, 60, 60]
    assert sum(s.rows_changed for s in sinks) == 240  # each row inserted once, dupes no-ops
    await asyncio.gather(*(s.close() for s in sinks))


# -- reads and SQL helpers -------------------------------------------------------------------------
async def test_read_helpers_and_sql_functions(pg: PostgresSink, db: Database) -> None:
    other = StreamKey("binance-spot", "BTCUSDT", "1m")
    await pg.write([make_candle(i) for i in range(120)] + [make_candle(0, key=other)])
    assert await pg.last_open_time(KEY) == T0 + 119 * MINUTE
    assert await pg.last_open_time(StreamKey("x", "Y", "1m")) is None
    assert [c.open_time for c in await pg.read(KEY, T0 + MINUTE, T0 + 3 * MINUTE)] == [
        T0 + MINUTE, T0 + 2 * MINUTE, T0 + 3 * MINUTE]
    assert [c.open_time for c in await pg.latest(KEY, 2)] == [T0 + 118 * MINUTE,
                                                              T0 + 119 * MINUTE]
    assert await pg.latest(KEY, 0) == []
    assert (await pg.count(KEY), await pg.count(other), await pg.count()) == (120, 1, 121)
    assert await pg.keys() == [other, KEY]
    rows = await sql(db, "SELECT open_time, close::text FROM candles_last($1, $2, $3, 3)",
                     *KEY)
    assert [r[0] for r in rows] == [T0 + 119 * MINUTE, T0 + 118 * MINUTE, T0 + 117 * MINUTE]
    # 1h rollup of the 1m candles: T0 is 22:25 UTC, so the first hour holds 35 of them
    hours = await sql(db, "SELECT * FROM candles_rollup($1, $2, $3, 3600000, 0, $4)",
                      *KEY, T0 + 10**9)
    assert [h["candles"] for h in hours] == [35, 60, 25]
    first = hours[0]
    assert first["open_time"] == T0 - 25 * MINUTE
    assert (first["open"], first["high"], first["close"]) == (
        Decimal("7.6080"), Decimal("7.6180"), Decimal("7.6170"))
    assert first["volume"] == Decimal("3005") * 35
    assert first["trades"] == sum(113 + i for i in range(35))


# -- schema ---------------------------------------------------------------------------------------
async def test_every_source_is_stored_and_nothing_else(pg: PostgresSink, db: Database) -> None:
    """v2: derived intervals and archive backfills store their own ``source``; the column
    still refuses anything else (v1 allowed only ws and rest)."""
    candles = [msgspec.structs.replace(make_candle(i), source=src)
               for i, src in enumerate(("ws", "rest", "derived", "archive"))]
    await pg.write(candles)
    rows = await sql(db, "SELECT source FROM candles ORDER BY open_time")
    assert [r[0] for r in rows] == ["ws", "rest", "derived", "archive"]
    with pytest.raises(asyncpg.CheckViolationError):
        await sql(db, "UPDATE candles SET source = 'guess' WHERE source = 'ws'")


async def test_schema_is_versioned_and_refuses_newer(pg: PostgresSink,
                                                     db: Database) -> None:
    assert await pg.schema_version() == LATEST_VERSION == 2
    assert pg.layout == "partitioned"
    await pg.open()  # idempotent
    again = PostgresSink(db.dsn)
    await again.open()  # nothing to migrate
    await again.close()
    await sql(db, "INSERT INTO candlekeeper_migrations (version, description) "
              "VALUES (99, 'future')")
    with pytest.raises(SinkError, match="v99, newer"):
        await PostgresSink(db.dsn).open()


async def test_layouts_and_bad_settings(db: Database) -> None:
    # TimescaleDB present or not: test_postgres_timescaledb.py (machine-independent servers)
    custom = PostgresSink(db.dsn, schema="market_data", layout="partitioned")
    await custom.open()
    await custom.write([make_candle(0)])
    rows = await sql(db, "SELECT tableoid::regclass::text FROM market_data.candles")
    assert rows[0][0] == "market_data.candles_p202107"
    await custom.close()
    with pytest.raises(ConfigError, match="identifier"):
        PostgresSink(db.dsn, schema='x"; DROP TABLE candles; --')
    with pytest.raises(ConfigError, match="DSN"):
        PostgresSink("")


async def test_unreachable_server_and_closed_sink_raise_sink_error(
        postgres: PostgresServer) -> None:
    postgres.stop()
    with pytest.raises(SinkError, match="cannot connect"):
        await PostgresSink(postgres.dsn, connect_timeout_s=2).open()
    postgres.start()
    sink = PostgresSink(postgres.dsn)
    with pytest.raises(SinkError, match="not open"):
        await sink.write([make_candle(0)])
    await sink.open()
    await sink.close()
    await sink.close()  # idempotent
    with pytest.raises(SinkError, match="not open"):
        await sink.count()
