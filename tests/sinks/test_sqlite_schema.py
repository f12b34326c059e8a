"""Pure Candle <-> row mapping: exact decimal text and rejection of malformed candles."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from sinkkit import make_candle

from candlekeeper.sinks.sqlite_schema import (
    LATEST_VERSION,
    MIGRATIONS,
    candle_to_row,
    row_to_candle,
)


def test_row_round_trip_keeps_every_field_and_the_exchange_text() -> None:
    c = make_candle(0)
    row = candle_to_row(c, ingested_at=123)
    assert row[5:10] == ("7.6080", "7.6180", "7.6070", "7.6170", "3005")
    assert row[-1] == 123
    back = row_to_candle(row[:-1])
    assert back == c
    assert str(back.close) == "7.6170"


@pytest.mark.parametrize("text", ["0.00000010", "0.01731", "16542.10", "235736", "0.00000000", "0"])
def test_decimal_text_is_positional_and_exact(text: str) -> None:
    c = msgspec.structs.replace(make_candle(0), volume_str=text)
    stored = candle_to_row(c, 0)[9]
    assert stored == text  # what the exchange sent, never "1.0E-7"
    back = row_to_candle(candle_to_row(c, 0)[:-1]).volume
    assert back == Decimal(text)
    assert str(back) == str(Decimal(text))
    assert back.as_tuple() == Decimal(text).as_tuple()


def test_optional_fields_map_to_null() -> None:
    c = msgspec.structs.replace(make_candle(0, first_trade_id=None), quote_volume_str=None,
                                trades=None, taker_buy_base_volume_str=None,
                                taker_buy_quote_volume_str=None, event_time=None)
    row = candle_to_row(c, 0)
    assert row[10:16] == (None, None, None, None, None, None)
    assert row[17] is None
    assert row_to_candle(row[:-1]) == c


@pytest.mark.parametrize(("field", "value", "message"), [
    ("close_str", 7.617, "close must be decimal text"),
    ("close_str", Decimal("7.6170"), "close must be decimal text"),
    ("open_str", "NaN", "open must be decimal text"),
    ("high_str", "1E+3", "high must be decimal text"),
    ("open_time", "1626992700000", "open_time must be an int"),
    ("trades", True, "trades must be an int"),
    ("symbol", "", "symbol must be a non-empty str"),
    ("closed", 1, "closed must be a bool"),
    ("quote_volume_str", 1.5, "quote_volume must be decimal text"),
])
def test_malformed_candles_are_rejected_with_a_clear_message(
        field: str, value: object, message: str) -> None:
    c = msgspec.structs.replace(make_candle(0), **{field: value})
    with pytest.raises((TypeError, ValueError), match=message):
        candle_to_row(c, 0)


def test_migrations_are_numbered_in_order() -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1))
    assert versions[-1] == LATEST_VERSION
