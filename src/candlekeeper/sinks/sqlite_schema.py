"""SQLite schema, migrations, statements and the Candle <-> row mapping (pure, no I/O).

Kept apart from the sink so the SQL can be read in one place and the row mapping tested without a
database. All statements are constants with ``?`` placeholders; no value is ever formatted into
SQL text.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from candlekeeper.core.candle import DECIMAL_TEXT, Candle


class Migration(NamedTuple):
    version: int
    description: str
    statements: tuple[str, ...]


# Append new migrations; never edit an applied one.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "candles table keyed by (venue, symbol, interval, open_time)", (
        """
        CREATE TABLE candles (
            venue                  TEXT    NOT NULL,
            symbol                 TEXT    NOT NULL,
            interval               TEXT    NOT NULL,
            open_time              INTEGER NOT NULL,  -- Unix ms
            close_time             INTEGER NOT NULL,  -- Unix ms
            open                   TEXT    NOT NULL,  -- exact decimal string
            high                   TEXT    NOT NULL,
            low                    TEXT    NOT NULL,
            close                  TEXT    NOT NULL,
            volume                 TEXT    NOT NULL,
            quote_volume           TEXT,              -- NULL where the venue lacks the field
            trades                 INTEGER,
            taker_buy_base_volume  TEXT,
            taker_buy_quote_volume TEXT,
            first_trade_id         INTEGER,
            last_trade_id          INTEGER,
            closed                 INTEGER NOT NULL CHECK (closed IN (0, 1)),
            event_time             INTEGER,           -- venue event time, Unix ms
            source                 TEXT    NOT NULL,  -- 'ws' | 'rest' | 'derived' | 'archive'
            ingested_at            INTEGER NOT NULL,  -- Unix ms when these values were stored
            PRIMARY KEY (venue, symbol, interval, open_time)
        ) WITHOUT ROWID
        """,
    )),
)
LATEST_VERSION = MIGRATIONS[-1].version

# Upsert policy (see sqlite.py): identical market values -> row kept; different values -> replaced,
# but an unclosed candle never replaces a closed one; a NULL never erases a stored value.
UPSERT = """
INSERT INTO candles (
    venue, symbol, interval, open_time, close_time, open, high, low, close, volume,
    quote_volume, trades, taker_buy_base_volume, taker_buy_quote_volume,
    first_trade_id, last_trade_id, closed, event_time, source, ingested_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (venue, symbol, interval, open_time) DO UPDATE SET
    close_time = excluded.close_time,
    open = excluded.open,
    high = excluded.high,
    low = excluded.low,
    close = excluded.close,
    volume = excluded.volume,
    quote_volume = COALESCE(excluded.quote_volume, candles.quote_volume),
    trades = COALESCE(excluded.trades, candles.trades),
    taker_buy_base_volume = COALESCE(excluded.taker_buy_base_volume,
                                     candles.taker_buy_base_volume),
    taker_buy_quote_volume = COALESCE(excluded.taker_buy_quote_volume,
                                      candles.taker_buy_quote_volume),
    first_trade_id = COALESCE(excluded.first_trade_id, candles.first_trade_id),
    last_trade_id = COALESCE(excluded.last_trade_id, candles.last_trade_id),
    closed = excluded.closed,
    event_time = COALESCE(excluded.event_time, candles.event_time),
    source = excluded.source,
    ingested_at = excluded.ingested_at
WHERE excluded.closed >= candles.closed
  AND ((excluded.close_time, excluded.open, excluded.high, excluded.low, excluded.close,
        excluded.volume, excluded.closed)
       IS NOT (candles.close_time, candles.open, candles.high, candles.low, candles.close,
               candles.volume, candles.closed)
       OR (excluded.quote_volume IS NOT NULL AND excluded.quote_volume IS NOT candles.quote_volume)
       OR (excluded.trades IS NOT NULL AND excluded.trades IS NOT candles.trades)
       OR (excluded.taker_buy_base_volume IS NOT NULL
           AND excluded.taker_buy_base_volume IS NOT candles.taker_buy_base_volume)
       OR (excluded.taker_buy_quote_volume IS NOT NULL
           AND excluded.taker_buy_quote_volume IS NOT candles.taker_buy_quote_volume)
       OR (excluded.first_trade_id IS NOT NULL
           AND excluded.first_trade_id IS NOT candles.first_trade_id)
       OR (excluded.last_trade_id IS NOT NULL
           AND excluded.last_trade_id IS NOT candles.last_trade_id))
"""

_COLUMNS = """venue, symbol, interval, open_time, close_time, open, high, low, close, volume,
    quote_volume, trades, taker_buy_base_volume, taker_buy_quote_volume,
    first_trade_id, last_trade_id, closed, event_time, source"""

SELECT_RANGE = (
    "SELECT " + _COLUMNS + " FROM candles WHERE venue = ? AND symbol = ? AND interval = ? "
    "AND open_time >= ? AND open_time <= ? ORDER BY open_time"
)
#: keyset paging (``open_time > after``): a long range read in pages of constant size
SELECT_PAGE = (
    "SELECT " + _COLUMNS + " FROM candles WHERE venue = ? AND symbol = ? AND interval = ? "
    "AND open_time > ? AND open_time < ? ORDER BY open_time LIMIT ?"
)
SELECT_LATEST = (
    "SELECT " + _COLUMNS + " FROM candles WHERE venue = ? AND symbol = ? AND interval = ? "
    "ORDER BY open_time DESC LIMIT ?"
)


def _text(value: object, field: str) -> str:
    if type(value) is not str or not value:
        raise TypeError(f"{field} must be a non-empty str, got {value!r}")
    return value


def _int(value: object, field: str) -> int:
    if type(value) is not int:
        raise TypeError(f"{field} must be an int, got {value!r}")
    return value


def _opt_int(value: object, field: str) -> int | None:
    return None if value is None else _int(value, field)


def _bool(value: object, field: str) -> int:
    if type(value) is not bool:
        raise TypeError(f"{field} must be a bool, got {value!r}")
    return 1 if value else 0


def _dec(value: object, field: str) -> str:
    """The candle's exact decimal text, checked to be a plain decimal number (``"0.00000010"``;
    no exponent, no NaN), so ``Decimal(text)`` on the way back gives the same digits."""
    if type(value) is not str or not DECIMAL_TEXT.fullmatch(value):
        raise TypeError(f"{field} must be decimal text, got {value!r}")
    return value


def _opt_dec(value: object, field: str) -> str | None:
    return None if value is None else _dec(value, field)


def candle_to_row(c: Candle, ingested_at: int) -> tuple[Any, ...]:
    """Validate and map a candle to UPSERT parameters; raises TypeError/ValueError on bad input
    (a Struct does not type-check on construction, so garbage could reach this far)."""
    return (
        _text(c.venue, "venue"), _text(c.symbol, "symbol"), _text(c.interval, "interval"),
        _int(c.open_time, "open_time"), _int(c.close_time, "close_time"),
        _dec(c.open_str, "open"), _dec(c.high_str, "high"), _dec(c.low_str, "low"),
        _dec(c.close_str, "close"), _dec(c.volume_str, "volume"),
        _opt_dec(c.quote_volume_str, "quote_volume"), _opt_int(c.trades, "trades"),
        _opt_dec(c.taker_buy_base_volume_str, "taker_buy_base_volume"),
        _opt_dec(c.taker_buy_quote_volume_str, "taker_buy_quote_volume"),
        _opt_int(c.first_trade_id, "first_trade_id"), _opt_int(c.last_trade_id, "last_trade_id"),
        _bool(c.closed, "closed"),
        _opt_int(c.event_time, "event_time"), _text(c.source, "source"),
        ingested_at,
    )


def row_to_candle(r: tuple[Any, ...]) -> Candle:
    """A row selected with ``SELECT_RANGE``/``SELECT_LATEST`` back to a ``Candle``."""
    return Candle(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11],
                  r[12], r[13], r[14], r[15], bool(r[16]), r[17], r[18])
