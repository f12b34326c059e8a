"""Binance codec on real captured frames (cryptofeed 2021 captures, python-binance recording)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError, DecodeError
from candlekeeper.venues.binance.endpoints import BINANCE_SPOT, BINANCE_USDM
from candlekeeper.venues.binance.history import BinanceHistoryCodec
from candlekeeper.venues.binance.schemas import KlineEvent
from candlekeeper.venues.binance.stream import BinanceStreamCodec, candle_to_kline, stream_key
from candlekeeper.venues.contract import (
    Ack,
    ErrorReply,
    Ignored,
    Malformed,
    RestErrorKind,
    ServerShutdown,
)

USDM = BinanceStreamCodec(BINANCE_USDM)
SPOT = BinanceStreamCodec(BINANCE_SPOT)
USDM_REST = BinanceHistoryCodec(BINANCE_USDM)
SPOT_REST = BinanceHistoryCodec(BINANCE_SPOT)


def lines(samples: Path, name: str) -> list[str]:
    return (samples / name).read_text().splitlines()


def test_usdm_capture_decodes_every_frame_with_exact_values(samples: Path) -> None:
    frames = lines(samples, "binance_usdm_ws_kline_capture_2021-07-22.jsonl")
    assert len(frames) == 67
    candles = [USDM.decode(f) for f in frames]
    assert all(isinstance(c, Candle) for c in candles)
    closed = [c for c in candles if isinstance(c, Candle) and c.closed]
    assert [c.symbol for c in closed] == ["SUSHIUSDT", "CTKUSDT", "AKROUSDT", "KEEPUSDT"]
    sushi = closed[0]
    assert sushi == Candle.of(
        venue="binance-usdm", symbol="SUSHIUSDT", interval="1m",
        open_time=1626992700000, close_time=1626992759999,
        open=Decimal("7.6080"), high=Decimal("7.6180"), low=Decimal("7.6070"),
        close=Decimal("7.6170"), volume=Decimal("3005"), quote_volume=Decimal("22875.8590"),
        trades=113, taker_buy_base_volume=Decimal("1900"),
        taker_buy_quote_volume=Decimal("14464.6960"), first_trade_id=126902874,
        last_trade_id=126902986, closed=True, event_time=1626992760203, source="ws",
    )
    # exactness: the string the exchange sent survives, trailing zeros included
    assert str(sushi.open) == "7.6080" and str(sushi.quote_volume) == "22875.8590"
    akro = closed[2]
    assert str(akro.close) == "0.01733" and akro.trades == 29


def test_every_decimal_field_round_trips_to_the_sent_string(samples: Path) -> None:
    for frame in lines(samples, "binance_usdm_ws_kline_capture_2021-07-22.jsonl"):
        raw = json.loads(frame)["data"]["k"]
        c = USDM.decode(frame)
        assert isinstance(c, Candle)
        sent = [raw[f] for f in "ohlcvqVQ"]
        got = [c.open, c.high, c.low, c.close, c.volume, c.quote_volume,
               c.taker_buy_base_volume, c.taker_buy_quote_volume]
        assert [str(g) for g in got] == sent


def test_spot_capture_keeps_8_decimal_padding(samples: Path) -> None:
    nkn, lrc = (SPOT.decode(f) for f in lines(samples,
                                              "binance_spot_ws_kline_capture_2021-10-12.jsonl"))
    assert isinstance(nkn, Candle) and isinstance(lrc, Candle)
    assert nkn.venue == "binance-spot" and nkn.symbol == "NKNUSDT"
    assert str(nkn.close) == "0.35280000" and str(nkn.volume) == "25877.00000000"
    assert str(lrc.open) == "0.00000638" and lrc.trades == 1 and lrc.closed is False


def test_raw_stream_frame_without_wrapper(samples: Path) -> None:
    frame = lines(samples, "binance_usdm_ws_kline_capture_2021-07-22.jsonl")[0]
    raw = json.dumps(json.loads(frame)["data"])
    c = USDM.decode(raw)
    assert isinstance(c, Candle) and c.symbol == "CTKUSDT" and str(c.close) == "1.01100"


def test_control_replies_and_errors() -> None:
    assert USDM.decode('{"result":null,"id":1}') == Ack(1, None)
    assert USDM.decode('{"result":["btcusdt@kline_1m"],"id":3}') == Ack(3, ["btcusdt@kline_1m"])
    assert USDM.decode('{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}') == \
        ErrorReply(2, 2, "Invalid request: invalid stream")
    assert USDM.decode('{"code": 0, "msg": "Unknown property","id":7}') == \
        ErrorReply(7, 0, "Unknown property")
    assert USDM.decode('{"e":"serverShutdown","E":1770123456789}') == ServerShutdown(1770123456789)
    assert USDM.decode('{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":5}}') == \
        ServerShutdown(5)
    assert USDM.decode('{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade"}}') == \
        Ignored("aggTrade")


@pytest.mark.parametrize(
    "frame",
    [
        b'{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":1',
        b"not json at all",
        b"[1,2,3]",
        b'{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":"x"}}}',
        b'{"stream":"btcusdt@kline_1m","data":5}',
        b"",
    ],
)
def test_malformed_frames_never_raise(frame: bytes) -> None:
    assert isinstance(USDM.decode(frame), Malformed)


def test_json_number_price_is_rejected_not_rounded() -> None:
    """Binance sends prices as strings; a bare JSON number breaks the protocol and would invite
    float rounding downstream, so the frame is counted as malformed instead."""
    frame = ('{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":0,'
             '"T":59999,"s":"BTCUSDT","i":"1m","f":1,"L":2,"o":1.1,"c":"1","h":"1","l":"1",'
             '"v":"1","n":1,"x":false,"q":"1","V":"1","Q":"1","B":"0"}}}')
    bad = USDM.decode(frame)
    assert isinstance(bad, Malformed)
    assert "$.k.o" in bad.reason


def test_stream_names_and_urls() -> None:
    key = StreamKey("binance-usdm", "BTCUSDT", "1m")
    assert USDM.stream_name(key) == "btcusdt@kline_1m"
    assert stream_key("binance-usdm", "btcusdt@kline_1m") == key
    assert stream_key("binance-usdm", "ethusdt@kline_1M") == StreamKey("binance-usdm",
                                                                         "ETHUSDT", "1M")
    assert stream_key("binance-usdm", "btcusdt@aggTrade") is None
    with pytest.raises(ConfigError):
        USDM.stream_name(StreamKey("binance-usdm", "BTCUSDT", "1s"))  # spot-only interval
    assert SPOT.stream_name(StreamKey("binance-spot", "BTCUSDT", "1s")) == "btcusdt@kline_1s"
    assert USDM.connect_url("wss://fstream.binance.com/market", []) == \
        "wss://fstream.binance.com/market/stream"
    assert USDM.connect_url("ws://127.0.0.1:9/market/", ["a@kline_1m", "b@kline_1m"]) == \
        "ws://127.0.0.1:9/market/stream?streams=a@kline_1m/b@kline_1m"
    assert BINANCE_USDM.ws_base.endswith("/market")  # routed path: legacy URL has no klines


def test_control_frames() -> None:
    assert json.loads(USDM.subscribe(["btcusdt@kline_1m"], 1)) == \
        {"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 1}
    assert json.loads(USDM.unsubscribe(["a"], 312)) == \
        {"method": "UNSUBSCRIBE", "params": ["a"], "id": 312}
    assert json.loads(USDM.list_subscriptions(3)) == {"method": "LIST_SUBSCRIPTIONS", "id": 3}


def test_rest_request_weights_and_limits() -> None:
    assert USDM_REST.klines_request("btc-usdt", "1m", limit=99).weight == 1
    assert USDM_REST.klines_request("BTCUSDT", "1m", limit=100).weight == 2
    assert USDM_REST.klines_request("BTCUSDT", "1m", limit=500).weight == 5
    assert USDM_REST.klines_request("BTCUSDT", "1m", limit=1000).weight == 5
    assert USDM_REST.klines_request("BTCUSDT", "1m", limit=1001).weight == 10
    req = USDM_REST.klines_request("BTCUSDT", "1m", start_time=5, end_time=9)
    assert req.path == "/fapi/v1/klines" and req.weight == 10
    assert dict(req.params) == {"symbol": "BTCUSDT", "interval": "1m", "limit": 1500,
                                "startTime": 5, "endTime": 9}
    spot = SPOT_REST.klines_request("BTCUSDT", "1d")
    assert spot.path == "/api/v3/klines" and spot.weight == 2 and spot.params["limit"] == 1000
    with pytest.raises(ConfigError):
        SPOT_REST.klines_request("BTCUSDT", "1d", limit=1001)


def test_rest_klines_recording(samples: Path) -> None:
    rec = json.loads((samples / "binance_spot_rest_klines_BTCUSDT_1d_TESTNET_recording.json")
                     .read_text())
    rows = rec["client"][0]["return"]
    candles = SPOT_REST.decode_klines(json.dumps(rows).encode(), "BTCUSDT", "1d")
    assert len(candles) == 13
    first = candles[0]
    assert (first.open_time, first.close_time) == (1780444800000, 1780531199999)
    assert str(first.open) == "67101.71000000" and str(first.low) == "802.04000000"
    assert str(first.quote_volume) == "9647588.51567520" and first.trades == 52455
    assert str(first.taker_buy_quote_volume) == "4039250.27751400"
    assert first.source == "rest" and first.first_trade_id is None
    times = [c.open_time for c in candles]
    assert times == sorted(times) and len(set(times)) == 13
    assert all(c.closed for c in candles)  # the fetcher drops the forming one by the clock


def test_rest_error_body_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="klines body"):
        USDM_REST.decode_klines(b'{"code":-1121,"msg":"Invalid symbol."}', "X", "1m")


def test_rest_errors_are_classified_from_binance_bodies_and_headers() -> None:
    now = 1_700_000_000.0
    ok = USDM_REST.classify(200, {}, b"[]", now)
    assert ok is None
    unknown = USDM_REST.classify(400, {}, b'{"code":-1121,"msg":"Invalid symbol."}', now)
    assert unknown is not None and unknown.kind is RestErrorKind.UNKNOWN_SYMBOL
    assert unknown.code == -1121
    limited = USDM_REST.classify(429, {"Retry-After": "7"}, b'{"code":-1003,"msg":"x"}', now)
    assert limited is not None and limited.kind is RestErrorKind.RATE_LIMITED
    assert limited.retry_after_s == 7.0
    until = int((now + 90) * 1000)
    banned = USDM_REST.classify(
        418, {}, b'{"code":-1003,"msg":"Way too much request weight used; IP banned until '
        + str(until).encode() + b'. Please use WebSocket Streams"}', now)
    assert banned is not None and banned.kind is RestErrorKind.BANNED
    assert banned.retry_after_s is not None and abs(banned.retry_after_s - 90) < 0.01
    waf = USDM_REST.classify(403, {}, b"<html>blocked</html>", now)
    assert waf is not None and waf.kind is RestErrorKind.BAD_REQUEST
    busy = USDM_REST.classify(503, {}, b'{"code":-1008,"msg":"overloaded"}', now)
    assert busy is not None and busy.kind is RestErrorKind.SERVER_ERROR
    assert USDM_REST.rate_usage({"X-MBX-USED-WEIGHT-1M": "42"}).used == 42
    assert USDM_REST.rate_usage({"X-MBX-USED-WEIGHT-1M": "lots"}).used is None


def test_exchange_info_symbols() -> None:
    body = msgspec.json.encode({"symbols": [
        {"symbol": "BTCUSDT", "status": "TRADING", "contractType": "PERPETUAL"},
        {"symbol": "BTCUSDT_240329", "status": "TRADING", "contractType": "CURRENT_QUARTER"},
        {"symbol": "OLDUSDT", "status": "SETTLING", "contractType": "PERPETUAL"},
        {"symbol": "ETHUSDT", "status": "TRADING", "contractType": "PERPETUAL", "extra": 1},
    ], "rateLimits": []})
    assert USDM_REST.decode_symbols(body) == ["BTCUSDT", "ETHUSDT"]


def test_simulator_encoding_round_trips(samples: Path) -> None:
    frame = lines(samples, "binance_usdm_ws_kline_capture_2021-07-22.jsonl")[-1]
    c = USDM.decode(frame)
    assert isinstance(c, Candle)
    event = KlineEvent(e="kline", E=c.event_time or 0, s=c.symbol, k=candle_to_kline(c))
    again = USDM.decode(msgspec.json.encode(event))
    assert again == c
