"""Reading stored candles back, from whichever sink can be read: a SQLite file or PostgreSQL.

``export`` (files), ``ReplayFeed`` (history through the live consumer API) and the simulator's
``--replay-db`` all read storage the same way, through :class:`StoredCandles`: one async face
over the two sinks' read helpers, and **keyset paging** (``open_time > last``, ``LIMIT n``) so
that a range of millions of rows is read in pages of constant size — never all at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from candlekeeper.config_support import safe_line
from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError
from candlekeeper.observability.redact import Redactor, redact_text
from candlekeeper.sinks.sqlite import SQLiteSink

if TYPE_CHECKING:  # pragma: no cover
    from candlekeeper.config import Config
    from candlekeeper.sinks.postgres import PostgresSink

__all__ = ["DEFAULT_PAGE_ROWS", "READABLE_SINKS", "StoredCandles", "is_dsn", "scrub"]

#: rows per page: large enough that a query's fixed cost vanishes, small enough to be nothing
#: in memory (~10 MB of candles)
DEFAULT_PAGE_ROWS = 10_000
#: the sinks that can be read back, in the order ``--sink`` defaults to
READABLE_SINKS = ("sqlite", "postgres")


def is_dsn(target: str) -> bool:
    """A PostgreSQL DSN (``postgresql://…``/``postgres://…``) rather than a SQLite path."""
    return target.startswith(("postgresql://", "postgres://"))


def scrub(text: str, targets: Sequence[str]) -> str:
    """One line of ``text`` for a user: without the passwords of the DSNs among ``targets``
    (nor their pieces) or any URL's user info; a DSN's host and database stay readable."""
    dsns = [t for t in targets if is_dsn(t)]
    return safe_line(redact_text(text, Redactor(urls=dsns) if dsns else None), limit=1000)


class StoredCandles:
    """Async reads of one sink. Build it with :meth:`of` (a SQLite path, a PostgreSQL DSN or a
    config and a sink name); use as ``async with``."""

    def __init__(self, sink: SQLiteSink | PostgresSink, shown: str) -> None:
        self.sink = sink
        #: what to call the source in messages (a path, or a DSN without its password)
        self.shown = shown

    @classmethod
    def of(cls, target: str | Path | Config, *, sink: str | None = None,
           schema: str = "public") -> StoredCandles:
        """``target``: a SQLite file (which must exist: reading never creates one), a
        PostgreSQL DSN, or a :class:`~candlekeeper.config.Config` whose ``sink`` (``sqlite`` or
        ``postgres``; default: the first of them it enables) is read."""
        if isinstance(target, str | Path):
            text = str(target)
            if is_dsn(text):
                return cls._postgres(text, schema)
            path = Path(text)
            if not path.is_file():
                raise ConfigError(f"no SQLite database at {path}")
            return cls(SQLiteSink(path, name="export"), str(path))
        return cls._from_config(target, sink)

    @classmethod
    def _postgres(cls, dsn: str, schema: str) -> StoredCandles:
        from candlekeeper.observability.redact import redact_url
        from candlekeeper.sinks.postgres import PostgresSink

        return cls(PostgresSink(dsn, name="export", schema=schema, pool_min_size=0,
                                pool_max_size=2), redact_url(dsn))

    @classmethod
    def _from_config(cls, config: Config, name: str | None) -> StoredCandles:
        sinks = config.sinks
        enabled = [n for n in READABLE_SINKS if getattr(sinks, n).enabled]
        if name is None:
            if not enabled:
                raise ConfigError("the config enables no sink that can be read "
                                  f"({', '.join(READABLE_SINKS)})")
            name = enabled[0]
        if name not in READABLE_SINKS:
            raise ConfigError(f"sink {name!r} cannot be read; readable: "
                              f"{', '.join(READABLE_SINKS)}")
        if name not in enabled:
            raise ConfigError(f"the config does not enable the {name} sink")
        if name == "sqlite":
            return cls.of(sinks.sqlite.path)
        pg = sinks.postgres
        return cls._postgres(pg.dsn.get_secret_value(), pg.schema_name)

    # -- lifecycle ----------------------------------------------------------------------------
    async def open(self) -> None:
        """Open for reading only (``open_for_reading``): no DDL, no migration, no write lock —
        a SQLite file the service is writing is not disturbed, and a PostgreSQL role that may
        only SELECT can read."""
        await self.sink.open_for_reading()

    async def close(self) -> None:
        await self.sink.close()

    async def __aenter__(self) -> StoredCandles:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- reads --------------------------------------------------------------------------------
    async def keys(self) -> list[StreamKey]:
        """Every stream with at least one stored candle, sorted."""
        sink = self.sink
        if isinstance(sink, SQLiteSink):
            return await asyncio.to_thread(sink.keys)
        return await sink.keys()

    async def page(self, key: StreamKey, after: int | None, end: int | None,
                   limit: int = DEFAULT_PAGE_ROWS) -> list[Candle]:
        """Up to ``limit`` candles of ``key`` with ``after < open_time < end``, oldest first."""
        sink = self.sink
        if isinstance(sink, SQLiteSink):
            return await asyncio.to_thread(sink.read_page, key, after, end, limit)
        return await sink.read_page(key, after, end, limit)

    async def pages(self, key: StreamKey, start: int | None, end: int | None,
                    page_rows: int = DEFAULT_PAGE_ROWS) -> AsyncIterator[list[Candle]]:
        """The candles of ``key`` with ``start <= open_time < end`` (None: unbounded), in
        pages of at most ``page_rows``, oldest first."""
        after = None if start is None else start - 1
        while True:
            batch = await self.page(key, after, end, page_rows)
            if not batch:
                return
            yield batch
            if len(batch) < page_rows:
                return
            after = batch[-1].open_time
