"""BingX codec on the real samples (JKorf fixture, ccxt captures, docs-v3 demo, 2023 doc), gzip
framing, Ping/Pong, acks and error frames, malformed input and request builders."""

from __future__ import annotations

import json
import re
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError
from candlekeeper.venues.bingx import schemas
from candlekeeper.venues.bingx.endpoints import BINGX_SWAP
from candlekeeper.venues.bingx.stream import (
    MAX_FRAME_BYTES,
    BingxStreamCodec,
    candle_to_kline,
    gzip_frame,
    parse_data_type,
)
from candlekeeper.venues.contract import Ack, ErrorReply, Ignored, Malformed, Reply

CODEC = BingxStreamCodec(BINGX_SWAP)


def js_to_json(text: str) -> str:
    """JS object notation as printed by Node / minified bundles -> JSON: quote the keys, use
    double quotes, expand ``175999746e4`` and drop ``//`` comments."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"([{,]\s*)([A-Za-z_]\w*)\s*:", r'\1"\2":', text)
    text = re.sub(r"(?<![\w.\"])(\d+)e(\d+)\b", lambda m: str(int(m[1]) * 10 ** int(m[2])), text)
    return text.replace("'", '"')


def gz(obj: Any) -> bytes:
    """A server frame as BingX sends it: compact JSON, gzip'd, in a binary frame."""
    return gzip_frame(obj if isinstance(obj, str | bytes) else json.dumps(obj))


def candle(frame: bytes | str) -> Candle:
    msg = CODEC.decode(frame)
    assert isinstance(msg, Candle), msg
    return msg


# -- real samples ---------------------------------------------------------------------------


def test_jkorf_fixture_sub_ack_and_push(samples: Path) -> None:
    lines = (samples / "bingx_swap_ws_kline_jkorf_fixture.txt").read_text().splitlines()
    sub = json.loads(lines[0].removeprefix("> "))
    ack = lines[1].removeprefix("< ")
    push = lines[3]
    # our request has exactly the fixture's shape (the id is ours: a decimal string)
    ours = json.loads(CODEC.subscribe(["ETH-USDT@kline_1m"], 1))
    assert ours.keys() == sub.keys()
    assert ours == {**sub, "id": "1"}
    assert CODEC.decode(gz(ack)) == Ack("|1|", None)  # a non-numeric id stays a str
    for frame in (push, push.encode(), gz(push)):  # text frame, bytes, gzip'd binary
        c = candle(frame)
        assert c == Candle.of(
            venue="bingx-swap", symbol="ETHUSDT", interval="1m",
            open_time=1714650540000, close_time=1714650599999,
            open="2991.50", high="2991.55", low="2989.04", close="2989.57", volume="215.89",
            closed=False, source="ws",
        )
        assert c.open == Decimal("2991.50") and c.open_str == "2991.50"  # trailing zero kept
        assert c.trades is None and c.quote_volume is None and c.event_time is None
        assert c.first_trade_id is None and c.taker_buy_base_volume is None


def test_ccxt_pr_20516_capture(samples: Path) -> None:
    text = (samples / "bingx_swap_ws_kline_other_captures.txt").read_text()
    block = text[text.index("onMessage {") + len("onMessage "): text.index("[ [")]
    obj = json.loads(js_to_json(block))
    c = candle(gz(obj))
    assert (c.symbol, c.interval, c.open_time, c.close_time) == \
        ("BTCUSDT", "1m", 1703300820000, 1703300879999)
    assert (c.open_str, c.high_str, c.low_str, c.close_str, c.volume_str) == \
        ("43557.5", "43563.0", "43553.0", "43561.3", "13.8908")
    assert c.high == Decimal("43563.0") and not c.closed


def test_ccxt_source_comment_push(samples: Path) -> None:
    text = (samples / "bingx_swap_ws_kline_other_captures.txt").read_text()
    section = text.split("## 2)")[1].split("#  and parse_ws_ohlcv")[0]
    body = "\n".join(line.lstrip("#") for line in section.splitlines()[1:])
    obj = json.loads(body[body.index("{"):])
    c = candle(gz(obj))
    assert (c.open_time, c.open_str, c.high_str, c.low_str, c.close_str, c.volume_str) == \
        (1690907580000, "28915.4", "28915.4", "28896.1", "28909.0", "27.6919")


def _demo(text: str, key: str) -> dict[str, Any]:
    start = text.index(key + ":{") + len(key) + 1
    depth = 0
    for i, ch in enumerate(text[start:], start):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 0:
            result: dict[str, Any] = json.loads(js_to_json(text[start:i + 1]))
            return result
    raise AssertionError(f"unbalanced {key}")


def test_docs_v3_demo_push_ack_and_requests(samples: Path) -> None:
    for name in ("bingx_docs_v3_swap_modules_extract.txt",
                 "bingx_swap_ws_kline_other_captures.txt"):
        demo = _demo((samples / name).read_text(), "dataUpdateDemo")
        c = candle(gz(demo))
        assert (c.symbol, c.open_time, c.close_str, c.open_str, c.high_str, c.low_str,
                c.volume_str) == ("BTCUSDT", 1759997460000, "121697.7", "121684.1", "121697.7",
                                  "121638.7", "5.8244")
    text = (samples / "bingx_docs_v3_swap_modules_extract.txt").read_text()
    ack = _demo(text, "responseBody")
    assert CODEC.decode(gz(ack)) == Ack("e745cd6d-d0f6-4a70-8d5a-043e4c741b40", None)
    payload, unsub = _demo(text, "payload"), _demo(text, "unsub_payload")
    assert json.loads(CODEC.subscribe([payload["dataType"]], 5)) == {**payload, "id": "5"}
    assert json.loads(CODEC.unsubscribe([unsub["dataType"]], 6)) == {**unsub, "id": "6"}
    # the simulator encodes acks with the shared schema: byte-identical to the docs' full form
    assert json.loads(msgspec.json.encode(schemas.Ack(ack["id"]))) == ack


def test_ack_and_error_frames_from_ccxt(samples: Path) -> None:
    text = (samples / "bingx_swap_ws_kline_other_captures.txt").read_text()
    ack_block = text.split("## 4)")[1].split("## 5)")[0]
    ack = json.loads(js_to_json("\n".join(
        line.lstrip("#") for line in ack_block.splitlines()[1:])))
    assert CODEC.decode(gz(ack)) == Ack("2aed93b1-6e1e-4038-aeba-f5eeaec2ca48", None)
    errors = text.split("## 5)")[1]
    first = json.loads(js_to_json(errors[errors.index("{"): errors.index("}") + 1]))
    rest = errors[errors.index("}") + 1:]
    second = json.loads(js_to_json("\n".join(
        line.lstrip("#") for line in rest[rest.index("{"): rest.rindex("}") + 1].splitlines())))
    assert CODEC.decode(gz(first)) == ErrorReply(None, 100400, "invalid parameter (code 100400)")
    assert CODEC.decode(gz(second)) == ErrorReply(
        "9cd37d32-da98-440b-bd04-37e7dbcf51ad", 100500, "internal system error (code 100500)")


def test_2023_doc_push_shape_is_still_understood(samples: Path) -> None:
    """The outdated 2023 push: ``data`` an object, ``T`` the candle's last ms."""
    text = (samples / "bingx_swap_ws_kline_doc_2023-04.md").read_text()
    block = text[text.index("{", text.index("# Response")): text.rindex("}") + 1]
    block = re.sub(r'"\s*\n(\s*)"dataType"', r'",\n\1"dataType"', js_to_json(block))
    c = candle(gz(json.loads(block)))
    assert (c.symbol, c.interval, c.open_time, c.close_time) == \
        ("BTCUSDT", "1m", 1649832720000, 1649832779999)
    assert c.volume_str == "1607.0727000000002" and c.open_str == "54577.41"


# -- framing ----------------------------------------------------------------------------------


def test_ping_is_answered_with_text_pong() -> None:
    assert CODEC.decode(gzip_frame("Ping")) == Reply("Pong")
    assert CODEC.decode("Ping") == Reply("Pong")
    assert CODEC.decode(memoryview(gzip_frame(b"Ping"))) == Reply("Pong")
    assert CODEC.decode(gzip_frame("Pong")) == Ignored("Pong")


def test_gzip_round_trip_of_an_encoded_push_any_buffer_type() -> None:
    """What the simulator sends: the shared schema, encoded and gzip'd."""
    c = Candle.of("bingx-swap", "BTCUSDT", "5m", 1703300700000, 1703301000000 - 1,
                  "43557.5", "43563.0", "43553.0", "43561.3", "13.8908")
    push = schemas.KlinePush(0, "BTC-USDT@kline_5m", "BTC-USDT", [candle_to_kline(c)])
    frame = gzip_frame(msgspec.json.encode(push))
    assert zlib.decompress(frame, 31) == msgspec.json.encode(push)
    for buf in (frame, bytearray(frame), memoryview(frame)):
        assert CODEC.decode(buf) == c


def test_several_candles_in_one_push_yield_every_candle_oldest_first() -> None:
    """A push carrying the candle that just closed and the next one must not lose the first:
    it may be the last look at that candle before its close is inferred."""
    rows = [{"c": "2", "o": "1", "h": "2", "l": "1", "v": "5", "T": t}
            for t in (1714650600000, 1714650540000)]
    frame = gz({"code": 0, "dataType": "ETH-USDT@kline_1m", "s": "ETH-USDT", "data": rows})
    out = CODEC.decode(frame)
    assert isinstance(out, list) and all(isinstance(c, Candle) for c in out)
    assert [c.open_time for c in out if isinstance(c, Candle)] == [1714650540000,
                                                                   1714650600000]


def test_a_push_with_one_impossible_candle_keeps_the_others() -> None:
    rows = [{"c": "2", "o": "1", "h": "2", "l": "1", "v": "5", "T": 1714650540000},
            {"c": "NaN", "o": "1", "h": "2", "l": "1", "v": "5", "T": 1714650600000}]
    frame = gz({"code": 0, "dataType": "ETH-USDT@kline_1m", "s": "ETH-USDT", "data": rows})
    out = CODEC.decode(frame)
    assert isinstance(out, list) and isinstance(out[0], Candle)
    bad = out[1]
    assert isinstance(bad, Malformed) and "close is not a decimal" in bad.reason
    assert bad.key == StreamKey("bingx-swap", "ETHUSDT", "1m")


@pytest.mark.parametrize("price", ["", "abc", "NaN", "1e5", "-1", "Infinity", "１２"])
def test_pushes_with_impossible_prices_are_malformed(price: str) -> None:
    row = {"c": price, "o": "1", "h": "2", "l": "1", "v": "5", "T": 1714650540000}
    out = CODEC.decode(gz({"code": 0, "dataType": "ETH-USDT@kline_1m", "s": "ETH-USDT",
                           "data": [row]}))
    assert isinstance(out, Malformed) and out.key == StreamKey("bingx-swap", "ETHUSDT", "1m")


def test_a_huge_numeric_ack_id_is_kept_as_text_not_raised() -> None:
    """A 4,301-digit id (more than Python converts to int) must not raise."""
    rid = "7" * 4301
    out = CODEC.decode(gz({"id": rid, "code": 0, "msg": ""}))
    assert isinstance(out, Ack) and isinstance(out.request_id, str)


# -- acks and errors --------------------------------------------------------------------------


def test_numeric_ids_come_back_as_ints() -> None:
    sent = json.loads(CODEC.subscribe(["BTC-USDT@kline_1m"], 42))
    assert sent == {"id": "42", "reqType": "sub", "dataType": "BTC-USDT@kline_1m"}
    assert CODEC.decode(gz({"id": "42", "code": 0, "msg": ""})) == Ack(42, None)
    full = {"id": "43", "code": 0, "msg": "", "dataType": "", "data": None}
    assert CODEC.decode(gz(full)) == Ack(43, None)


def test_topic_limit_error_is_described_and_matched() -> None:
    msg = CODEC.decode(gz({"id": "201", "code": 80403, "msg": "", "dataType": "", "data": None}))
    assert msg == ErrorReply(201, 80403,
                             "over the limit of 200 topics per connection (code 80403)")
    other = CODEC.decode(gz({"code": 99999, "msg": "something odd", "timestamp": 1}))
    assert other == ErrorReply(None, 99999, "something odd (code 99999)")


def test_other_pushes_are_ignored() -> None:
    trade = {"code": 0, "dataType": "BTC-USDT@trade", "data": [{"p": "1", "q": "2"}]}
    assert CODEC.decode(gz(trade)) == Ignored("BTC-USDT@trade")
    assert CODEC.decode(gz({"code": 0})) == Ignored("unknown")


# -- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(("frame", "reason"), [
    (gzip_frame(b'{"code":0,"dataType":"BTC-USDT@kline_1m"')[:-12], "truncated gzip"),
    (b"\x1f\x8b" + b"\x00" * 20, "invalid gzip"),
    (gz("{not json"), "invalid JSON"),
    (gz("[1,2]"), "not a JSON object"),
    (gz({"code": 0, "dataType": "BTC-USDT@kline_1m", "s": "BTC-USDT",
         "data": [{"c": 1, "o": "1", "h": "1", "l": "1", "v": "1", "T": 1}]}), "bad kline"),
    (gz({"code": 0, "dataType": "BTC-USDT@kline_1m", "s": "BTC-USDT", "data": []}),
     "without candles"),
    (gz({"code": 0, "dataType": "BTC-USDT@kline_7m", "s": "BTC-USDT", "data": [
        {"c": "1", "o": "1", "h": "1", "l": "1", "v": "1", "T": 1}]}), "unroutable"),
    (gz({"code": "0", "id": "1"}), "non-integer code"),
    ("", "invalid JSON"),
])
def test_malformed_frames_are_reported_not_raised(frame: bytes | str, reason: str) -> None:
    msg = CODEC.decode(frame)
    assert isinstance(msg, Malformed), msg
    assert reason in msg.reason


def test_gzip_bomb_is_refused() -> None:
    bomb = gzip_frame(b" " * (MAX_FRAME_BYTES + 10))
    msg = CODEC.decode(bomb)
    assert isinstance(msg, Malformed) and "inflates beyond" in msg.reason


# -- names and requests -----------------------------------------------------------------------


@pytest.mark.parametrize("user", ["BTCUSDT", "btcusdt", "BTC-USDT", "btc-usdt", "BTC/USDT:USDT",
                                  "BTC/USDT", "BTC_USDT"])
def test_native_symbol_from_every_user_form(user: str) -> None:
    assert CODEC.native_symbol(user) == "BTC-USDT"


def test_native_symbol_splits_at_known_quotes() -> None:
    assert CODEC.native_symbol("1000PEPEUSDT") == "1000PEPE-USDT"
    assert CODEC.native_symbol("ETHUSDC") == "ETH-USDC"
    with pytest.raises(ConfigError, match="BASE-QUOTE"):
        CODEC.native_symbol("FOOBAR")
    with pytest.raises(ConfigError):
        CODEC.native_symbol("BTC-USDT-X")


def test_stream_names_round_trip() -> None:
    key = StreamKey("bingx-swap", "BTCUSDT", "1m")
    assert CODEC.stream_name(key) == "BTC-USDT@kline_1m"
    intervals = frozenset(BINGX_SWAP.intervals)
    assert parse_data_type("bingx-swap", "BTC-USDT@kline_1m", intervals) == key
    assert parse_data_type("bingx-swap", "ETH-USDT@kline_1M", intervals) == \
        StreamKey("bingx-swap", "ETHUSDT", "1M")
    with pytest.raises(ConfigError, match="no interval '1s'"):
        CODEC.stream_name(StreamKey("bingx-swap", "BTCUSDT", "1s"))
    for bad in ("BTC-USDT@trade", "@kline_1m", "BTC-USDT@kline_2m"):
        assert parse_data_type("bingx-swap", bad, intervals) is None


def test_connect_url_and_request_builders() -> None:
    base = "ws://127.0.0.1:9999/swap-market"
    assert CODEC.connect_url(base, ["BTC-USDT@kline_1m"]) == base
    assert CODEC.unsubscribe(["BTC-USDT@kline_1m"], 7) == \
        '{"id":"7","reqType":"unsub","dataType":"BTC-USDT@kline_1m"}'
    with pytest.raises(ValueError, match="exactly one dataType"):
        CODEC.subscribe(["BTC-USDT@kline_1m", "ETH-USDT@kline_1m"], 8)
