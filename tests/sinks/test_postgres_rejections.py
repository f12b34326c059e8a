"""Rows a real PostgreSQL server refuses as data — a CHECK constraint someone added, a NUL byte
in a text, an integer asyncpg cannot encode — are isolated (the rest of the batch is stored) and
returned as rejections, on both write paths; an outage, even in the middle of isolating rows,
rejects nothing and the batch is retried whole."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator

import asyncpg
import msgspec
import pytest
from sinkkit import KEY, MINUTE, T0, make_candle

from candlekeeper.core.candle import Candle
from candlekeeper.errors import SinkError
from candlekeeper.sinks import BatchingWriter
from candlekeeper.sinks.postgres import PostgresSink
from servers import PostgresServer

POSITIVE_CLOSE = "ALTER TABLE candles ADD CONSTRAINT positive_close CHECK (close > 0)"
#: a trigger that ends the session on one row: an outage that strikes while rows are isolated
KILL_ON_SYMBOL = """
CREATE FUNCTION kill_on_symbol() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.symbol = 'KILLUSDT' THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER kill_on_symbol BEFORE INSERT ON candles FOR EACH ROW
    EXECUTE FUNCTION kill_on_symbol();
"""


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    srv = PostgresServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
async def dsn(server: PostgresServer, request: pytest.FixtureRequest) -> str:
    name = "t_" + hashlib.blake2b(request.node.nodeid.encode(), digest_size=8).hexdigest()
    admin = await asyncpg.connect(server.dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return server.dsn.rsplit("/", 1)[0] + "/" + name


async def execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def bad(i: int) -> Candle:
    return make_candle(i, close="0")


def minutes(candles: list[Candle]) -> list[int]:
    return [(c.open_time - T0) // MINUTE for c in candles]


@pytest.mark.parametrize("copy_min_rows", [1000, 1], ids=["unnest", "copy"])
async def test_rows_refused_by_a_check_constraint_are_isolated(dsn: str,
                                                               copy_min_rows: int) -> None:
    sink = PostgresSink(dsn, copy_min_rows=copy_min_rows)
    await sink.open()
    await execute(dsn, POSITIVE_CLOSE)
    batch = [bad(i) if i in (0, 500, 999) else make_candle(i) for i in range(1000)]
    rejected = await sink.write(batch)
    assert [r.candle for r in rejected] == [batch[0], batch[500], batch[999]]
    assert rejected[0].reason == ('new row for relation "candles_p202107" violates check '
                                  'constraint "positive_close" (SQLSTATE 23514)')
    assert minutes(await sink.read(KEY)) == [i for i in range(1000) if i not in (0, 500, 999)]
    assert (sink.rows_written, sink.rows_changed, sink.rejected) == (997, 997, 3)
    await sink.close()


async def test_values_the_server_or_the_client_cannot_take(dsn: str) -> None:
    sink = PostgresSink(dsn)
    await sink.open()
    nul = msgspec.structs.replace(make_candle(1), symbol="SUSHI\x00USDT")
    huge = msgspec.structs.replace(make_candle(2), trades=2**64)
    malformed = msgspec.structs.replace(make_candle(3), close_str="7,61")
    no_time = msgspec.structs.replace(make_candle(5), open_time="soon")
    rejected = await sink.write([make_candle(0), nul, huge, malformed, make_candle(4), no_time])
    # the ones malformed on their own are found first, then what the server/client refuses
    assert [r.candle for r in rejected] == [malformed, no_time, nul, huge]
    assert rejected[0].reason == "close must be decimal text, got '7,61'"
    assert rejected[1].reason == "open_time must be an int, got 'soon'"
    assert "SQLSTATE 22021" in rejected[2].reason  # invalid byte sequence for UTF8: 0x00
    assert rejected[3].reason.startswith("invalid input for query argument $12: ")
    assert "value out of int64 range" in rejected[3].reason  # asyncpg's, before any SQL ran
    assert minutes(await sink.read(KEY)) == [0, 4]
    await sink.close()


async def test_a_repeated_key_keeps_its_order_around_a_refused_row(dsn: str) -> None:
    sink = PostgresSink(dsn)
    await sink.open()
    await execute(dsn, POSITIVE_CLOSE)
    rest = make_candle(0, close="7.6190", source="rest", first_trade_id=None)
    rejected = await sink.write([make_candle(0), bad(1), rest, make_candle(2), bad(0)])
    assert [r.candle for r in rejected] == [bad(1), bad(0)]
    first, second = await sink.read(KEY)
    assert (first.close_str, first.source, first.first_trade_id) == ("7.6190", "rest", 126902874)
    assert second == make_candle(2)
    await sink.close()


async def test_an_outage_while_isolating_rows_rejects_nothing(dsn: str) -> None:
    sink = PostgresSink(dsn)
    await sink.open()
    await execute(dsn, POSITIVE_CLOSE)
    await execute(dsn, KILL_ON_SYMBOL)
    killer = make_candle(0, key=KEY._replace(symbol="KILLUSDT"))
    batch = [bad(0), make_candle(1), killer, make_candle(2)]
    with pytest.raises(SinkError, match="writing 4 candle"):
        await sink.write(batch)  # the CHECK fails the batch; isolating it hits the kill
    assert (sink.rejected, sink.rows_written, await sink.count()) == (0, 0, 0)
    await execute(dsn, "DROP TRIGGER kill_on_symbol ON candles")
    [rejection] = await sink.write(batch)  # the writer's retry: the same batch, whole
    assert rejection.candle == bad(0)
    assert (sink.rejected, sink.rows_written, await sink.count()) == (1, 3, 3)
    await sink.close()


async def test_a_server_that_is_down_is_an_outage_not_a_rejection(
        postgres: PostgresServer) -> None:
    sink = PostgresSink(postgres.dsn, connect_timeout_s=2)
    await sink.open()
    await execute(postgres.dsn, POSITIVE_CLOSE)
    writer = BatchingWriter(sink, batch_size=4, flush_interval_s=0.01, retry_initial_s=0.05,
                            retry_max_s=0.2)
    await writer.start()
    await asyncio.to_thread(postgres.stop)
    for c in [make_candle(0), bad(1), make_candle(2), make_candle(3)]:
        writer.submit(c)
    async with asyncio.timeout(30):
        while writer.stats.failures < 2:
            await asyncio.sleep(0.02)
    assert (writer.stats.rejected, writer.stats.written, writer.stats.pending) == (0, 0, 4)
    await asyncio.to_thread(postgres.start)
    async with asyncio.timeout(30):
        while writer.stats.pending:
            await asyncio.sleep(0.02)
    assert (writer.stats.written, writer.stats.rejected) == (3, 1)
    assert minutes(await sink.read(KEY)) == [0, 2, 3]
    await writer.stop()
