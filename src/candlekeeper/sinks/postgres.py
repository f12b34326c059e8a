"""PostgreSQL sink (asyncpg): exact ``numeric`` columns, partitioned by time (or a TimescaleDB
hypertable), batched COPY + idempotent upsert with the same policy as SQLite.

Design decisions (also in ``docs/storage.md``):

* **Exact decimals.** Prices and volumes are ``numeric``. The exchange's text goes in as text and
  is cast by the server (``'7.6170'::numeric``); ``numeric`` keeps the scale of its input, so
  ``close::text`` gives back ``7.6170`` — the same digits, trailing zeros included. No float or
  ``Decimal`` is built on the write path.
* **Fast, idempotent batches.** One transaction per batch: binary ``COPY`` of the rows into a
  per-connection temporary staging table, then one ``INSERT … SELECT … ON CONFLICT … DO UPDATE …
  WHERE (values differ)`` applying the SQLite upsert policy (identical values: row untouched;
  different: replaced; an unclosed candle never replaces a closed one; NULL never erases). The
  rows are ``msgspec.structs.astuple(candle)``: staging columns are in ``Candle`` field order.
  Batches under ``copy_min_rows`` (1,000) use the same upsert over ``unnest`` of one array
  parameter per column instead — one prepared statement, no COPY round trip and no temp-table
  truncation, 10x faster for a single candle and 2x for 100; COPY wins above ~500 rows.
  A key repeated inside one batch is applied in rounds (n-th occurrence in round n), because one
  ``INSERT … ON CONFLICT`` cannot touch a row twice; per key, order is kept, like SQLite.
* **Bad input.** Rows are not validated one by one on the happy path (that would cost a third of
  the time). If the server or the encoder refuses the batch's *data* (SQLSTATE class 22/23, or a
  value asyncpg cannot encode), malformed candles are picked out with the SQLite validators and
  the rest is redone with the failing rows isolated under savepoints (``postgres_write``): the
  rows the server refuses are returned as rejections and counted (``rejected``), the others are
  stored — a poison candle never blocks the writer. Any other failure is an outage (below).
* **Layout.** ``layout="auto"`` uses TimescaleDB when the server can run it — installed *and*
  preloaded (``postgres_layout`` explains why that is checked before ``CREATE EXTENSION``) —
  otherwise native monthly range partitions (created on demand before the rows that need them,
  under an advisory lock; rows that reached the ``DEFAULT`` partition are moved into a new
  partition), with one warning saying how to enable TimescaleDB when it is installed but not
  usable. ``layout="timescaledb"`` fails with that line instead. The choice is recorded in
  ``candlekeeper_settings`` and never changes afterwards.
* **No secret in any output.** The DSN is shown without its user info, and every error text
  (asyncpg's included, which may echo a piece of a misparsed password) goes through the sink's
  :meth:`PostgresSink.redact`. A DSN whose password holds an unescaped ``@ / ? #`` is refused
  with a ``ConfigError`` that says what to percent-encode.
* **Versioned schema.** ``candlekeeper_migrations`` records applied versions; ``open()`` applies
  the missing ones in one transaction under an advisory lock (several instances may start
  together) and refuses a schema newer than the code.
* **Failures** (server down or restarting, connection lost, timeout) raise ``SinkError``; the
  ``BatchingWriter`` retries and spills to its journal. The pool replaces dead connections on the
  next acquire, so a restarted server is picked up without reopening the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from candlekeeper.core.candle import Candle
from candlekeeper.errors import ConfigError, SinkError
from candlekeeper.observability.redact import (
    Redactor,
    describe_error,
    malformed_userinfo,
    redact_url,
)
from candlekeeper.sinks import postgres_layout as pl
from candlekeeper.sinks import postgres_schema as ps
from candlekeeper.sinks.contract import Rejection
from candlekeeper.sinks.postgres_read import PostgresReads
from candlekeeper.sinks.postgres_write import is_data_error, isolate, prevalidate, rounds

__all__ = ["PostgresSink"]

log = logging.getLogger(__name__)
_Conn = asyncpg.Connection | PoolConnectionProxy  # what init callbacks and acquire() give
#: failures of the server, the network or the client library that a retry may cure
_OUTAGE = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class PostgresSink(PostgresReads):
    """Stores closed candles in PostgreSQL (see the module docstring for the policy).

    ``dsn`` is a libpq URL (``postgresql://user:pass@host:5432/db?sslmode=require``; ``@ / ? #``
    in the password percent-encoded as ``%40 %2F %3F %23``); the password can also come from
    ``PGPASSWORD``/``~/.pgpass`` as usual. Read helpers are async and use the same pool.
    """

    def __init__(self, dsn: str, *, name: str = "postgres", schema: str = "public",
                 layout: ps.LayoutChoice = "auto", pool_min_size: int = 1,
                 pool_max_size: int = 4, chunk_interval_ms: int = 7 * 86_400_000,
                 connect_timeout_s: float = 10.0, command_timeout_s: float | None = 60.0,
                 copy_min_rows: int = 1000) -> None:
        if not dsn:
            raise ConfigError(f"postgres sink {name!r}: a DSN is required")
        if malformed_userinfo(dsn):
            raise ConfigError(
                f"postgres sink {name!r}: the DSN {redact_url(dsn)} cannot be parsed: "
                "percent-encode '@', '/', '?' and '#' in the user name and password "
                "(%40, %2F, %3F, %23), and any '@' in the database name or options (%40)")
        if layout not in ("auto", "partitioned", "timescaledb"):
            raise ConfigError(f"postgres sink {name!r}: unknown layout {layout!r}")
        if not 0 <= pool_min_size <= pool_max_size or pool_max_size < 1:
            raise ConfigError(f"postgres sink {name!r}: need 0 <= pool_min_size <= "
                              "pool_max_size and pool_max_size >= 1")
        try:
            self._names = ps.Names.of(schema)
        except ValueError as exc:
            raise ConfigError(f"postgres sink {name!r}: schema: {exc}") from exc
        self.name = name
        self.schema = schema
        self._dsn = dsn
        #: masks the DSN's password (and its pieces) in any text: ``sink.redact(str(exc))``
        self.redact = Redactor(urls=[dsn])
        self._shown = redact_url(dsn)
        self._layout_choice = layout
        self._timescaledb_off: str | None = None  # why auto fell back to partitions
        self._pool_min = pool_min_size
        self._pool_max = pool_max_size
        self._chunk_ms = chunk_interval_ms
        self._connect_timeout = connect_timeout_s
        self._command_timeout = command_timeout_s
        self._pool: asyncpg.Pool | None = None
        self._open_lock = asyncio.Lock()
        self._partitions: set[int] = set()
        self._upsert = ps.upsert_from_staging(self._names)
        self._upsert_arrays = ps.upsert_from_arrays(self._names)
        self._copy_min_rows = copy_min_rows
        #: "partitioned" or "timescaledb" once open
        self.layout: ps.Layout | None = None
        #: candles accepted in successful batches (duplicates included)
        self.rows_written = 0
        #: rows actually inserted or changed (a pure duplicate changes nothing)
        self.rows_changed = 0
        #: candles refused as data the database can never store (never stored, never retried)
        self.rejected = 0

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._pool is not None

    async def open(self) -> None:
        """Connect (a pool), create/migrate the schema, load the partition list. Idempotent.
        Raises ``SinkError`` if the server cannot be reached or the schema is newer (a retry may
        help once someone acts), ``ConfigError`` if asyncpg cannot parse the DSN or the
        configured ``layout`` cannot be had on this server (no retry can help)."""
        async with self._open_lock:
            if self._pool is not None:
                return
            pool = await self._create_pool()
            try:
                await self._prepare(pool)
            except BaseException as exc:
                pool.terminate()
                if isinstance(exc, SinkError | ConfigError | asyncio.CancelledError):
                    raise
                if isinstance(exc, _OUTAGE):
                    raise SinkError(f"postgres sink {self.name!r}: cannot prepare the schema: "
                                    f"{describe_error(exc, self.redact)}") from None
                raise
            self._pool = pool
            log.info("postgres sink %r open (schema %s, layout %s, v%d)", self.name,
                     self.schema, self.layout, ps.LATEST_VERSION)

    async def _create_pool(self) -> asyncpg.Pool:
        try:
            return await asyncpg.create_pool(
                self._dsn, min_size=self._pool_min, max_size=self._pool_max,
                timeout=self._connect_timeout, command_timeout=self._command_timeout,
                init=self._init_connection)
        except (ValueError, TypeError) as exc:  # asyncpg's DSN and option checks
            raise ConfigError(f"postgres sink {self.name!r}: the DSN {self._shown} is not "
                              f"valid: {describe_error(exc, self.redact)}") from None
        except _OUTAGE as exc:
            raise SinkError(f"postgres sink {self.name!r}: cannot connect to {self._shown}: "
                            f"{describe_error(exc, self.redact)}") from None

    async def _prepare(self, pool: asyncpg.Pool) -> None:
        """Migrate and load partitions; once more with native partitions when ``auto`` met a
        TimescaleDB that cannot be used (the failed attempt may have cost the connection)."""
        while True:
            async with pool.acquire() as conn:
                try:
                    await self._migrate(conn)
                except pl.TimescaleUnusable as exc:
                    if exc.session_at_risk:  # the server may be ending it: never reuse it
                        conn.terminate()
                    if self._layout_choice == "timescaledb" or self._timescaledb_off:
                        raise ConfigError(f"postgres sink {self.name!r}: layout timescaledb: "
                                          f"{exc.reason}") from None
                    self._timescaledb_off = exc.reason
                    log.warning("postgres sink %r: %s; using native monthly partitioning "
                                "instead (layout auto)", self.name, exc.reason)
                    continue
                await self._load_partitions(conn)
                return

    async def close(self) -> None:
        """Close the pool (waiting up to 10 s for connections in use). Idempotent."""
        async with self._open_lock:
            pool, self._pool = self._pool, None
            if pool is None:
                return
            try:
                await asyncio.wait_for(pool.close(), 10.0)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()

    @staticmethod
    async def _init_connection(conn: _Conn) -> None:
        await conn.execute(ps.create_staging())

    # -- writing ------------------------------------------------------------------------------
    async def write(self, candles: Sequence[Candle]) -> list[Rejection]:
        """Upsert a batch in one transaction and return the candles refused as data (see the
        module docstring); raises ``SinkError`` if the server failed or could not be reached —
        nothing of the batch is then stored."""
        if not candles:
            return []
        pool = self._pool
        if pool is None:
            raise SinkError(f"postgres sink {self.name!r} is not open")
        rejected: list[Rejection] = []
        try:
            async with pool.acquire() as conn:
                # outside the data-error handling: a failure here is never the rows' fault
                times = [c.open_time for c in candles if type(c.open_time) is int]
                if self.layout == "partitioned" and times:
                    await self._ensure_partitions(conn, min(times), max(times))
                try:
                    changed = await self._write(conn, candles)
                except Exception as exc:
                    if not is_data_error(exc):
                        raise
                    good, rejected = prevalidate(candles)
                    changed = await isolate(conn, good, self._upsert_all, rejected)
        except _OUTAGE as exc:
            raise SinkError(f"postgres sink {self.name!r}: writing {len(candles)} candle(s) "
                            f"failed: {describe_error(exc, self.redact)}") from exc
        self.rows_written += len(candles) - len(rejected)
        self.rows_changed += changed
        self.rejected += len(rejected)
        return rejected

    async def _write(self, conn: _Conn, candles: Sequence[Candle]) -> int:
        batches = rounds(candles)
        if len(batches) == 1 and len(batches[0]) < self._copy_min_rows:
            return await self._upsert_round(conn, batches[0])  # one statement: atomic
        changed = 0
        async with conn.transaction():
            for i, rows in enumerate(batches):
                changed += await self._upsert_round(conn, rows, clear=i < len(batches) - 1)
        return changed

    async def _upsert_all(self, conn: _Conn, candles: Sequence[Candle]) -> int:
        """Part of a batch through ``unnest`` (no staging table to clean up after a failed part)
        inside the isolating transaction's current savepoint."""
        changed = 0
        for rows in rounds(candles):
            changed += await self._upsert_round(conn, rows, copy=False)
        return changed

    async def _upsert_round(self, conn: _Conn, rows: list[tuple[Any, ...]], *,
                            clear: bool = False, copy: bool = True) -> int:
        """One round (no repeated key): COPY + staging upsert for big rounds, the ``unnest``
        statement for small ones (measured crossover: a few hundred rows)."""
        if len(rows) < self._copy_min_rows or not copy:
            status = await conn.execute(self._upsert_arrays, *zip(*rows, strict=True))
        else:
            await conn.copy_records_to_table(ps.STAGING, records=rows,
                                             columns=ps.STAGING_COLUMNS)
            status = await conn.execute(self._upsert)
            if clear:  # another round follows; otherwise ON COMMIT DELETE ROWS empties it
                await conn.execute(f"TRUNCATE {ps.STAGING}")
        return int(status.rsplit(" ", 1)[-1])

    async def _ensure_partitions(self, conn: _Conn, lo: int, hi: int) -> None:
        missing = [m for m in ps.months_between(lo, hi) if m not in self._partitions]
        for month in missing:
            await self._create_partition(conn, month)

    async def _create_partition(self, conn: _Conn, month: int) -> None:
        n = self._names
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ps.DDL_LOCK)
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace "
                "WHERE s.nspname = $1 AND c.relname = $2", self.schema, ps.partition_name(month))
            if not exists:
                lo, hi = ps.month_start_ms(month), ps.month_start_ms(month + 1)
                stray = await conn.fetchval(
                    f"SELECT count(*) FROM {n.default} WHERE open_time >= $1 AND open_time < $2",
                    lo, hi)
                for sql in (ps.move_from_default(n, month) if stray else
                            (ps.create_partition(n, month),)):
                    await conn.execute(sql)
                log.info("postgres sink %r: created partition %s%s", self.name,
                         ps.partition_name(month),
                         f" (moved {stray} row(s) from the default partition)" if stray else "")
        self._partitions.add(month)

    # -- schema ---------------------------------------------------------------------------------
    async def _migrate(self, conn: _Conn) -> None:
        """Bootstrap and migrate the schema in one transaction under the DDL lock. TimescaleDB
        is settled first, outside it (see ``postgres_layout``): its failures end sessions."""
        n = self._names
        stored = await self._stored_layout(conn)
        use_timescaledb = stored is None and await self._want_timescaledb(conn)
        if use_timescaledb:
            await self._timescaledb_statement(conn, "CREATE EXTENSION IF NOT EXISTS timescaledb")
        elif stored == "timescaledb" and await pl.preload_state(conn) is False:
            raise SinkError(f"postgres sink {self.name!r}: schema {self.schema!r} holds a "
                            f"TimescaleDB hypertable, but {pl.NOT_PRELOADED}")
        async with _transaction(conn):
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ps.DDL_LOCK)
            for sql in ps.bootstrap(n):
                await conn.execute(sql)
            current = await conn.fetchval(f"SELECT max(version) FROM {n.migrations}") or 0
            if current > ps.LATEST_VERSION:
                raise SinkError(f"postgres sink {self.name!r}: schema {self.schema!r} is at "
                                f"v{current}, newer than this candlekeeper "
                                f"(v{ps.LATEST_VERSION})")
            stored = await conn.fetchval(f"SELECT value FROM {n.settings} WHERE key = 'layout'")
            layout: ps.Layout = stored or ("timescaledb" if use_timescaledb else "partitioned")
            if self._layout_choice not in ("auto", layout):
                raise ConfigError(f"postgres sink {self.name!r}: schema {self.schema!r} uses "
                                  f"the {layout} layout, configured {self._layout_choice}")
            for migration in ps.MIGRATIONS:
                if migration.version <= current:
                    continue
                for sql in migration.statements(n, layout, self._chunk_ms):
                    if ps.calls_timescaledb(sql):
                        await self._timescaledb_statement(conn, sql)
                    else:
                        await conn.execute(sql)
                await conn.execute(f"INSERT INTO {n.migrations} (version, description) "
                                   "VALUES ($1, $2)", migration.version, migration.description)
                log.info("postgres sink %r: applied schema migration v%d (%s)", self.name,
                         migration.version, migration.description)
            self.layout = layout

    async def _stored_layout(self, conn: _Conn) -> str | None:
        """The layout recorded by an earlier ``open`` (None for a new schema)."""
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", self._names.settings):
            return None
        value = await conn.fetchval(f"SELECT value FROM {self._names.settings} "
                                    "WHERE key = 'layout'")
        return None if value is None else str(value)

    async def _want_timescaledb(self, conn: _Conn) -> bool:
        """Whether a new schema should try TimescaleDB: asked for (or ``auto``), installed, and
        not known to be missing from ``shared_preload_libraries``."""
        if self._layout_choice == "partitioned" or self._timescaledb_off:
            return False
        if not await pl.timescaledb_available(conn):
            if self._layout_choice == "timescaledb":
                raise ConfigError(f"postgres sink {self.name!r}: layout timescaledb requested "
                                  "but the extension is not available on the server (install "
                                  "the TimescaleDB package for this PostgreSQL version)")
            return False
        if await pl.preload_state(conn) is False:
            raise pl.TimescaleUnusable(pl.NOT_PRELOADED)
        return True

    @staticmethod
    async def _timescaledb_statement(conn: _Conn, sql: str) -> None:
        """Run a statement that calls into TimescaleDB; a server error means TimescaleDB is not
        usable here (it may also have ended the session)."""
        try:
            await conn.execute(sql)
        except asyncpg.PostgresError as exc:
            raise pl.TimescaleUnusable(pl.unusable_reason(exc), session_at_risk=True) from None

    async def _load_partitions(self, conn: _Conn) -> None:
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = $1::regclass", self._names.table)
        self._partitions = {m for r in rows if (m := ps.parse_partition_name(r[0])) is not None}


@contextlib.asynccontextmanager
async def _transaction(conn: _Conn) -> AsyncIterator[None]:
    """``conn.transaction()``, except that a connection the server closed (a ``FATAL`` error)
    does not replace the error that closed it with "the underlying connection is closed"."""
    tr = conn.transaction()
    await tr.start()
    try:
        yield
    except BaseException:
        if not conn.is_closed():
            with contextlib.suppress(*_OUTAGE):
                await tr.rollback()
        raise
    await tr.commit()
