"""Hyperliquid codec details the contract suite does not cover: the coin as canonical symbol,
acks without ids, "Already subscribed", the heartbeat, the REST bodies, weights and error
classification, and the meta universe."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError, DecodeError
from candlekeeper.venues.contract import Ack, ErrorReply, Malformed, Pong, RestErrorKind
from candlekeeper.venues.hyperliquid.symbols import canonical, native
from candlekeeper.venues.registry import canonical_symbol, get_spec, history_codec, stream_codec

VENUE = "hyperliquid-perp"
JKORF = "hyperliquid_ws_candle_jkorf_fixture.txt"
CASSETTE_META = "hyperliquid_rest_candle_snapshot_sdk_cassette_2023-07-17.txt"


@pytest.mark.parametrize("text", ["BTC", "btc", "BTCUSDC", "BTC-USDC", "BTC/USDC",
                                  "BTC/USDC:USDC", " btc/usdc:USDC "])
def test_every_user_form_is_the_coin(text: str) -> None:
    assert canonical(text) == "BTC"
    assert canonical_symbol(VENUE, text) == "BTC"


def test_another_quote_is_no_hyperliquid_perpetual() -> None:
    with pytest.raises(ConfigError, match="quoted in USDC"):
        canonical("BTC/USDT:USDT")
    with pytest.raises(ConfigError):
        canonical("BTC--USDC")


def test_k_coins_keep_their_lowercase_k_on_the_wire() -> None:
    assert canonical("kPEPE") == "KPEPE"
    assert native("KPEPE") == native("kPEPE") == "kPEPE"
    codec = stream_codec(VENUE)
    assert json.loads(codec.subscribe([codec.stream_name(StreamKey(VENUE, "KPEPE", "1h"))],
                                      1)) == {"method": "subscribe", "subscription": {
                                          "type": "candle", "coin": "kPEPE", "interval": "1h"}}


def test_subscribe_is_the_real_frame_and_its_ack_answers_our_id(samples: Path) -> None:
    codec = stream_codec(VENUE)
    name = codec.stream_name(StreamKey(VENUE, "HYPE", "1d"))
    frame = codec.subscribe([name], 42)
    lines = (samples / JKORF).read_text().splitlines()
    sent = next(ln[2:] for ln in lines if ln.startswith("> "))
    assert json.loads(frame) == json.loads(sent)  # the real client frame, keys in any order
    ack = next(ln[2:] for ln in lines if ln.startswith("< "))
    assert codec.decode(ack) == Ack(42)
    with pytest.raises(ValueError, match="one subscription"):
        codec.subscribe([name, name], 43)


def test_already_subscribed_is_an_ack_other_errors_are_error_replies() -> None:
    codec = stream_codec(VENUE)
    codec.subscribe([codec.stream_name(StreamKey(VENUE, "BTC", "1m"))], 7)
    already = json.dumps({"channel": "error", "data": 'Already subscribed: {"type":"candle",'
                                                      '"coin":"BTC","interval":"1m"}'})
    assert codec.decode(already) == Ack(7)
    assert codec.decode('{"channel":"error","data":"nope"}') == ErrorReply(None, 0, "nope")
    assert codec.decode('{"channel":"pong"}') == Pong()
    assert codec.heartbeat is not None and json.loads(codec.heartbeat.payload) == {
        "method": "ping"}
    assert codec.heartbeat.every_s < 60  # the server closes after 60 s of its own silence


def test_pushes_are_never_closed_and_a_bad_close_time_is_malformed() -> None:
    codec = stream_codec(VENUE)
    push = {"channel": "candle", "data": {"t": 1790232180000, "T": 1790232239999, "s": "BTC",
                                          "i": "1m", "o": "1", "c": "2", "h": "3", "l": "0.5",
                                          "v": "9", "n": 3}}
    candle = codec.decode(json.dumps(push))
    assert isinstance(candle, Candle)
    assert candle.closed is False and candle.symbol == "BTC"
    push["data"]["T"] = 1790232240000  # type: ignore[index]
    bad = codec.decode(json.dumps(push))
    assert isinstance(bad, Malformed) and bad.key == StreamKey(VENUE, "BTC", "1m")
    as_list = dict(push, data=[dict(push["data"], T=1790232239999)])  # type: ignore[arg-type]
    assert codec.decode(json.dumps(as_list)) == candle  # the documented array shape


def test_rest_bodies_weights_and_errors() -> None:
    codec = history_codec(VENUE)
    req = codec.klines_request("BTC/USDC:USDC", "1m", start_time=60_000, limit=500)
    assert (req.method, req.path, req.weight) == ("POST", "/info", 20 + 9)
    assert msgspec.json.decode(req.body or b"") == {"type": "candleSnapshot", "req": {
        "coin": "BTC", "interval": "1m", "startTime": 60_000, "endTime": 60_000 * 500}}
    assert codec.klines_request("BTC", "1m", start_time=0, limit=60).weight == 21
    assert msgspec.json.decode(codec.symbols_request().body or b"") == {"type": "meta"}
    assert codec.server_time_request().weight == 2
    with pytest.raises(ConfigError):
        codec.klines_request("BTC", "6h")
    assert codec.decode_server_time(b'{"specialStatuses":null,"time":"1764617438643"}') \
        == 1764617438643
    assert codec.decode_server_time(b'{"time":1764617438643}') == 1764617438643
    with pytest.raises(DecodeError):
        codec.decode_klines(b'{"status":"err"}', "BTC", "1m")
    kinds = {
        (429, b"Too Many Requests"): RestErrorKind.RATE_LIMITED,
        (422, b"Failed to deserialize the JSON body into the target type"):
            RestErrorKind.BAD_REQUEST,
        (200, b'{"status":"err","response":"Unknown coin: NOPE"}'):
            RestErrorKind.UNKNOWN_SYMBOL,
        (200, b'{"status":"err","response":"something else"}'): RestErrorKind.BAD_REQUEST,
        (502, b"Bad Gateway"): RestErrorKind.SERVER_ERROR,
    }
    for (status, body), kind in kinds.items():
        failure = codec.classify(status, {}, body, 0.0)
        assert failure is not None and failure.kind is kind, (status, body)
    assert codec.classify(200, {}, b"[]", 0.0) is None


def test_meta_lists_the_universe_with_its_precision(samples: Path) -> None:
    codec = history_codec(VENUE)
    text = (samples / CASSETTE_META).read_text()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("string: '{"))
    body = line.strip().removeprefix("string: '").removesuffix("'").encode()
    symbols = codec.decode_symbols(body)
    assert len(symbols) == 28 and "BTC" in symbols and "KPEPE" in symbols
    assert codec.precision["BTC"] == (1, 5)  # 6 - szDecimals price decimals (§F.8)
    delisted = b'{"universe":[{"name":"LOOM","szDecimals":1,"maxLeverage":3,' \
               b'"onlyIsolated":true,"isDelisted":true},{"name":"ETH","szDecimals":4,' \
               b'"maxLeverage":50}]}'
    assert codec.decode_symbols(delisted) == ["ETH"]
    assert get_spec(VENUE).rest_history_candles == 5000
