"""BingX REST: v3 klines and contracts fixtures, the v2 single-object quirk, request builders,
weights and limits, and the spec's facts."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from candlekeeper.core.candle import Candle
from candlekeeper.errors import ConfigError, DecodeError
from candlekeeper.venues.binance.endpoints import BINANCE_SPOT, BINANCE_USDM
from candlekeeper.venues.bingx import schemas
from candlekeeper.venues.bingx.endpoints import BINGX_SWAP
from candlekeeper.venues.bingx.history import BingxHistoryCodec, candle_to_rest_kline
from candlekeeper.venues.contract import (
    RateUsage,
    RestErrorKind,
    RestRequest,
    RestWindow,
    klines_weight,
)
from candlekeeper.venues.registry import get_spec, history_codec


def fixture_body(samples: Path, name: str) -> bytes:
    """JKorf fixtures: method, path, auth flag, then the JSON body."""
    lines = (samples / name).read_text().splitlines()
    return "\n".join(lines[3:]).encode()


def test_v3_klines_fixture(samples: Path) -> None:
    body = fixture_body(samples, "bingx_swap_rest_klines_v3_jkorf_fixture.txt")
    rows = BingxHistoryCodec(BINGX_SWAP).decode_klines(body, "KNC-USDT", "1h")
    assert rows == [Candle.of(
        venue="bingx-swap", symbol="KNCUSDT", interval="1h",
        open_time=1702717200000, close_time=1702720799999,
        open="0.7034", high="0.7081", low="0.7033", close="0.7065", volume="635494.00",
        closed=True, source="rest",
    )]
    assert rows[0].volume_str == "635494.00"


def test_v2_doc_bodies_array_and_single_object(samples: Path) -> None:
    text = (samples / "bingx_swap_rest_klines_v2_doc_2023-04.md").read_text()
    decoder = json.JSONDecoder()
    array = decoder.raw_decode(text, text.index('{\n  "code"'))[0]
    single = decoder.raw_decode(text, text.index('{\n"code"'))[0]
    codec = BingxHistoryCodec(BINGX_SWAP)
    rows = codec.decode_klines(json.dumps(array).encode(), "BTCUSDT", "5m")
    assert [(c.open_time, c.open_str, c.close_str) for c in rows] == \
        [(1666583700000, "19396.8", "19394.4"), (1666584000000, "19394.4", "19379.0")]
    one = codec.decode_klines(json.dumps(single).encode(), "BTC/USDT:USDT", "5m")
    assert [(c.symbol, c.open_time, c.high_str, c.volume_str) for c in one] == \
        [("BTCUSDT", 1672026300000, "16880.0", "428.44")]


def test_klines_are_sorted_and_unique_by_open_time() -> None:
    def row(t: int, close: str) -> dict[str, object]:
        return {"open": "1", "close": close, "high": "2", "low": "1", "volume": "3", "time": t}
    body = json.dumps({"code": 0, "msg": "", "data": [
        row(180_000, "c"), row(60_000, "a"), row(120_000, "b"), row(60_000, "a2")]}).encode()
    rows = BingxHistoryCodec(BINGX_SWAP).decode_klines(body, "BTCUSDT", "1m")
    assert [(c.open_time, c.close_time, c.close_str) for c in rows] == \
        [(60_000, 119_999, "a2"), (120_000, 179_999, "b"), (180_000, 239_999, "c")]
    assert all(c.closed and c.source == "rest" and c.trades is None for c in rows)


def test_rest_errors_are_classified_from_bingx_bodies_and_headers() -> None:
    codec = BingxHistoryCodec(BINGX_SWAP)
    now = 1_700_000_000.0
    headers = {"X-RateLimit-Requests-Remain": "0", "X-RateLimit-Requests-Expire": "4200"}
    assert codec.classify(200, headers, b'{"code":0,"msg":"","data":[]}', now) is None
    limited = codec.classify(200, headers, b'{"code":100410,"msg":"slow down"}', now)
    assert limited is not None and limited.kind is RestErrorKind.RATE_LIMITED
    assert limited.retry_after_s == 4.2  # no Retry-After: the window's expiry
    assert codec.rate_usage(headers) == RateUsage(remain=0, reset_s=4.2)
    banned = codec.classify(418, {}, b'{"code":100410,"msg":"banned"}', now)
    assert banned is not None and banned.kind is RestErrorKind.BANNED
    assert banned.retry_after_s == 300.0  # "restore after 5 minutes"
    unknown = codec.classify(200, {}, b'{"code":80014,"msg":"symbol: FOO-USDT does not exist"}',
                             now)
    assert unknown is not None and unknown.kind is RestErrorKind.UNKNOWN_SYMBOL
    bad = codec.classify(200, {}, b'{"code":80014,"msg":"interval: 7m is not supported"}', now)
    assert bad is not None and bad.kind is RestErrorKind.BAD_REQUEST
    busy = codec.classify(200, {}, b'{"code":100500,"msg":""}', now)
    assert busy is not None and busy.kind is RestErrorKind.SERVER_ERROR
    gateway = codec.classify(502, {}, b"<html>502 Bad Gateway</html>", now)
    assert gateway is not None and gateway.kind is RestErrorKind.SERVER_ERROR


def test_klines_error_bodies_raise_decode_error() -> None:
    codec = BingxHistoryCodec(BINGX_SWAP)
    with pytest.raises(DecodeError, match="code 100410: rate limit exceeded: slow down"):
        codec.decode_klines(b'{"code":100410,"msg":"slow down"}', "BTCUSDT", "1m")
    with pytest.raises(DecodeError, match="code 80014: invalid parameter"):
        codec.decode_klines(b'{"code":80014,"msg":"","data":null}', "BTCUSDT", "1m")
    with pytest.raises(DecodeError, match="klines body"):
        codec.decode_klines(b'{"code":0,"data":[{"open":1}]}', "BTCUSDT", "1m")
    assert codec.decode_klines(b'{"code":0,"msg":"","data":[]}', "BTCUSDT", "1m") == []


def test_klines_request_params_and_limits() -> None:
    codec = BingxHistoryCodec(BINGX_SWAP)
    req = codec.klines_request("BTCUSDT", "1h", start_time=1702717199998, end_time=1702720800000,
                               limit=1000)
    assert req == RestRequest("GET", "/openApi/swap/v3/quote/klines", {
        "symbol": "BTC-USDT", "interval": "1h", "limit": 1000,
        "startTime": 1702717199998, "endTime": 1702720800000}, 1)
    assert codec.klines_request("ETH/USDT:USDT", "1m").params == \
        {"symbol": "ETH-USDT", "interval": "1m", "limit": 1440}
    for bad in (0, 1441):
        with pytest.raises(ConfigError, match=r"\[1, 1440\]"):
            codec.klines_request("BTCUSDT", "1m", limit=bad)
    with pytest.raises(ConfigError, match="no interval"):
        codec.klines_request("BTCUSDT", "1s")
    # BingX counts requests: every call weighs 1, whatever its limit
    assert {klines_weight(BINGX_SWAP, n) for n in (1, 99, 500, 1000, 1440)} == {1}


def test_contracts_fixture_to_symbols(samples: Path) -> None:
    body = fixture_body(samples, "bingx_swap_rest_contracts_jkorf_fixture.txt")
    codec = BingxHistoryCodec(BINGX_SWAP)
    assert codec.symbols_request() == \
        RestRequest("GET", "/openApi/swap/v2/quote/contracts", {}, 1)
    assert codec.decode_symbols(body) == ["BTCUSDT", "ETHUSDT"]
    contracts = msgspec.json.decode(body, type=schemas.ContractsResponse).data
    assert contracts is not None
    assert [(c.symbol, c.asset, c.currency, c.status) for c in contracts] == \
        [("BTC-USDT", "BTC", "USDT", 1), ("ETH-USDT", "ETH", "USDT", 1)]


def test_contracts_status_and_learnt_native_forms() -> None:
    body = json.dumps({"code": 0, "msg": "", "data": [
        {"symbol": "BTC-USDT", "status": 1},
        {"symbol": "LUNA-USDT", "status": 0},          # not trading
        {"symbol": "NCSKAAPL2USD-USDT", "status": 1},  # odd base, ends in USD
        {"symbol": "bad symbol!", "status": 1},        # skipped, not fatal
    ]}).encode()
    codec = BingxHistoryCodec(BINGX_SWAP)
    assert codec.decode_symbols(body) == ["BTCUSDT", "NCSKAAPL2USDUSDT"]
    assert codec.native_symbol("NCSKAAPL2USDUSDT") == "NCSKAAPL2USD-USDT"
    with pytest.raises(DecodeError, match="code 100500: internal system error"):
        codec.decode_symbols(b'{"code":100500,"msg":""}')
    with pytest.raises(DecodeError, match="contracts body"):
        codec.decode_symbols(b"<html>")


def test_rest_row_round_trip_through_the_shared_schema() -> None:
    c = Candle.of("bingx-swap", "BTCUSDT", "1m", 60_000, 119_999, "1.10", "1.20", "1.00",
                  "1.15", "7.0", closed=True, source="rest")
    body = msgspec.json.encode(schemas.KlinesResponse(0, "", [candle_to_rest_kline(c)]))
    assert BingxHistoryCodec(BINGX_SWAP).decode_klines(body, "BTC-USDT", "1m") == [c]


def test_spec_facts_and_registry() -> None:
    assert get_spec("bingx-swap") is BINGX_SWAP
    assert isinstance(history_codec("bingx-swap"), BingxHistoryCodec)
    s = BINGX_SWAP
    assert (s.ws_base, s.ws_testnet_base) == ("wss://open-api-swap.bingx.com/swap-market",
                                              "wss://vst-open-api-ws.bingx.com/swap-market")
    assert (s.rest_base, s.rest_testnet_base) == ("https://open-api.bingx.com",
                                                  "https://open-api-vst.bingx.com")
    assert s.intervals == ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
                           "1d", "3d", "1w", "1M")
    assert (s.max_streams_per_connection, s.max_streams_per_subscribe) == (200, 1)
    assert (s.rest_max_limit, s.rest_limits) == \
        (1440, (RestWindow(60.0, 1000), RestWindow(10.0, 500)))
    assert (s.update_cadence_ms, s.server_ping_interval_s, s.closed_flag) == (1000, 5.0, False)
    for b in (BINANCE_USDM, BINANCE_SPOT):
        assert b.closed_flag and len(b.rest_limits) == 1
