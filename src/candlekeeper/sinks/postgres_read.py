"""The read helpers of :class:`~candlekeeper.sinks.postgres.PostgresSink` (a mixin: they need
only its pool, its quoted names and its redactor). Async, on the sink's pool; decimals come back
as the exact text stored."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError, SinkError
from candlekeeper.observability.redact import describe_error
from candlekeeper.sinks import postgres_schema as ps

__all__ = ["PostgresReads"]

_MIN_TIME = -(2**63)
_MAX_TIME = 2**63 - 1


class PostgresReads:
    """Read helpers over ``_pool`` (set by the sink's ``open``)."""

    name: str
    redact: Callable[[str], str]
    _pool: asyncpg.Pool | None
    _names: ps.Names

    _open_lock: asyncio.Lock
    _shown: str

    _create_pool: Callable[[], Awaitable[asyncpg.Pool]]

    async def open_for_reading(self) -> None:
        """Connect for the read helpers only: no DDL, no migration, no lock — what a role that
        may only ``SELECT`` can do (an export, a replay). The schema must exist, at a version
        this code reads. Idempotent; ``close()`` as usual."""
        async with self._open_lock:
            if self._pool is not None:
                return
            pool = await self._create_pool()
            try:
                version = await pool.fetchval(f"SELECT max(version) FROM "
                                              f"{self._names.migrations}")
            except asyncpg.UndefinedTableError:
                pool.terminate()
                raise ConfigError(f"postgres sink {self.name!r}: no candlekeeper tables in "
                                  f"that database (schema {self._names.schema})") from None
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    TimeoutError) as exc:
                pool.terminate()
                raise SinkError(f"postgres sink {self.name!r}: cannot read {self._shown}: "
                                f"{describe_error(exc, self.redact)}") from None
            if (version or 0) > ps.LATEST_VERSION:
                pool.terminate()
                raise SinkError(f"postgres sink {self.name!r}: the schema is at v{version}, "
                                f"newer than this candlekeeper (v{ps.LATEST_VERSION})")
            self._pool = pool

    # -- reading ------------------------------------------------------------------------------
    async def last_open_time(self, key: StreamKey) -> int | None:
        """Open time of the newest stored candle of ``key``, or None if there is none."""
        value = await self._fetchval(
            f"SELECT open_time FROM {self._names.table} WHERE venue = $1 AND symbol = $2 "
            "AND interval = $3 ORDER BY open_time DESC LIMIT 1", *key)
        return None if value is None else int(value)

    async def read(self, key: StreamKey, start: int | None = None,
                   end: int | None = None) -> list[Candle]:
        """Stored candles of ``key`` with ``start <= open_time <= end`` (inclusive; None means
        unbounded), ordered by open time, decimals exactly as stored."""
        rows = await self._fetch(ps.select_range(self._names), *key,
                                 _MIN_TIME if start is None else start,
                                 _MAX_TIME if end is None else end)
        return [Candle(*r) for r in rows]

    async def read_page(self, key: StreamKey, after: int | None, end: int | None,
                        limit: int) -> list[Candle]:
        """Up to ``limit`` stored candles of ``key`` with ``after < open_time < end`` (None:
        unbounded), oldest first: keyset paging for reads of any length in constant memory."""
        rows = await self._fetch(ps.select_page(self._names), *key,
                                 _MIN_TIME if after is None else after,
                                 _MAX_TIME if end is None else end, max(0, limit))
        return [Candle(*r) for r in rows]

    async def latest(self, key: StreamKey, n: int) -> list[Candle]:
        """The newest ``n`` stored candles of ``key``, oldest first (for warming buffers)."""
        if n <= 0:
            return []
        rows = await self._fetch(ps.select_latest(self._names), *key, n)
        return [Candle(*r) for r in reversed(rows)]

    async def count(self, key: StreamKey | None = None) -> int:
        """Number of stored candles, of one series or of all."""
        t = self._names.table
        if key is None:
            return int(await self._fetchval(f"SELECT count(*) FROM {t}"))
        return int(await self._fetchval(f"SELECT count(*) FROM {t} WHERE venue = $1 AND "
                                        "symbol = $2 AND interval = $3", *key))

    async def keys(self) -> list[StreamKey]:
        """Every series with at least one stored candle, sorted."""
        rows = await self._fetch(f"SELECT DISTINCT venue, symbol, interval FROM "
                                 f"{self._names.table} ORDER BY venue, symbol, interval")
        return [StreamKey(*r) for r in rows]

    async def schema_version(self) -> int:
        return int(await self._fetchval(f"SELECT coalesce(max(version), 0) FROM "
                                        f"{self._names.migrations}"))

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        pool = self._pool
        if pool is None:
            raise SinkError(f"postgres sink {self.name!r} is not open")
        try:
            return await pool.fetch(sql, *args)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise SinkError(f"postgres sink {self.name!r}: query failed: "
                            f"{describe_error(exc, self.redact)}") from None

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        rows = await self._fetch(sql, *args)
        return rows[0][0] if rows else None
