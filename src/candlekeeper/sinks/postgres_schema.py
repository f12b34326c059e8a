"""PostgreSQL schema, migrations, statements and partition arithmetic (pure, no I/O).

Values are always bound parameters (``$1``...). Two things cannot be parameters in PostgreSQL and
are formatted here instead, safely: *identifiers* (the schema name, checked against a strict
pattern and double-quoted) and *partition bounds* in DDL (integers computed by this module).

Layouts (``Layout``):

* ``partitioned`` — native declarative range partitioning on ``open_time`` (Unix ms, ``bigint``),
  one partition per calendar month (UTC), created on demand before a write needs it, plus a
  ``DEFAULT`` partition as a safety net for rows written around candlekeeper.
* ``timescaledb`` — a hypertable on the integer ``open_time`` with ``chunk_time_interval`` in ms
  and an ``integer_now`` function, so retention policies and continuous aggregates work.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from candlekeeper.core.candle import SOURCES

Layout = Literal["partitioned", "timescaledb"]
LayoutChoice = Literal["auto", "partitioned", "timescaledb"]

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,47}")

#: advisory lock key serialising schema changes across processes ("candlek" in ASCII)
DDL_LOCK = 0x63616E646C656B

#: staging table columns, in ``Candle`` field order (so ``msgspec.structs.astuple`` is a row)
STAGING_COLUMNS: tuple[str, ...] = (
    "venue", "symbol", "interval", "open_time", "close_time", "open", "high", "low", "close",
    "volume", "quote_volume", "trades", "taker_buy_base_volume", "taker_buy_quote_volume",
    "first_trade_id", "last_trade_id", "closed", "event_time", "source")
_NUMERIC = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_base_volume",
            "taker_buy_quote_volume")
STAGING = "ck_staging"


def quote_ident(name: str) -> str:
    """``name`` double-quoted after checking it is a plain lower-case identifier."""
    if not _IDENT.fullmatch(name):
        raise ValueError(f"not a plain lower-case SQL identifier: {name!r}")
    return f'"{name}"'


class Names(NamedTuple):
    """Schema-qualified, quoted names of everything the sink creates."""

    schema: str
    table: str
    default: str
    migrations: str
    settings: str
    now_fn: str
    last_fn: str
    rollup_fn: str

    @classmethod
    def of(cls, schema: str) -> Names:
        s = quote_ident(schema)
        return cls(s, f"{s}.candles", f"{s}.candles_default", f"{s}.candlekeeper_migrations",
                   f"{s}.candlekeeper_settings", f"{s}.candles_now_ms", f"{s}.candles_last",
                   f"{s}.candles_rollup")

    def partition(self, month: int) -> str:
        return f"{self.schema}.{quote_ident(partition_name(month))}"


# -- partitions ---------------------------------------------------------------------------------
def month_of(ms: int) -> int:
    """Months since 1970-01 of a Unix-ms timestamp (UTC)."""
    d = datetime.fromtimestamp(ms / 1000, UTC)
    return (d.year - 1970) * 12 + d.month - 1


def month_start_ms(month: int) -> int:
    year, m = divmod(month, 12)
    return int(datetime(1970 + year, m + 1, 1, tzinfo=UTC).timestamp()) * 1000


def partition_name(month: int) -> str:
    year, m = divmod(month, 12)
    return f"candles_p{1970 + year:04d}{m + 1:02d}"


def parse_partition_name(name: str) -> int | None:
    m = re.fullmatch(r"candles_p(\d{4})(\d{2})", name)
    if m is None or not 1 <= int(m[2]) <= 12:
        return None
    return (int(m[1]) - 1970) * 12 + int(m[2]) - 1


#: months outside [1970-01, 9999-12] are left to the default partition
MAX_MONTH = (9999 - 1970) * 12 + 11


def months_between(lo_ms: int, hi_ms: int) -> range:
    """Every month from the one holding ``lo_ms`` to the one holding ``hi_ms`` (clamped)."""
    lo = month_of(max(0, lo_ms)) if lo_ms < 253_402_300_800_000 else MAX_MONTH + 1
    hi = month_of(min(hi_ms, 253_402_300_799_999)) if hi_ms >= 0 else -1
    return range(lo, hi + 1)


def create_partition(n: Names, month: int) -> str:
    return (f"CREATE TABLE {n.partition(month)} PARTITION OF {n.table} "
            f"FOR VALUES FROM ({month_start_ms(month)}) TO ({month_start_ms(month + 1)})")


def move_from_default(n: Names, month: int) -> tuple[str, ...]:
    """Statements that turn rows already in the default partition into a new month partition
    (``CREATE ... PARTITION OF`` would fail while the default holds rows of that range)."""
    lo, hi = month_start_ms(month), month_start_ms(month + 1)
    part = n.partition(month)
    return (
        f"CREATE TABLE {part} (LIKE {n.table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
        f"INSERT INTO {part} SELECT * FROM {n.default} WHERE open_time >= {lo} "
        f"AND open_time < {hi}",
        f"DELETE FROM {n.default} WHERE open_time >= {lo} AND open_time < {hi}",
        f"ALTER TABLE {n.table} ATTACH PARTITION {part} FOR VALUES FROM ({lo}) TO ({hi})",
    )


# -- migrations ---------------------------------------------------------------------------------
def _columns() -> str:
    return """
    venue                  text    NOT NULL,
    symbol                 text    NOT NULL,
    interval               text    NOT NULL,
    open_time              bigint  NOT NULL,  -- Unix ms (the partitioning / hypertable key)
    close_time             bigint  NOT NULL,
    open                   numeric NOT NULL,  -- exact: the exchange's digits and scale
    high                   numeric NOT NULL,
    low                    numeric NOT NULL,
    close                  numeric NOT NULL,
    volume                 numeric NOT NULL,
    quote_volume           numeric,           -- NULL where the venue lacks the field
    trades                 bigint,
    taker_buy_base_volume  numeric,
    taker_buy_quote_volume numeric,
    first_trade_id         bigint,
    last_trade_id          bigint,
    closed                 boolean NOT NULL,
    event_time             bigint,
    source                 text    NOT NULL CHECK (source IN ('ws', 'rest')),
    ingested_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, symbol, interval, open_time)"""


def _v1(n: Names, layout: Layout, chunk_ms: int) -> list[str]:
    if layout == "partitioned":
        table = [f"CREATE TABLE {n.table} ({_columns()}\n) PARTITION BY RANGE (open_time)",
                 f"CREATE TABLE {n.default} PARTITION OF {n.table} DEFAULT"]
    else:
        table = [
            f"CREATE TABLE {n.table} ({_columns()}\n)",
            f"SELECT create_hypertable('{n.table}', 'open_time', "
            f"chunk_time_interval => {int(chunk_ms)}::bigint)",
            f"CREATE FUNCTION {n.now_fn}() RETURNS bigint LANGUAGE sql STABLE AS "
            "$$ SELECT (extract(epoch FROM now()) * 1000)::bigint $$",
            f"SELECT set_integer_now_func('{n.table}', '{n.now_fn}')",
        ]
    return [
        *table,
        f"INSERT INTO {n.settings} (key, value) VALUES ('layout', '{layout}')",
        # "last N candles of a stream", newest first
        f"""CREATE FUNCTION {n.last_fn}(p_venue text, p_symbol text, p_interval text, p_n integer)
        RETURNS SETOF {n.table} LANGUAGE sql STABLE AS $$
            SELECT * FROM {n.table} WHERE venue = p_venue AND symbol = p_symbol
               AND interval = p_interval ORDER BY open_time DESC LIMIT p_n $$""",
        # higher-interval candles rolled up from stored closed ones, exact numeric arithmetic;
        # buckets are aligned to the Unix epoch (right for 1h..1d in UTC, not for weeks)
        f"""CREATE FUNCTION {n.rollup_fn}(p_venue text, p_symbol text, p_interval text,
                                          p_bucket_ms bigint, p_start bigint, p_end bigint)
        RETURNS TABLE (open_time bigint, close_time bigint, open numeric, high numeric,
                       low numeric, close numeric, volume numeric, quote_volume numeric,
                       trades bigint, candles bigint)
        LANGUAGE sql STABLE AS $$
            SELECT b, b + p_bucket_ms - 1,
                   (array_agg(s.open ORDER BY s.open_time))[1], max(s.high), min(s.low),
                   (array_agg(s.close ORDER BY s.open_time DESC))[1], sum(s.volume),
                   sum(s.quote_volume), sum(s.trades), count(*)
            FROM (SELECT c.*, c.open_time - (c.open_time % p_bucket_ms) AS b FROM {n.table} c
                  WHERE c.venue = p_venue AND c.symbol = p_symbol AND c.interval = p_interval
                    AND c.closed AND c.open_time >= p_start AND c.open_time <= p_end) s
            GROUP BY b ORDER BY b $$""",
    ]


#: functions whose calls need a working TimescaleDB (``calls_timescaledb``)
_TIMESCALEDB_CALLS = ("create_hypertable(", "set_integer_now_func(")


def calls_timescaledb(sql: str) -> bool:
    """Whether ``sql`` calls into the TimescaleDB library (such a statement can fail, and end
    the session, when TimescaleDB is installed but not preloaded)."""
    return any(call in sql for call in _TIMESCALEDB_CALLS)


class Migration(NamedTuple):
    version: int
    description: str
    statements: Callable[[Names, Layout, int], list[str]]


def _v2(n: Names, layout: Layout, chunk_ms: int) -> list[str]:
    """``source`` takes every value of :data:`~candlekeeper.core.candle.SOURCES` (v1 allowed
    only ws and rest; derived intervals and archive backfills store theirs)."""
    allowed = ", ".join(f"'{s}'" for s in SOURCES)
    return [f"ALTER TABLE {n.table} DROP CONSTRAINT IF EXISTS candles_source_check",
            f"ALTER TABLE {n.table} ADD CONSTRAINT candles_source_check "
            f"CHECK (source IN ({allowed}))"]


# Append new migrations; never edit an applied one.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "candles table (partitioned or hypertable), candles_last, candles_rollup", _v1),
    Migration(2, "source may be derived or archive", _v2),
)
LATEST_VERSION = MIGRATIONS[-1].version


def bootstrap(n: Names) -> list[str]:
    return [
        f"CREATE SCHEMA IF NOT EXISTS {n.schema}",
        f"CREATE TABLE IF NOT EXISTS {n.migrations} (version integer PRIMARY KEY, "
        "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
        f"CREATE TABLE IF NOT EXISTS {n.settings} (key text PRIMARY KEY, value text NOT NULL)",
    ]


# -- statements ---------------------------------------------------------------------------------
def create_staging() -> str:
    cols = ", ".join(f"{c} {_staging_type(c)}" for c in STAGING_COLUMNS)
    return f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} ({cols}) ON COMMIT DELETE ROWS"


def _staging_type(column: str) -> str:
    if column in _NUMERIC or column in ("venue", "symbol", "interval", "source"):
        return "text"  # decimals travel as text; the cast to numeric keeps digits and scale
    return "boolean" if column == "closed" else "bigint"


def upsert_from_staging(n: Names) -> str:
    """The SQLite upsert policy (``docs/storage.md``) from the staging table. Values are compared
    as text, because numeric equality says ``7.6170 = 7.617`` and the policy is "same digits"."""
    select = ", ".join(f"{c}::numeric" if c in _NUMERIC else c for c in STAGING_COLUMNS)
    plain = ("close_time", "open", "high", "low", "close", "volume", "closed")
    optional = ("quote_volume", "trades", "taker_buy_base_volume", "taker_buy_quote_volume",
                "first_trade_id", "last_trade_id")
    sets = [f"{c} = EXCLUDED.{c}" for c in plain]
    sets += [f"{c} = COALESCE(EXCLUDED.{c}, c.{c})" for c in (*optional, "event_time")]
    sets += ["source = EXCLUDED.source", "ingested_at = EXCLUDED.ingested_at"]

    def txt(side: str, c: str) -> str:
        return f"{side}.{c}::text" if c in _NUMERIC else f"{side}.{c}"

    changed = [
        f"ROW({', '.join(txt('EXCLUDED', c) for c in plain)}) IS DISTINCT FROM "
        f"ROW({', '.join(txt('c', c) for c in plain)})",
        *(f"(EXCLUDED.{c} IS NOT NULL AND {txt('EXCLUDED', c)} IS DISTINCT FROM {txt('c', c)})"
          for c in optional),
    ]
    return (f"INSERT INTO {n.table} AS c ({', '.join(STAGING_COLUMNS)}, ingested_at)\n"
            f"SELECT {select}, now() FROM {STAGING}\n"
            "ON CONFLICT (venue, symbol, interval, open_time) DO UPDATE SET\n    "
            + ",\n    ".join(sets)
            + "\nWHERE (EXCLUDED.closed OR NOT c.closed)\n  AND ("
            + "\n    OR ".join(changed) + ")")


def upsert_from_arrays(n: Names) -> str:
    """The same upsert reading the batch from one array parameter per column (``unnest``): a
    single prepared statement, no staging table — cheaper than COPY for small batches, where
    COPY's fixed cost (a staging round trip and truncating the temp table at commit) dominates."""
    arrays = ", ".join(f"${i + 1}::{_staging_type(c)}[]" for i, c in enumerate(STAGING_COLUMNS))
    source = f"unnest({arrays}) AS {STAGING}({', '.join(STAGING_COLUMNS)})"
    return upsert_from_staging(n).replace(f"FROM {STAGING}\n", f"FROM {source}\n", 1)


def select_columns() -> str:
    """Columns in ``Candle`` field order, decimals as their exact text."""
    return ", ".join(f"{c}::text" if c in _NUMERIC else c for c in STAGING_COLUMNS)


def select_range(n: Names) -> str:
    return (f"SELECT {select_columns()} FROM {n.table} WHERE venue = $1 AND symbol = $2 "
            "AND interval = $3 AND open_time >= $4 AND open_time <= $5 ORDER BY open_time")


def select_page(n: Names) -> str:
    """Keyset paging: ``open_time > $4 AND open_time < $5``, at most ``$6`` rows."""
    return (f"SELECT {select_columns()} FROM {n.table} WHERE venue = $1 AND symbol = $2 "
            "AND interval = $3 AND open_time > $4 AND open_time < $5 ORDER BY open_time "
            "LIMIT $6")


def select_latest(n: Names) -> str:
    return (f"SELECT {select_columns()} FROM {n.table} WHERE venue = $1 AND symbol = $2 "
            "AND interval = $3 ORDER BY open_time DESC LIMIT $4")
