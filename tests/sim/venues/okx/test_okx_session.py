"""The OKX personality's per-connection protocol, Sans-I/O: text ping/pong, one ack per arg,
the documented error codes, the hourly operation budget and the channel cap."""

from __future__ import annotations

import json

from candlekeeper.sim.framing import frame_body
from candlekeeper.sim.venues.okx.session import OkxFraming, OkxSession

VALID = {"candle1m:BTC-USDT-SWAP", "candle1m:ETH-USDT-SWAP", "candle1Dutc:BTC-USDT-SWAP"}


def _session() -> OkxSession:
    return OkxSession(VALID.__contains__, max_streams=10)


def _req(op: str, *names: str, rid: str | None = "1") -> str:
    args = [dict(zip(("channel", "instId"), n.split(":"), strict=True)) for n in names]
    body: dict[str, object] = {"op": op, "args": args}
    if rid is not None:
        body["id"] = rid
    return json.dumps(body)


def _frames(payload: bytes) -> list[dict[str, object]]:
    raw = OkxFraming().frame(payload)
    out = []
    while raw:
        n = raw[1] & 0x7F
        head = 2 + (2 if n == 126 else 0)
        size = int.from_bytes(raw[2:4]) if n == 126 else n
        out.append(json.loads(frame_body(raw[:head + size])))
        raw = raw[head + size:]
    return out


def test_text_ping_is_answered_pong() -> None:
    assert _session().handle("ping").reply == b"pong"


def test_every_arg_gets_its_own_ack_frame() -> None:
    s = _session()
    ctl = s.handle(_req("subscribe", "candle1m:BTC-USDT-SWAP", "candle1m:ETH-USDT-SWAP"))
    assert ctl.added == ("candle1m:BTC-USDT-SWAP", "candle1m:ETH-USDT-SWAP")
    frames = _frames(ctl.reply)
    assert [f["event"] for f in frames] == ["subscribe", "subscribe"]
    assert frames[1] == {"event": "subscribe", "id": "1",
                         "arg": {"channel": "candle1m", "instId": "ETH-USDT-SWAP"},
                         "connId": s.conn_id}
    again = s.handle(_req("subscribe", "candle1m:BTC-USDT-SWAP", rid=None))
    assert again.added == () and "id" not in _frames(again.reply)[0]  # no id: none echoed
    gone = s.handle(_req("unsubscribe", "candle1m:BTC-USDT-SWAP"))
    assert gone.removed == ("candle1m:BTC-USDT-SWAP",)
    assert _frames(gone.reply)[0]["event"] == "unsubscribe"


def test_errors_carry_the_documented_string_codes() -> None:
    s = _session()
    cases = {
        "not json": "60012",
        json.dumps({"op": "subscribe", "argss": []}): "60012",
        json.dumps({"op": "login", "args": [{"channel": "x", "instId": "y"}]}): "60019",
        _req("subscribe", "candle1m:BTC-USDT-SWAP", "candle1D:BTC-USDT-SWAP"): "60018",
    }
    for text, code in cases.items():
        ctl = s.handle(text)
        body = json.loads(ctl.reply)
        assert ctl.is_error and body["event"] == "error" and body["code"] == code, text
    assert s.subscriptions == {}  # the request with one unknown arg was refused whole
    bad = json.loads(s.handle(_req("subscribe", "candle1D:BTC-USDT-SWAP")).reply)
    assert bad["msg"].startswith("Wrong URL or channel:candle1D,instId:BTC-USDT-SWAP")


def test_480_operations_per_hour_then_60014() -> None:
    clock = {"t": 0.0}
    s = OkxSession(VALID.__contains__, max_streams=10, wall=lambda: clock["t"])
    for i in range(480):
        op = "subscribe" if i % 2 == 0 else "unsubscribe"
        assert not s.handle(_req(op, "candle1m:BTC-USDT-SWAP")).is_error, i
    refused = s.handle(_req("subscribe", "candle1m:BTC-USDT-SWAP"))
    assert refused.is_error and json.loads(refused.reply)["code"] == "60014"
    assert s.handle("ping").reply == b"pong"  # pings are no operation
    clock["t"] = 3600.0
    assert not s.handle(_req("subscribe", "candle1m:BTC-USDT-SWAP")).is_error


def test_the_channel_cap_refuses_the_extra_channel() -> None:
    s = OkxSession(VALID.__contains__, max_streams=1)
    assert not s.handle(_req("subscribe", "candle1m:BTC-USDT-SWAP")).is_error
    over = s.handle(_req("subscribe", "candle1m:ETH-USDT-SWAP"))
    assert over.is_error and json.loads(over.reply)["code"] == "4008"
    assert list(s.subscriptions) == ["candle1m:BTC-USDT-SWAP"]
