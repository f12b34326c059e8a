"""The pure per-connection Binance protocol: URL paths, control messages and every error frame
of protocols.md §A.3."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from candlekeeper.sim.venues.binance.session import (
    WsPath,
    WsSession,
    is_kline_stream,
    parse_ws_path,
)
from candlekeeper.venues.registry import get_spec

VALID = {"btcusdt@kline_1m", "ethusdt@kline_1m", "btcusdt@kline_5m"}


def session(venue: str = "binance-usdm", max_streams: int = 1024) -> WsSession:
    return WsSession(VALID.__contains__, combined=True, max_streams=max_streams,
                     string_ids=venue == "binance-spot")


def route(venue: str) -> str:
    """The kline route of the venue: the path of its real ``ws_base``."""
    return urlsplit(get_spec(venue).ws_base).path


def reply(s: WsSession, msg: object) -> dict[str, object]:
    text = msg if isinstance(msg, str) else json.dumps(msg)
    out: dict[str, object] = json.loads(s.handle(text).reply)
    return out


def err(code: int, msg: str, rid: object) -> dict[str, object]:
    return {"error": {"code": code, "msg": msg}, "id": rid}


@pytest.mark.parametrize(("venue", "path", "query", "expected"), [
    ("binance-usdm", "/market/ws/btcusdt@kline_1m/ethusdt@kline_1m", {},
     WsPath(False, True, ("btcusdt@kline_1m", "ethusdt@kline_1m"))),
    ("binance-usdm", "/market/stream", {"streams": "btcusdt@kline_1m/ethusdt@kline_1m"},
     WsPath(True, True, ("btcusdt@kline_1m", "ethusdt@kline_1m"))),
    ("binance-usdm", "/market/stream", {}, WsPath(True, True, ())),
    ("binance-usdm", "/market/ws", {}, WsPath(False, True, ())),
    ("binance-usdm", "/ws/btcusdt@kline_1m", {}, WsPath(False, False, ("btcusdt@kline_1m",))),
    ("binance-usdm", "/stream", {"streams": "btcusdt@kline_1m"},
     WsPath(True, False, ("btcusdt@kline_1m",))),
    ("binance-usdm", "/public/ws", {}, WsPath(False, False, ())),
    ("binance-spot", "/ws/btcusdt@kline_1m", {}, WsPath(False, True, ("btcusdt@kline_1m",))),
    ("binance-spot", "/stream", {"streams": "btcusdt@kline_1m"},
     WsPath(True, True, ("btcusdt@kline_1m",))),
    ("binance-usdm", "/market/other", {}, None),
    ("binance-spot", "/", {}, None),
])
def test_paths(venue: str, path: str, query: dict[str, str], expected: WsPath | None) -> None:
    assert parse_ws_path(route(venue), path, query) == expected


def test_legacy_switch_turns_pushing_on() -> None:
    info = parse_ws_path(route("binance-usdm"), "/ws", {}, legacy_routes_push_klines=True)
    assert info == WsPath(False, True, ())


def test_subscribe_list_unsubscribe() -> None:
    s = session()
    ctl = s.handle('{"method":"SUBSCRIBE","params":["btcusdt@kline_1m","ethusdt@kline_1m"],'
                   '"id":1}')
    assert json.loads(ctl.reply) == {"result": None, "id": 1}
    assert ctl.added == ("btcusdt@kline_1m", "ethusdt@kline_1m") and not ctl.is_error
    assert reply(s, {"method": "LIST_SUBSCRIPTIONS", "id": 3}) == \
        {"result": ["btcusdt@kline_1m", "ethusdt@kline_1m"], "id": 3}
    ctl = s.handle('{"method":"UNSUBSCRIBE","params":["btcusdt@kline_1m"],"id":312}')
    assert json.loads(ctl.reply) == {"result": None, "id": 312}
    assert ctl.removed == ("btcusdt@kline_1m",)
    assert s.handle('{"method":"SUBSCRIBE","params":["ethusdt@kline_1m"],"id":4}').added == ()


def test_properties() -> None:
    s = session()
    assert reply(s, {"method": "GET_PROPERTY", "params": ["combined"], "id": 2}) == \
        {"result": True, "id": 2}
    assert reply(s, {"method": "SET_PROPERTY", "params": ["combined", False], "id": 5}) == \
        {"result": None, "id": 5}
    assert s.combined is False
    assert reply(s, {"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 6}) == \
        err(1, "Invalid value type: expected Boolean", 6)
    assert reply(s, {"method": "SET_PROPERTY", "params": ["other", True], "id": 7}) == \
        err(0, "Unknown property", 7)
    assert reply(s, {"method": "GET_PROPERTY", "params": [5], "id": 8}) == \
        err(2, "Invalid request: property name must be a string", 8)
    assert reply(s, {"method": "GET_PROPERTY", "params": ["combined", 1], "id": 9}) == \
        err(2, "Invalid request: too many parameters", 9)


def test_every_error_frame() -> None:
    s = session()
    invalid = "Invalid request: invalid stream"
    assert reply(s, "{not json") == err(3, "Invalid JSON: expected value at line 1 column 2",
                                        None)
    assert reply(s, {"method": "SUBSCRIBE", "params": ["not asdfads"], "id": 2}) == \
        err(2, invalid, 2)
    assert reply(s, {"method": "SUBSCRIBE", "params": ["nopeusdt@kline_1m"], "id": 3}) == \
        err(2, invalid, 3)  # unknown symbol
    assert reply(s, {"method": "SUBSCRIBE", "params": ["btcusdt@kline_7m"], "id": 4}) == \
        err(2, invalid, 4)  # unknown interval
    assert reply(s, {"method": "SUBSCRIBE", "params": ["BTCUSDT@kline_1m"], "id": 5}) == \
        err(2, invalid, 5)  # stream names are lowercase
    assert reply(s, {"method": "SUBSCRIBE", "params": [1], "id": 6}) == err(2, invalid, 6)
    assert s.subscriptions == {}  # a refused request changes nothing
    assert reply(s, {"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": -1}) == \
        err(2, "Invalid request: request ID must be an unsigned integer", None)
    assert reply(s, {"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": "abc"}) == \
        err(2, "Invalid request: request ID must be an unsigned integer", None)
    text = '{"method":"SUBSCRIBEX","params":[],"id":1}'
    assert reply(s, text) == err(2, "Invalid request: unknown variant `SUBSCRIBEX`, expected one "
                                 "of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, "
                                 "`SET_PROPERTY`, `GET_PROPERTY` at line 1 column 22", 1)
    text = '{"params":["btcusdt@kline_1m"],"id":7}'
    assert reply(s, text) == err(2, f"Invalid request: missing field `method` at line 1 column "
                                 f"{len(text)}", 7)
    assert reply(s, {"method": "LIST_SUBSCRIPTIONS", "params": ["x"], "id": 8}) == \
        err(2, "Invalid request: too many parameters", 8)
    assert reply(s, {"method": "SUBSCRIBE", "id": 9}) == \
        err(2, "Invalid request: missing field `params`", 9)
    assert reply(s, "[1,2]")["error"] is not None


def test_spot_accepts_string_and_null_ids() -> None:
    s = session("binance-spot")
    assert reply(s, {"method": "LIST_SUBSCRIPTIONS", "id": "req-1"}) == \
        {"result": [], "id": "req-1"}
    assert reply(s, {"method": "LIST_SUBSCRIPTIONS", "id": None}) == {"result": [], "id": None}
    assert reply(s, {"method": "LIST_SUBSCRIPTIONS", "id": "x" * 37})["error"] is not None


def test_stream_cap() -> None:
    s = session(max_streams=2)
    assert s.handle('{"method":"SUBSCRIBE","params":["btcusdt@kline_1m","ethusdt@kline_1m"],'
                    '"id":1}').added
    out = reply(s, {"method": "SUBSCRIBE", "params": ["btcusdt@kline_5m"], "id": 2})
    assert out == err(2, "Invalid request: too many streams: at most 2 per connection", 2)
    assert list(s.subscriptions) == ["btcusdt@kline_1m", "ethusdt@kline_1m"]
    assert isinstance(session(max_streams=1).open_with(("btcusdt@kline_1m",
                                                         "ethusdt@kline_1m")), str)


def test_names_in_the_url_that_are_no_stream_are_ignored() -> None:
    """ccxt opens ``/ws/0``, ``/ws/1``, ... and subscribes afterwards; the exchange accepts the
    connection, so the session neither refuses it nor subscribes "0"."""
    s = session()
    assert s.open_with(("0",)) == ()
    assert s.open_with(("nopeusdt@kline_1m", "btcusdt@kline_1m")) == ("btcusdt@kline_1m",)
    assert list(s.subscriptions) == ["btcusdt@kline_1m"]


def test_kline_stream_names() -> None:
    assert is_kline_stream("btcusdt@kline_1m") == ("BTCUSDT", "1m")
    assert is_kline_stream("btcusdt@aggTrade") is None
    assert is_kline_stream("BTCUSDT@kline_1m") is None
