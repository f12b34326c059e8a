"""The PostgreSQL sink's layout choice on servers where TimescaleDB is absent, or installed but
not preloaded (the most common TimescaleDB misconfiguration), against real clusters that run
from a private tree with a stand-in extension that fails like the real one (``pgkit``)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterator

import asyncpg
import pytest
from pgkit import ExtensionsPostgres
from sinkkit import make_candle

from candlekeeper.errors import ConfigError, SinkError
from candlekeeper.sinks import BatchingWriter
from candlekeeper.sinks.postgres import PostgresSink

HOW_TO = "shared_preload_libraries = 'timescaledb' to postgresql.conf and restart PostgreSQL"


@pytest.fixture(scope="module")
def not_preloaded() -> Iterator[ExtensionsPostgres]:
    server = ExtensionsPostgres("not-preloaded")
    server.start()
    try:
        yield server
    finally:
        server.close()


async def new_database(server: ExtensionsPostgres, request: pytest.FixtureRequest,
                       owner: str = "postgres") -> str:
    """A fresh database for this test; its DSN for ``owner``."""
    name = "t_" + hashlib.blake2b(request.node.nodeid.encode(), digest_size=8).hexdigest()
    admin = await asyncpg.connect(server.dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        available = await admin.fetchval(
            "SELECT comment FROM pg_available_extensions WHERE name = 'timescaledb'")
    finally:
        await admin.close()
    # the precondition every test here relies on: the server sees the stand-in (or nothing)
    if server.timescaledb == "not-preloaded":
        assert available is not None and available.startswith("stand-in")
    else:
        assert available is None
    return f"postgresql://{owner}@127.0.0.1:{server.port}/{name}"


async def app_role(server: ExtensionsPostgres) -> None:
    """An unprivileged login role: it may create the (trusted) extension but not read
    ``shared_preload_libraries`` — the sink then has to try ``CREATE EXTENSION``."""
    admin = await asyncpg.connect(server.dsn)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'app'"):
            await admin.execute("CREATE ROLE app LOGIN")
    finally:
        await admin.close()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_auto_falls_back_to_partitions_with_one_warning(
        not_preloaded: ExtensionsPostgres, request: pytest.FixtureRequest,
        caplog: pytest.LogCaptureFixture) -> None:
    dsn = await new_database(not_preloaded, request)
    caplog.set_level(logging.INFO)
    sink = PostgresSink(dsn)  # layout auto, as the service uses it
    await sink.open()
    assert sink.layout == "partitioned"
    [line] = warnings(caplog)
    assert "TimescaleDB is installed on the server but not preloaded" in line
    assert HOW_TO in line and "using native monthly partitioning" in line
    assert "\n" not in line
    await sink.write([make_candle(i) for i in range(3)])
    assert await sink.count() == 3
    await sink.close()
    # the choice is stored: a later open neither retries TimescaleDB nor warns again
    caplog.clear()
    again = PostgresSink(dsn)
    await again.open()
    assert again.layout == "partitioned" and warnings(caplog) == []
    await again.close()


async def test_explicit_timescaledb_fails_with_one_clear_line(
        not_preloaded: ExtensionsPostgres, request: pytest.FixtureRequest) -> None:
    dsn = await new_database(not_preloaded, request)
    with pytest.raises(ConfigError) as info:
        await PostgresSink(dsn, layout="timescaledb").open()
    message = str(info.value)
    assert message == ("postgres sink 'postgres': layout timescaledb: TimescaleDB is installed "
                       f"on the server but not preloaded: add {HOW_TO}")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    # a configuration no retry can fix: the writer's start() fails even with retry_open
    writer = BatchingWriter(PostgresSink(dsn, layout="timescaledb"), retry_open=True)
    with pytest.raises(ConfigError, match="not preloaded"):
        await writer.start()
    # and a schema made with native partitions stays so: asking for TimescaleDB later is refused
    partitioned = PostgresSink(dsn)
    await partitioned.open()
    await partitioned.close()
    with pytest.raises(ConfigError, match="schema 'public' uses the partitioned layout, "
                       "configured timescaledb"):
        await PostgresSink(dsn, layout="timescaledb").open()


async def test_a_role_that_cannot_read_the_setting_survives_the_killed_session(
        not_preloaded: ExtensionsPostgres, request: pytest.FixtureRequest,
        caplog: pytest.LogCaptureFixture) -> None:
    """Not allowed to read ``shared_preload_libraries``, the sink must try ``CREATE
    EXTENSION``, which ends its session; it goes on with a fresh connection."""
    await app_role(not_preloaded)
    dsn = await new_database(not_preloaded, request, owner="app")
    conn = await asyncpg.connect(dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT current_setting('shared_preload_libraries')")
    finally:
        await conn.close()
    with pytest.raises(ConfigError, match=f"layout timescaledb: .*not preloaded: add {HOW_TO}$"):
        await PostgresSink(dsn, layout="timescaledb").open()
    caplog.set_level(logging.WARNING)
    sink = PostgresSink(dsn, pool_max_size=1)
    await sink.open()
    assert sink.layout == "partitioned"
    assert len(warnings(caplog)) == 1 and HOW_TO in warnings(caplog)[0]
    await sink.write([make_candle(0)])  # the pool's connection is a live one
    assert await sink.count() == 1
    await sink.close()


async def test_the_writer_opens_and_writes_like_the_service_does(
        not_preloaded: ExtensionsPostgres, request: pytest.FixtureRequest) -> None:
    dsn = await new_database(not_preloaded, request)
    sink = PostgresSink(dsn)
    writer = BatchingWriter(sink, batch_size=10, flush_interval_s=0.01, retry_open=True)
    await writer.start()
    for i in range(25):
        writer.submit(make_candle(i))
    async with asyncio.timeout(30):
        while writer.stats.written < 25:
            await asyncio.sleep(0.02)
    assert writer.stats.failures == 0 and writer.stats.last_error is None
    await writer.stop()


async def test_a_hypertable_schema_on_a_server_without_the_preload_is_refused(
        not_preloaded: ExtensionsPostgres, request: pytest.FixtureRequest) -> None:
    """A schema made as a hypertable (TimescaleDB preloaded back then) must not be written
    through a server that lost the preload: every write would end its session."""
    dsn = await new_database(not_preloaded, request)
    sink = PostgresSink(dsn, schema="market")
    await sink.open()
    await sink.close()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE market.candlekeeper_settings SET value = 'timescaledb' "
                           "WHERE key = 'layout'")
    finally:
        await conn.close()
    with pytest.raises(SinkError, match="schema 'market' holds a TimescaleDB hypertable, but "
                       f"TimescaleDB is installed on the server but not preloaded: add {HOW_TO}"):
        await PostgresSink(dsn, schema="market").open()


async def test_explicit_timescaledb_without_the_extension(
        request: pytest.FixtureRequest) -> None:
    server = ExtensionsPostgres("absent")  # whatever this machine has installed
    server.start()
    try:
        dsn = await new_database(server, request)
        with pytest.raises(ConfigError, match="layout timescaledb requested but the extension is "
                           "not available on the server"):
            await PostgresSink(dsn, layout="timescaledb").open()
        sink = PostgresSink(dsn)
        await sink.open()
        assert sink.layout == "partitioned"
        await sink.close()
    finally:
        server.close()
