"""BingX perpetual-swap market-stream protocol for one simulated connection, Sans-I/O
(protocols.md §C.2, §C.3).

:class:`BingxSession` turns one incoming text frame (``{"id","reqType","dataType"}``) into the
reply payload and the subscription changes; the server gzips the reply and moves the bytes.
Payloads are encoded with the client's own wire Structs (``venues.bingx.schemas``), so the
simulator and the codec cannot drift apart silently (architecture.md principle 1).

Inferences, since no source documents them (docs/simulator.md lists them too):

* an ack echoes the request's ``id`` string verbatim (ccxt sends UUIDs, JKorf numeric strings);
  a non-string ``id`` is refused with 100400 rather than guessed at;
* a missing ``reqType`` means ``sub`` (the 2023 doc's example has none; the v3 doc marks the
  field optional);
* bad JSON, an unknown ``reqType``, and a ``dataType`` that is no served kline topic get an error
  frame ``{"code":100400,"msg":..,"id":..,"timestamp":..}`` (ccxt's captured error shape);
* the 201st topic on a connection gets ``80403`` (documented) with the same shape;
* subscribing a topic twice, or unsubscribing one that is not subscribed, is acknowledged and
  changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.sim.framing import BINARY, TEXT, GzipFraming, ws_frame
from candlekeeper.sim.personality import Control
from candlekeeper.venues.bingx import schemas
from candlekeeper.venues.bingx.endpoints import TOPIC_LIMIT_CODE
from candlekeeper.venues.bingx.stream import candle_to_kline, split_symbol

PING: Final = schemas.PING
PONG: Final = schemas.PONG
INVALID_PARAMETER: Final = 100400
TOPIC_LIMIT: Final = TOPIC_LIMIT_CODE
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


# -- symbols and topics -------------------------------------------------------------------------
def native_symbol(symbol: str) -> str:
    """Canonical ``BTCUSDT`` -> BingX ``BTC-USDT``, split exactly as the client codec splits
    it (``venues.bingx.stream.split_symbol``: before the longest known quote asset)."""
    base, quote = split_symbol(symbol)
    return f"{base}-{quote}"


def data_type(symbol: str, interval: str) -> str:
    """``("BTCUSDT", "1m")`` -> ``BTC-USDT@kline_1m``."""
    return f"{native_symbol(symbol)}{schemas.KLINE_TAG}{interval}"


def parse_data_type(name: str) -> tuple[str, str] | None:
    """``BTC-USDT@kline_1m`` -> ``("BTCUSDT", "1m")``; the symbol must be uppercase and
    hyphenated ("There must be a hyphen/ "-" in the trading pair symbol", §C.3)."""
    native, sep, interval = name.partition(schemas.KLINE_TAG)
    if not sep or not interval or native != native.upper():
        return None
    base, dash, quote = native.partition("-")
    if not dash or not base or not quote or "-" in quote:
        return None
    return base + quote, interval


# -- payloads -----------------------------------------------------------------------------------
def ack_payload(request_id: str) -> bytes:
    """``{"id":"…","code":0,"msg":"","dataType":"","data":null}`` (the v3 docs' full form)."""
    return _encoder.encode(schemas.Ack(id=request_id))


def error_payload(code: int, msg: str, request_id: str | None, now_ms: int) -> bytes:
    """``{"code":100400,"msg":"…","id":"…","timestamp":…}`` (ccxt's captured error frames)."""
    return _encoder.encode(schemas.ErrorFrame(code=code, msg=msg, id=request_id,
                                              timestamp=now_ms))


def push_payload(name: str, native: str, candle: Candle) -> bytes:
    """``{"code":0,"dataType":…,"s":…,"data":[{"c","o","h","l","v","T"}]}``; ``T`` is the
    candle's OPEN time and nothing says whether it is final."""
    return _encoder.encode(schemas.KlinePush(0, name, native, [candle_to_kline(candle)]))


def malformed_frames(stream: str) -> list[bytes]:
    """What the ``malformed`` fault sends on a BingX connection: broken JSON inside valid gzip,
    wrong types, an empty ``data`` list, a binary frame that is not gzip at all, and a plain
    text frame (real BingX never sends text)."""
    s = stream.encode()
    native = stream.partition("@")[0].encode()
    gz = GzipFraming()
    bodies = [
        b"not json at all",
        b'{"code":0,"dataType":"' + s + b'","s":"' + native + b'","data":[{"c":"1.0","T":oops}]}',
        b'{"code":0,"dataType":"' + s + b'","s":"' + native + b'","data":[{"c":1,"o":2,"h":3,'
        b'"l":4,"v":5,"T":"soon"}]}',
        b'{"code":0,"dataType":"' + s + b'","s":"' + native + b'","data":[]}',
        b'{"code":0,"dataType":"' + s + b'","s":"' + native + b'","data":[{"c":"1.0","o":"1.',
    ]
    return [*(gz.frame(b) for b in bodies), ws_frame(BINARY, b"\x1f\x8b\x08\x00 not gzip"),
            ws_frame(TEXT, b'{"code":0,"dataType":"' + s + b'","data":null}')]


# -- the session --------------------------------------------------------------------------------
class BingxSession:
    """Subscription state of one ``/swap-market`` connection."""

    combined = False  # BingX has one framing; kept for the server's FrameSink protocol

    def __init__(self, is_valid_stream: Callable[[str], bool], *, max_streams: int = 200,
                 now_ms: Callable[[], int] = lambda: 0) -> None:
        self.max_streams = max_streams
        self._valid = is_valid_stream
        self._now = now_ms
        self.subscriptions: dict[str, None] = {}

    def open_with(self, streams: tuple[str, ...]) -> tuple[str, ...] | str:
        """BingX URLs name no topics; everything is subscribed live."""
        return "BingX takes no topics in the URL" if streams else ()

    def handle(self, text: str | bytes) -> Control:
        try:
            obj = _decoder.decode(text)
        except msgspec.DecodeError as exc:
            return self._error(INVALID_PARAMETER, f"invalid request: not JSON ({exc})", None)
        if not isinstance(obj, dict):
            return self._error(INVALID_PARAMETER, "invalid request: expected a JSON object",
                               None)
        rid = obj.get("id")
        if not isinstance(rid, str):
            return self._error(INVALID_PARAMETER, "invalid request: id must be a string", None)
        req_type = obj.get("reqType", schemas.SUB)
        if req_type not in (schemas.SUB, schemas.UNSUB):
            return self._error(INVALID_PARAMETER, f"invalid reqType {req_type!r}: expected "
                               "sub or unsub", rid)
        topic = obj.get("dataType")
        if not isinstance(topic, str) or not topic:
            return self._error(INVALID_PARAMETER, "invalid request: dataType is required", rid)
        if not self._valid(topic):
            return self._error(INVALID_PARAMETER, f"unsupported dataType {topic!r}", rid)
        if req_type == schemas.UNSUB:
            if topic not in self.subscriptions:
                return Control(ack_payload(rid))
            del self.subscriptions[topic]
            return Control(ack_payload(rid), removed=(topic,))
        if topic in self.subscriptions:
            return Control(ack_payload(rid))
        if len(self.subscriptions) >= self.max_streams:
            return self._error(TOPIC_LIMIT, f"a websocket is limited to {self.max_streams} "
                               "topics", rid)
        self.subscriptions[topic] = None
        return Control(ack_payload(rid), added=(topic,))

    def _error(self, code: int, msg: str, rid: str | None) -> Control:
        return Control(error_payload(code, msg, rid, self._now()), is_error=True)
