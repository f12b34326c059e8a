"""The OKX codecs in detail: symbols, bars, push rows, control frames, REST requests and
answers, error classification (protocols-more-venues.md §E)."""

from __future__ import annotations

import json

import pytest

from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError, DecodeError, RestErrorKind
from candlekeeper.venues.contract import Ack, ErrorReply, Malformed, Pong, ServerShutdown
from candlekeeper.venues.okx import OKX_SPOT, OKX_SWAP
from candlekeeper.venues.okx.endpoints import CANDLES_PATH, HISTORY_CANDLES_PATH
from candlekeeper.venues.okx.history import OkxHistoryCodec
from candlekeeper.venues.okx.stream import OkxStreamCodec

SWAP, SPOT = OkxStreamCodec(OKX_SWAP), OkxStreamCodec(OKX_SPOT)
M = 60_000


@pytest.mark.parametrize("text", ["BTCUSDT", "btcusdt", "BTC-USDT", "BTC-USDT-SWAP",
                                  "BTC/USDT:USDT", "BTC/USDT", "BTC_USDT"])
def test_every_user_form_maps_to_the_instrument_id(text: str) -> None:
    assert SWAP.native_symbol(text) == "BTC-USDT-SWAP"
    assert SPOT.native_symbol(text) == "BTC-USDT"


def test_bars_of_six_hours_and_above_are_the_utc_ones() -> None:
    names = {iv: SWAP.stream_name(StreamKey("okx-swap", "ETHUSDT", iv))
             for iv in OKX_SWAP.intervals}
    assert names["1m"] == "candle1m:ETH-USDT-SWAP"
    assert names["1h"] == "candle1H:ETH-USDT-SWAP" and names["4h"] == "candle4H:ETH-USDT-SWAP"
    for iv, bar in {"6h": "6Hutc", "12h": "12Hutc", "1d": "1Dutc", "1w": "1Wutc",
                    "1M": "1Mutc"}.items():
        assert names[iv] == f"candle{bar}:ETH-USDT-SWAP"
    with pytest.raises(ConfigError):
        SWAP.stream_name(StreamKey("okx-swap", "BTCUSDT", "8h"))


def test_subscribe_frame_is_the_documented_shape() -> None:
    frame = json.loads(SWAP.subscribe(["candle1Dutc:BTC-USDT-SWAP"], 7))
    assert frame == {"op": "subscribe", "id": "7",
                     "args": [{"channel": "candle1Dutc", "instId": "BTC-USDT-SWAP"}]}
    assert json.loads(SPOT.unsubscribe(["candle1m:BTC-USDT"], 8))["op"] == "unsubscribe"


def _push(inst: str, *rows: list[str], channel: str = "candle1m") -> str:
    return json.dumps({"arg": {"channel": channel, "instId": inst}, "data": list(rows)})


ROW_NEW = ["1700000040000", "2", "3", "1", "2.5", "700", "7", "17.5", "0"]
ROW_OLD = ["1699999980000", "1", "2", "0.5", "2", "500", "5", "10", "1"]


def test_a_frame_with_several_rows_yields_every_candle_oldest_first() -> None:
    out = SWAP.decode(_push("BTC-USDT-SWAP", ROW_NEW, ROW_OLD))
    assert isinstance(out, list) and len(out) == 2
    old, new = out
    assert isinstance(old, Candle) and isinstance(new, Candle)
    assert (old.open_time, old.closed, old.volume_str) == (1699999980000, True, "5")  # volCcy
    assert (new.open_time, new.closed, new.volume_str) == (1700000040000, False, "7")
    spot = SPOT.decode(_push("BTC-USDT", ROW_OLD))
    assert isinstance(spot, Candle) and spot.volume_str == "500"  # vol is base on spot
    assert spot.quote_volume_str == "10" and spot.trades is None  # volCcyQuote
    assert old.quote_volume_str == "10" and new.quote_volume_str == "17.5"


def test_bad_rows_are_malformed_with_their_stream_and_the_good_ones_still_count() -> None:
    bad = ["1699999980000", "1", "2", "0.5", "2", "500", "5", "10", "2"]  # confirm "2"
    out = SWAP.decode(_push("BTC-USDT-SWAP", bad, ROW_NEW))
    assert isinstance(out, list)
    assert isinstance(out[0], Malformed) and out[0].key == StreamKey("okx-swap", "BTCUSDT",
                                                                       "1m")
    assert isinstance(out[1], Candle)
    off_grid = ["1700000000001", *ROW_OLD[1:]]
    assert isinstance(SWAP.decode(_push("BTC-USDT-SWAP", off_grid)), Malformed)
    # a swap codec does not take a spot instrument, nor a UTC+8 daily bar
    assert isinstance(SWAP.decode(_push("BTC-USDT", ROW_OLD)), Malformed)
    assert isinstance(SWAP.decode(_push("BTC-USDT-SWAP", ROW_OLD, channel="candle1D")),
                      Malformed)
    assert isinstance(SWAP.decode(_push("BTC-USDT-SWAP")), Malformed)  # no rows


def test_control_frames() -> None:
    assert SWAP.decode("pong") == Pong()
    assert SWAP.heartbeat is not None and SWAP.heartbeat.payload == "ping"
    assert SWAP.heartbeat.idle_only and SWAP.heartbeat.every_s < 30
    ack = SWAP.decode('{"id":"7","event":"subscribe","arg":{"channel":"candle1m",'
                      '"instId":"BTC-USDT-SWAP"},"connId":"a4d3ae55"}')
    assert isinstance(ack, Ack) and ack.request_id == 7
    err = SWAP.decode('{"id":"8","event":"error","code":"60018","msg":"Wrong URL",'
                      '"connId":"x"}')
    assert isinstance(err, ErrorReply) and (err.request_id, err.code) == (8, 60018)
    notice = SWAP.decode('{"event":"notice","code":"64008","msg":"soon","connId":"x"}')
    assert notice == ServerShutdown(0)
    assert isinstance(SWAP.decode(b'{"event":"error","code":"x1"}'), ErrorReply)


# -- REST ---------------------------------------------------------------------------------------


def test_klines_request_cursors_are_exclusive_and_the_path_follows_the_learnt_time() -> None:
    codec = OkxHistoryCodec(OKX_SWAP)
    t = 1_700_000_000_000
    req = codec.klines_request("BTCUSDT", "1d", start_time=t, end_time=t + 9 * 86_400_000,
                               limit=10)
    assert dict(req.params) == {"instId": "BTC-USDT-SWAP", "bar": "1Dutc", "limit": 10,
                                "after": t + 9 * 86_400_000 + 1, "before": t - 1}
    assert req.path == HISTORY_CANDLES_PATH  # no time learnt yet: history serves everything
    assert codec.klines_request("BTCUSDT", "1m").path == CANDLES_PATH  # the latest page
    codec.decode_server_time(b'{"code":"0","msg":"","data":[{"ts":"%d"}]}' % (t + 100 * M))
    assert codec.klines_request("BTCUSDT", "1m", start_time=t + 50 * M).path == CANDLES_PATH
    assert codec.klines_request("BTCUSDT", "1m", start_time=t).path == HISTORY_CANDLES_PATH
    with pytest.raises(ConfigError):
        codec.klines_request("BTCUSDT", "1m", limit=301)


def test_rows_come_back_ascending_and_the_forming_one_is_not_closed() -> None:
    codec = OkxHistoryCodec(OKX_SPOT)
    body = json.dumps({"code": "0", "msg": "", "data": [ROW_NEW, ROW_OLD, ROW_OLD]}).encode()
    rows = codec.decode_klines(body, "BTC-USDT", "1m")
    assert [(r.open_time, r.closed, r.source) for r in rows] == [
        (1699999980000, True, "rest"), (1700000040000, False, "rest")]
    assert codec.latest_ms == 1700000040000
    with pytest.raises(DecodeError):
        codec.decode_klines(b'{"code":"51001","msg":"no","data":[]}', "BTCUSDT", "1m")
    with pytest.raises(DecodeError):
        codec.decode_klines(b'{"code":"0","data":[["1","2"]]}', "BTCUSDT", "1m")


def test_symbols_are_the_live_usdt_swaps_with_their_precision() -> None:
    codec = OkxHistoryCodec(OKX_SWAP)
    items = [
        {"instId": "BTC-USDT-SWAP", "instType": "SWAP", "state": "live", "settleCcy": "USDT",
         "ctType": "linear", "tickSz": "0.1", "lotSz": "1"},
        {"instId": "ETH-USD-SWAP", "instType": "SWAP", "state": "live", "settleCcy": "ETH",
         "ctType": "inverse", "tickSz": "0.01", "lotSz": "1"},
        {"instId": "XRP-USDT-SWAP", "instType": "SWAP", "state": "suspend",
         "settleCcy": "USDT", "ctType": "linear", "tickSz": "0.0001", "lotSz": "1"},
    ]
    body = json.dumps({"code": "0", "msg": "", "data": items}).encode()
    assert codec.decode_symbols(body) == ["BTCUSDT"]
    assert codec.precision["BTCUSDT"].tick_size == "0.1"


@pytest.mark.parametrize(("status", "body", "kind"), [
    (429, b'{"msg":"Too Many Requests","code":"50011"}', RestErrorKind.RATE_LIMITED),
    (200, b'{"msg":"Rate limit reached.","code":"50011","data":[]}', RestErrorKind.RATE_LIMITED),
    (200, b'{"code":"51001","msg":"Instrument ID doesn\'t exist.","data":[]}',
     RestErrorKind.UNKNOWN_SYMBOL),
    (400, b'{"code":"51000","msg":"Parameter bar error","data":[]}', RestErrorKind.BAD_REQUEST),
    (404, b'{"code":404,"data":{},"detailMsg":"","error_code":"404","msg":"Not Found"}',
     RestErrorKind.BAD_REQUEST),
    (503, b'{"code":"50001","msg":"Service temporarily unavailable","data":[]}',
     RestErrorKind.SERVER_ERROR),
    (200, b'{"code":"50013","msg":"System busy","data":[]}', RestErrorKind.SERVER_ERROR),
    (502, b"<html>502 Bad Gateway</html>", RestErrorKind.SERVER_ERROR),
])
def test_error_bodies_are_classified(status: int, body: bytes, kind: RestErrorKind) -> None:
    failure = OkxHistoryCodec(OKX_SWAP).classify(status, {}, body, 0.0)
    assert failure is not None and failure.kind is kind, failure
    assert OkxHistoryCodec(OKX_SWAP).classify(200, {}, b'{"code":"0","data":[]}', 0.0) is None
