"""Bybit codec details beyond the contract suite: symbols and intervals both ways, the
subscribe frames and their limits, the heartbeat, closed candles and arrays of candles,
control answers, and the REST side (requests, newest-first rows, instruments with precision,
server time, error classification)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import MINUTE
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError, DecodeError
from candlekeeper.venues.bybit.endpoints import BYBIT_LINEAR, BYBIT_SPOT, INTERVAL_NAMES
from candlekeeper.venues.bybit.history import BybitHistoryCodec
from candlekeeper.venues.bybit.stream import BybitStreamCodec, parse_topic
from candlekeeper.venues.contract import (
    Ack,
    ErrorReply,
    Malformed,
    Pong,
    RestErrorKind,
)

LIN = BybitStreamCodec(BYBIT_LINEAR)
SPOT = BybitStreamCodec(BYBIT_SPOT)
T = 1_672_324_800_000  # 2022-12-29 14:40 UTC, on every grid up to 5m


def kline(start: int, *, confirm: bool, interval: str = "1", close: str = "16677",
          end: int | None = None) -> dict[str, object]:
    return {"start": start, "end": start + MINUTE - 1 if end is None else end,
            "interval": interval, "open": "16649.5", "close": close, "high": "16677",
            "low": "16608", "volume": "2.081", "turnover": "34666.4005", "confirm": confirm,
            "timestamp": start + 5_000}


def push(*data: dict[str, object], topic: str = "kline.1.BTCUSDT", ts: int = T + 61_000) -> str:
    return json.dumps({"topic": topic, "data": list(data), "ts": ts, "type": "snapshot"})


@pytest.mark.parametrize("form", ["BTCUSDT", "btcusdt", "BTC-USDT", "BTC/USDT:USDT",
                                  "BTC/USDT", "BTC_USDT"])
def test_every_user_form_maps_to_the_canonical_symbol(form: str) -> None:
    assert LIN.native_symbol(form) == "BTCUSDT"
    assert BybitHistoryCodec(BYBIT_SPOT).native_symbol(form) == "BTCUSDT"


def test_intervals_map_both_ways() -> None:
    assert list(INTERVAL_NAMES.values()) == ["1", "3", "5", "15", "30", "60", "120", "240",
                                             "360", "720", "D", "W", "M"]
    for ours, theirs in INTERVAL_NAMES.items():
        name = LIN.stream_name(StreamKey("bybit-linear", "BTCUSDT", ours))
        assert name == f"kline.{theirs}.BTCUSDT"
        assert parse_topic(name) == ("BTCUSDT", ours)
    for missing in ("1s", "8h", "3d"):
        with pytest.raises(ConfigError):
            LIN.stream_name(StreamKey("bybit-linear", "BTCUSDT", missing))
    assert parse_topic("kline.2.BTCUSDT") is None and parse_topic("kline.1.btcusdt") is None
    assert parse_topic("tickers.BTCUSDT") is None


def test_subscribe_frames_and_the_spot_args_limit() -> None:
    frame = json.loads(LIN.subscribe(["kline.1.BTCUSDT", "kline.5.ETHUSDT"], 7))
    assert frame == {"op": "subscribe", "req_id": "7",
                     "args": ["kline.1.BTCUSDT", "kline.5.ETHUSDT"]}
    assert json.loads(SPOT.unsubscribe(["kline.1.BTCUSDT"], 8))["op"] == "unsubscribe"
    assert LIN.connect_url("wss://stream.bybit.com/v5/public/linear", ["x"]) == \
        "wss://stream.bybit.com/v5/public/linear"
    assert BYBIT_SPOT.max_streams_per_subscribe == 10
    with pytest.raises(ValueError, match="at most 10 args"):
        SPOT.subscribe([f"kline.1.S{i}USDT" for i in range(11)], 1)


def test_the_heartbeat_is_a_json_ping_every_20_s_and_its_pongs_decode() -> None:
    beat = LIN.heartbeat
    assert beat is not None and json.loads(beat.payload) == {"op": "ping"}
    assert beat.every_s == 20.0 and not beat.idle_only and beat.timeout_s < beat.every_s
    for pong in ('{"success":true,"ret_msg":"pong","conn_id":"c","req_id":"","op":"ping"}',
                 '{"success":true,"ret_msg":"pong","conn_id":"c","op":"ping"}',
                 '{"op":"pong","args":["1672916271846"]}'):
        assert LIN.decode(pong) == Pong()


def test_confirm_true_is_the_close_and_every_candle_of_an_array_decodes() -> None:
    frame = push(kline(T + MINUTE, confirm=False, close="16680"), kline(T, confirm=True))
    out = LIN.decode(frame)
    assert isinstance(out, list) and len(out) == 2
    first, second = out
    assert isinstance(first, Candle) and isinstance(second, Candle)
    assert (first.open_time, first.closed) == (T, True)  # oldest first, whatever the order
    assert (second.open_time, second.closed, second.close_str) == (T + MINUTE, False, "16680")
    assert first.close_time == T + MINUTE - 1 and first.event_time == T + 61_000
    assert first.quote_volume_str == "34666.4005" and first.source == "ws"  # turnover
    assert first.trades is None
    assert first.key == StreamKey("bybit-linear", "BTCUSDT", "1m")


def test_a_bad_candle_is_malformed_with_its_key_and_the_others_survive() -> None:
    key = StreamKey("bybit-linear", "BTCUSDT", "1m")
    bad_price = LIN.decode(push(kline(T, confirm=True, close="1e5")))
    assert isinstance(bad_price, Malformed) and bad_price.key == key
    wrong_end = LIN.decode(push(kline(T, confirm=True, end=T + 5)))
    assert isinstance(wrong_end, Malformed) and wrong_end.key == key
    wrong_interval = LIN.decode(push(kline(T, confirm=True, interval="5")))
    assert isinstance(wrong_interval, Malformed) and wrong_interval.key == key
    typed = kline(T, confirm=True)
    typed["open"] = 16649.5  # a number where a string belongs: only this candle is lost
    out = LIN.decode(push(typed, kline(T + MINUTE, confirm=False)))
    assert isinstance(out, list) and isinstance(out[0], Malformed) and out[0].key == key
    assert isinstance(out[1], Candle) and out[1].open_time == T + MINUTE
    empty = LIN.decode(push())
    assert isinstance(empty, Malformed) and empty.key == key
    for junk in ("not json", "[]", '{"topic":"kline.1.BTCUSDT","data":null}', "{}"):
        assert isinstance(LIN.decode(junk), Malformed), junk


def test_acks_and_refusals_carry_our_request_id() -> None:
    assert LIN.decode('{"success":true,"ret_msg":"","conn_id":"c","req_id":"7",'
                      '"op":"subscribe"}') == Ack(7)
    assert SPOT.decode('{"success":true,"ret_msg":"subscribe","conn_id":"c","req_id":"8",'
                       '"op":"subscribe"}') == Ack(8)
    assert LIN.decode('{"success":false,"ret_msg":"Invalid topic: kline.1.X","conn_id":"c",'
                      '"req_id":"9","op":"subscribe"}') == ErrorReply(
        9, 0, "Invalid topic: kline.1.X")


# -- REST ------------------------------------------------------------------------------------
HIST = BybitHistoryCodec(BYBIT_LINEAR)


def test_klines_requests_name_the_category_and_bound_the_window() -> None:
    req = HIST.klines_request("BTC/USDT:USDT", "1h", start_time=T, end_time=T + 10**10,
                              limit=3)
    assert req.path == "/v5/market/kline" and req.weight == 1
    # the window never holds more than ``limit`` candles: right under either selection rule.
    # T is 14:40, so the first whole hour opens at 15:00 and the third at 17:00
    assert dict(req.params) == {"category": "linear", "symbol": "BTCUSDT", "interval": "60",
                                "limit": 3, "start": T, "end": T + 20 * MINUTE + 7_200_000}
    spot = BybitHistoryCodec(BYBIT_SPOT).klines_request("BTCUSDT", "1M", start_time=T + 1,
                                                        limit=2)
    assert spot.params["category"] == "spot" and spot.params["interval"] == "M"
    assert spot.params["end"] == 1_675_209_600_000  # 2023-02-01: the 2nd month from start
    latest = HIST.klines_request("BTCUSDT", "1d")
    assert "start" not in latest.params and latest.params["limit"] == 1000
    with pytest.raises(ConfigError):
        HIST.klines_request("BTCUSDT", "1m", limit=1001)


def test_rows_come_back_ascending_and_the_forming_row_is_not_dropped_here() -> None:
    body = json.dumps({"retCode": 0, "retMsg": "OK", "result": {
        "category": "linear", "symbol": "BTCUSDT", "list": [
            [str(T + MINUTE), "2", "3", "1", "2.5", "10", "25"],  # forming, newest first
            [str(T), "1", "2", "0.5", "2", "20", "40"],
            [str(T), "1", "2", "0.5", "2", "20", "40"]]}, "retExtInfo": {}, "time": T})
    rows = HIST.decode_klines(body.encode(), "BTCUSDT", "1m")
    assert [r.open_time for r in rows] == [T, T + MINUTE]
    assert all(r.closed and r.source == "rest" for r in rows)  # the fetcher drops by clock
    with pytest.raises(DecodeError):
        HIST.decode_klines(b'{"retCode":10001,"retMsg":"Not supported symbols"}', "X", "1m")
    with pytest.raises(DecodeError):
        HIST.decode_klines(b'{"retCode":0,"retMsg":"OK","result":{"list":[["x"]]}}', "X",
                           "1m")


def _doc_objects(text: str) -> list[bytes]:
    text = re.sub(r"(?m)^\s*//[^\n]*", "", text)
    decoder = json.JSONDecoder()
    out, i = [], text.find("{")
    while i >= 0:
        obj, end = decoder.raw_decode(text, i)
        out.append(json.dumps(obj).encode())
        i = text.find("{", end)
    return out


def test_instruments_give_the_symbols_and_their_precision(samples: Path) -> None:
    text = (samples / "bybit_rest_instruments_info_docs.txt").read_text()
    linear_doc, prelaunch_doc, spot_doc = _doc_objects(text)
    assert HIST.decode_symbols(linear_doc) == ["BTCUSDT"]
    assert HIST.precision["BTCUSDT"] == ("0.10", "0.001")
    assert HIST.decode_symbols(prelaunch_doc) == []  # PreLaunch is not trading
    spot = BybitHistoryCodec(BYBIT_SPOT)
    assert spot.decode_symbols(spot_doc) == ["BTCUSDT"]
    assert spot.precision["BTCUSDT"] == ("0.1", "0.000001")
    assert HIST.symbols_request().params == {"category": "linear", "limit": 1000}
    assert spot.symbols_request().params == {"category": "spot"}


def test_the_server_time_and_the_doc_answer(samples: Path) -> None:
    text = (samples / "bybit_rest_kline_docs_and_fixtures.txt").read_text()
    section = text[text.index("## 3)"):text.index("## 4)")]
    body = next(b for b in _doc_objects(section) if b"timeNano" in b)
    assert HIST.decode_server_time(body) == 1688639403423
    assert HIST.server_time_request().path == "/v5/market/time"


@pytest.mark.parametrize(("status", "headers", "body", "kind", "retry"), [
    (403, {}, b"<html>403 Forbidden</html>", RestErrorKind.BANNED, 600.0),
    (403, {"Retry-After": "30"}, b"", RestErrorKind.BANNED, 30.0),
    (429, {"Retry-After": "2"}, b'{"retCode":10006,"retMsg":"Too many visits!"}',
     RestErrorKind.RATE_LIMITED, 2.0),
    (200, {}, b'{"retCode":10006,"retMsg":"Too many visits!"}', RestErrorKind.RATE_LIMITED,
     None),
    (200, {}, b'{"retCode":10001,"retMsg":"Not supported symbols","result":{}}',
     RestErrorKind.UNKNOWN_SYMBOL, None),
    (200, {}, b'{"retCode":10001,"retMsg":"params error: start"}', RestErrorKind.BAD_REQUEST,
     None),
    (200, {}, b'{"retCode":10016,"retMsg":"System error. Please try again later."}',
     RestErrorKind.SERVER_ERROR, None),
    (502, {}, b"<html>502</html>", RestErrorKind.SERVER_ERROR, None),
])
def test_errors_are_classified_from_status_and_retcode(
        status: int, headers: dict[str, str], body: bytes, kind: RestErrorKind,
        retry: float | None) -> None:
    failure = HIST.classify(status, headers, body, 0.0)
    assert failure is not None and failure.kind is kind
    assert failure.retry_after_s == retry


def test_success_is_retcode_zero_as_a_number_or_a_string() -> None:
    assert HIST.classify(200, {}, b'{"retCode":0,"retMsg":"OK","result":{}}', 0.0) is None
    assert HIST.classify(200, {}, b'{"retCode":"0","retMsg":""}', 0.0) is None


def test_turnover_is_the_quote_volume_and_a_frame_without_it_still_decodes() -> None:
    without = kline(T, confirm=True)
    del without["turnover"]
    out = LIN.decode(push(without))
    assert isinstance(out, Candle) and out.closed and out.quote_volume_str is None
