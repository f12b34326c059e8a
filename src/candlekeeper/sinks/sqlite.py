"""SQLite sink: the embedded default store.

Design decisions (also in ``docs/storage.md``):

* **Off the event loop.** Every write runs on one dedicated worker thread that owns the only
  writing connection (created in that thread, so ``sqlite3`` enforces the ownership). The feed
  never waits on disk; concurrent ``write`` calls queue on that thread in call order.
* **Exact decimals.** Prices and volumes are stored as TEXT in plain positional notation
  (``format(d, "f")``: ``"7.6170"``, ``"0.00000010"``) — exactly the exchange's string — and read
  back with ``Decimal(text)``, so ``str(candle.close) == "7.6170"`` survives the round trip with its
  trailing zeros. A REAL column would round; SQLite's NUMERIC affinity would drop the zeros.
* **Idempotent upsert on the natural key** ``(venue, symbol, interval, open_time)`` (the primary
  key; ``WITHOUT ROWID`` so rows are clustered by series and time). Policy for a key that exists:

  - identical market values (``Candle.same_values``): the row is **kept** untouched, so a duplicate
    is a no-op: no second row, no error, no write amplification, ``source``/``ingested_at`` keep
    saying who delivered the values first;
  - different values: the new candle **replaces** the row (last write wins), so a REST-confirmed
    correction can later replace a WebSocket value — except that an unclosed candle never replaces
    a closed one;
  - a field the new candle lacks (``None``: a venue or REST without trade ids) does not erase a
    value already stored: absent means "unknown", not "empty".

  One transaction per batch (``BEGIN IMMEDIATE`` + ``executemany``), parameterised only. A batch
  containing a duplicate never fails, and a candle with malformed values is rejected on its own
  (returned as a ``Rejection`` and counted in ``rejected``) instead of failing the batch forever.
* **Data errors vs outages.** When SQLite refuses a row's *data* (``IntegrityError``: a CHECK,
  NOT NULL or unique constraint, a trigger's ``RAISE``; ``DataError``: a value too big; an
  integer beyond 64 bits), the batch is redone row by row in one transaction: the refused rows
  are rejected, the others stored. Every other failure (locked, disk full, I/O error, read-only)
  is an outage: ``SinkError``, nothing rejected, the writer retries the batch.
* **Durability.** WAL with ``synchronous=NORMAL``: a committed batch survives a process crash or
  kill; on power loss the last few commits may be lost (the REST backfill after restart refills
  them). Readers never block the writer.
* **Versioned schema.** ``schema_migrations`` records applied versions; ``open()`` applies the
  missing ones in one transaction and refuses a database written by a newer candlekeeper.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError, SinkError
from candlekeeper.sinks.contract import Rejection
from candlekeeper.sinks.sqlite_schema import (
    LATEST_VERSION,
    MIGRATIONS,
    SELECT_LATEST,
    SELECT_PAGE,
    SELECT_RANGE,
    UPSERT,
    candle_to_row,
    row_to_candle,
)

__all__ = ["SQLiteSink"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_MIN_TIME = -(2**63)
_MAX_TIME = 2**63 - 1
#: what SQLite (or the binding of a value) raises for the data of one row; anything else is an
#: outage. An ``OverflowError`` is an ``int`` beyond SQLite's 64-bit INTEGER.
_DATA_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError, OverflowError)


class SQLiteSink:
    """Stores closed candles in one SQLite file (see the module docstring for the policy).

    ``write`` is async and runs on the sink's own thread. The read helpers are synchronous,
    thread-safe and use a separate read-only connection (WAL lets them run while a batch is being
    written); they are indexed look-ups, but from a coroutine that must not block for long, wrap
    big reads in ``asyncio.to_thread``.
    """

    def __init__(self, path: str | Path, *, name: str = "sqlite",
                 busy_timeout_s: float = 5.0) -> None:
        if str(path) in ("", ":memory:") or str(path).startswith("file:"):
            raise ConfigError(f"sqlite sink {name!r}: needs a file path, got {str(path)!r} "
                              "(the writer thread and readers must share one database file)")
        self.name = name
        self.path = Path(path)
        self._busy_timeout = busy_timeout_s
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # owned by the executor's thread
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._open_lock = asyncio.Lock()
        #: candles accepted in successful batches (duplicates included)
        self.rows_written = 0
        #: rows actually inserted or changed (a pure duplicate changes nothing)
        self.rows_changed = 0
        #: candles refused as data the database can never store (never stored, never retried)
        self.rejected = 0

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._executor is not None

    async def open(self) -> None:
        """Create the file (and parent folders) if needed, switch to WAL, migrate the schema.
        Idempotent."""
        async with self._open_lock:
            if self._executor is not None:
                return
            executor = ThreadPoolExecutor(max_workers=1,
                                          thread_name_prefix=f"sqlite-sink-{self.name}")
            try:
                self._conn = await asyncio.get_running_loop().run_in_executor(
                    executor, self._open_sync)
                self._reader = self._connect(query_only=True, same_thread=False)
            except BaseException:
                executor.shutdown(wait=False)
                raise
            self._executor = executor
            log.info("sqlite sink %r open at %s (schema v%d)", self.name, self.path,
                     LATEST_VERSION)

    async def open_for_reading(self) -> None:
        """Only the read helpers: one query-only connection to an existing file — no writer
        thread, no migration, no WAL switch, and no checkpoint at ``close()`` — so reading a
        database the service is writing (an export, a replay) never takes its write lock.
        Idempotent; ``close()`` as usual."""
        async with self._open_lock:
            if self._reader is not None:
                return
            if not self.path.is_file():
                raise SinkError(f"sqlite sink {self.name!r}: no database at {self.path}")
            reader = self._connect(query_only=True, same_thread=False)
            try:
                row = reader.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
            except sqlite3.Error as exc:
                reader.close()
                raise ConfigError(f"sqlite sink {self.name!r}: {self.path} holds no candlekeeper "
                                f"tables ({exc})") from None
            if row[0] is not None and int(row[0]) > LATEST_VERSION:
                reader.close()
                raise SinkError(f"sqlite sink {self.name!r}: {self.path} has schema "
                                f"v{row[0]}, newer than this candlekeeper (v{LATEST_VERSION})")
            self._reader = reader

    async def close(self) -> None:
        """Checkpoint the WAL into the main file and close every connection. Idempotent."""
        async with self._open_lock:
            executor = self._executor
            if executor is None:
                with self._read_lock:  # opened for reading only, or not at all
                    if self._reader is not None:
                        self._reader.close()
                        self._reader = None
                return
            self._executor = None
            with self._read_lock:
                if self._reader is not None:
                    self._reader.close()
                    self._reader = None
            try:
                await asyncio.get_running_loop().run_in_executor(executor, self._close_sync)
            finally:
                executor.shutdown(wait=False)

    # -- writing ------------------------------------------------------------------------------
    async def write(self, candles: Sequence[Candle]) -> list[Rejection]:
        """Upsert a batch in one transaction on the sink's thread and return the candles refused
        as data (see the module docstring); raises ``SinkError`` if the database failed (locked,
        disk full, I/O error) — nothing of the batch is then stored."""
        if not candles:
            return []
        return await self._submit(self._write_sync, candles)

    def _write_sync(self, candles: Sequence[Candle]) -> list[Rejection]:
        conn = self._conn
        if conn is None:
            raise SinkError(f"sqlite sink {self.name!r} is not open")
        ingested_at = time.time_ns() // 1_000_000
        rows: list[tuple[Any, ...]] = []
        kept: list[Candle] = []
        rejected: list[Rejection] = []
        for c in candles:
            try:
                rows.append(candle_to_row(c, ingested_at))
                kept.append(c)
            except (TypeError, ValueError, AttributeError) as exc:
                rejected.append(Rejection.of(c, exc))
        before = conn.total_changes
        if rows:
            try:
                try:
                    self._transaction(conn, lambda: conn.executemany(UPSERT, rows))
                except _DATA_ERRORS:
                    rejected += self._write_rows_alone(conn, rows, kept)
            except sqlite3.Error as exc:
                raise SinkError(f"sqlite sink {self.name!r} ({self.path}): writing {len(rows)} "
                                f"candle(s) failed: {exc}") from exc
        self.rows_written += len(candles) - len(rejected)
        self.rows_changed += conn.total_changes - before
        self.rejected += len(rejected)
        return rejected

    @staticmethod
    def _transaction(conn: sqlite3.Connection, body: Callable[[], object]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            body()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _write_rows_alone(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]],
                          candles: list[Candle]) -> list[Rejection]:
        """The batch again, one statement per row in one transaction, skipping the rows SQLite
        refuses. A failed statement undoes only itself — unless a trigger's ``RAISE(ROLLBACK)``
        ended the whole transaction: then the pass starts over without the rows found bad."""
        bad: dict[int, Rejection] = {}

        def one_by_one() -> None:
            for i, row in enumerate(rows):
                if i in bad:
                    continue
                try:
                    conn.execute(UPSERT, row)
                except _DATA_ERRORS as exc:
                    bad[i] = Rejection.of(candles[i], f"{type(exc).__name__}: {exc}")
                    if not conn.in_transaction:
                        raise _StartOver from None

        while True:
            try:
                self._transaction(conn, one_by_one)
            except _StartOver:
                continue
            return [bad[i] for i in sorted(bad)]

    # -- reading ------------------------------------------------------------------------------
    def last_open_time(self, key: StreamKey) -> int | None:
        """Open time of the newest stored candle of ``key``, or None if there is none."""
        row = self._query_one(
            "SELECT MAX(open_time) FROM candles WHERE venue = ? AND symbol = ? AND interval = ?",
            tuple(key))
        return None if row is None or row[0] is None else int(row[0])

    def read(self, key: StreamKey, start: int | None = None,
             end: int | None = None) -> list[Candle]:
        """Stored candles of ``key`` with ``start <= open_time <= end`` (both inclusive, like
        a klines request's ``startTime``/``endTime``; None means unbounded), ordered by open time,
        decimals exactly as stored."""
        lo = _MIN_TIME if start is None else start
        hi = _MAX_TIME if end is None else end
        rows = self._query(SELECT_RANGE, (*key, lo, hi))
        return [row_to_candle(r) for r in rows]

    def read_page(self, key: StreamKey, after: int | None, end: int | None,
                  limit: int) -> list[Candle]:
        """Up to ``limit`` stored candles of ``key`` with ``after < open_time < end`` (None:
        unbounded), oldest first: keyset paging, so a range of millions of rows is read in
        constant memory (pass the last page's last open time as the next ``after``)."""
        lo = _MIN_TIME if after is None else after
        hi = _MAX_TIME if end is None else end
        rows = self._query(SELECT_PAGE, (*key, lo, hi, max(0, limit)))
        return [row_to_candle(r) for r in rows]

    def latest(self, key: StreamKey, n: int) -> list[Candle]:
        """The newest ``n`` stored candles of ``key``, oldest first (for warming buffers)."""
        if n <= 0:
            return []
        rows = self._query(SELECT_LATEST, (*key, n))
        return [row_to_candle(r) for r in reversed(rows)]

    def count(self, key: StreamKey | None = None) -> int:
        """Number of stored candles, of one series or of all."""
        if key is None:
            row = self._query_one("SELECT COUNT(*) FROM candles", ())
        else:
            row = self._query_one("SELECT COUNT(*) FROM candles WHERE venue = ? AND symbol = ? "
                                  "AND interval = ?", tuple(key))
        return 0 if row is None else int(row[0])

    def keys(self) -> list[StreamKey]:
        """Every series with at least one stored candle, sorted."""
        rows = self._query("SELECT DISTINCT venue, symbol, interval FROM candles "
                           "ORDER BY venue, symbol, interval", ())
        return [StreamKey(*r) for r in rows]

    def schema_version(self) -> int:
        row = self._query_one("SELECT MAX(version) FROM schema_migrations", ())
        return 0 if row is None or row[0] is None else int(row[0])

    # -- internals ----------------------------------------------------------------------------
    async def _submit(self, fn: Callable[[Sequence[Candle]], _T], arg: Sequence[Candle]) -> _T:
        executor = self._executor
        if executor is None:
            raise SinkError(f"sqlite sink {self.name!r} is not open")
        try:
            future = asyncio.get_running_loop().run_in_executor(executor, fn, arg)
        except RuntimeError as exc:  # executor shut down by a concurrent close()
            raise SinkError(f"sqlite sink {self.name!r} was closed during a write") from exc
        return await future

    def _connect(self, *, query_only: bool, same_thread: bool) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                                   check_same_thread=same_thread)
            if query_only:
                conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise SinkError(f"sqlite sink {self.name!r}: cannot open {self.path}: {exc}") from exc
        return conn

    def _open_sync(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"sqlite sink {self.name!r}: cannot create folder for "
                            f"{self.path}: {exc}") from exc
        conn = self._connect(query_only=False, same_thread=True)
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SinkError(f"sqlite sink {self.name!r}: {self.path} cannot use WAL "
                                f"(journal_mode={mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise SinkError(f"sqlite sink {self.name!r}: cannot prepare {self.path}: "
                            f"{exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")  # one process migrates at a time
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                         "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                         "applied_at INTEGER NOT NULL)")
            current = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
            current = 0 if current is None else int(current)
            if current > LATEST_VERSION:
                raise SinkError(f"sqlite sink {self.name!r}: {self.path} has schema "
                                f"v{current}, newer than this candlekeeper (v{LATEST_VERSION})")
            for migration in MIGRATIONS:
                if migration.version <= current:
                    continue
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (version, description, applied_at) "
                             "VALUES (?, ?, ?)", (migration.version, migration.description,
                                                  time.time_ns() // 1_000_000))
                log.info("sqlite sink %r: applied schema migration v%d (%s)", self.name,
                         migration.version, migration.description)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA optimize")
        except sqlite3.Error as exc:  # a busy reader only delays the checkpoint; not an error
            log.warning("sqlite sink %r: checkpoint on close skipped: %s", self.name, exc)
        finally:
            conn.close()

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._read_lock:
            reader = self._reader
            if reader is None:
                raise SinkError(f"sqlite sink {self.name!r} is not open")
            try:
                return reader.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise SinkError(f"sqlite sink {self.name!r}: query failed: {exc}") from exc

    def _query_one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None


class _StartOver(Exception):
    """A row's failure rolled back the whole transaction (``RAISE(ROLLBACK)`` in a trigger)."""
