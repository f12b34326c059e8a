"""The NATS message format: subjects, sanitising, dedup ids and the versioned payload (pure)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sinkkit import make_candle

from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import DecodeError
from candlekeeper.sinks.nats_schema import (
    SCHEMA_VERSION,
    decode_candle,
    encode_candle,
    msg_id,
    parse_msg_id,
    sanitize_token,
    subject_for,
    validate_prefix,
)
from candlekeeper.sinks.nats_stream import subject_matches


def test_subject_is_prefix_venue_symbol_interval() -> None:
    key = StreamKey("binance-usdm", "BTCUSDT", "1m")
    assert subject_for("candles", key) == "candles.binance-usdm.BTCUSDT.1m"
    assert subject_for("prod.candles", key) == "prod.candles.binance-usdm.BTCUSDT.1m"


@pytest.mark.parametrize(("raw", "token"), [
    ("BTC.USDT", "BTC_USDT"), ("A*B", "A_B"), ("A>B", "A_B"), ("A B\tC\n", "A_B_C_"),
    ("1000PEPEUSDT", "1000PEPEUSDT"), ("binance-spot", "binance-spot"),
])
def test_tokens_are_sanitised(raw: str, token: str) -> None:
    assert sanitize_token(raw) == token
    assert subject_for("candles", StreamKey(raw, raw, "1m")).split(".") == [
        "candles", token, token, "1m"]


def test_empty_token_and_bad_prefixes_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        sanitize_token("")
    for bad in ("", "candles.", ".candles", "candles.>", "can*dles", "a..b", "a b"):
        with pytest.raises(ValueError, match="invalid NATS subject prefix"):
            validate_prefix(bad)
    assert validate_prefix("prod.candles") == "prod.candles"


def test_msg_id_is_the_raw_natural_key_and_parses_back() -> None:
    c = make_candle(3, key=StreamKey("binance-usdm", "BTC.USDT", "1m"))
    assert msg_id(c) == f"binance-usdm:BTC.USDT:1m:{c.open_time}"
    assert parse_msg_id(msg_id(c)) == (c.key, c.open_time)
    for bad in ("nothing", "a:b:c:notanumber", "a:b:1000"):
        with pytest.raises(ValueError, match="not a candle message id"):
            parse_msg_id(bad)


def test_payload_round_trip_keeps_exact_decimal_text() -> None:
    c = make_candle(0, close="0.00000010")
    data = encode_candle(c)
    doc = json.loads(data)
    assert doc["v"] == SCHEMA_VERSION == 1
    assert doc["close"] == "0.00000010" and doc["open"] == "7.6080"
    assert doc["quote_volume"] == "22875.8590" and doc["trades"] == 113
    back = decode_candle(data)
    assert back == c
    assert back.close_str == "0.00000010" and back.close == Decimal("1.0E-7")
    assert back.quote_volume == Decimal("22875.8590")


def test_payload_without_optional_fields_and_with_unknown_ones() -> None:
    c = make_candle(1, first_trade_id=None, source="rest")
    doc = json.loads(encode_candle(c))
    assert doc["first_trade_id"] is None and doc["source"] == "rest"
    doc["added_later"] = "ignored"  # a producer may add optional fields within a version
    assert decode_candle(json.dumps(doc)) == c


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(v=2), "unsupported candle message schema v=2"),
    (lambda d: d.update(close="7.61e3"), "invalid value"),
    (lambda d: d.update(close=7.617), "malformed"),
    (lambda d: d.pop("open_time"), "malformed"),
])
def test_bad_payloads_raise_decode_error(mutate: object, message: str) -> None:
    doc = json.loads(encode_candle(make_candle(0)))
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(DecodeError, match=message):
        decode_candle(json.dumps(doc))
    with pytest.raises(DecodeError, match="malformed"):
        decode_candle(b"{not json")


@pytest.mark.parametrize(("pattern", "subject", "expected"), [
    ("candles.>", "candles.v.S.1m", True), (">", "candles.v.S.1m", True),
    ("candles.*.*.*", "candles.v.S.1m", True), ("candles.*", "candles.v.S.1m", False),
    ("other.>", "candles.v.S.1m", False), ("candles.v.S.1m", "candles.v.S.1m", True),
    ("candles.>", "candles", False),
])
def test_subject_matching(pattern: str, subject: str, expected: bool) -> None:
    assert subject_matches(pattern, subject) is expected
