"""OKX v5 business-WebSocket protocol for one simulated connection, Sans-I/O
(protocols-more-venues.md §E.2-E.6).

:class:`OkxSession` turns one incoming text frame into the reply and the subscription changes:

* the bare text ``ping`` is answered ``pong`` (§E.5);
* ``{"id"?,"op":"subscribe"|"unsubscribe","args":[{"channel","instId"},...]}`` is acknowledged
  with **one frame per arg** (``{"id","event":"subscribe","arg",…,"connId"}``); the frames of one
  reply are joined by a newline, which :class:`OkxFraming` turns into separate WebSocket frames
  (a JSON frame never holds a raw newline);
* errors are ``{"id"?,"event":"error","code":"600xx","msg":…,"connId":…}`` with the code as a
  string: ``60012`` bad JSON or shape, ``60019`` an unknown ``op``, ``60018`` a channel or
  instrument that does not exist (the wording OKX uses, §E.1), ``60014`` over the 480
  subscribe/unsubscribe operations per connection per hour (§E.6).

Inferences, since no source documents them (docs/venues.md lists them too): a request with one
unknown arg is refused whole (one error frame, nothing subscribed); a subscription beyond the
connection's channel cap is refused with code ``4008`` and the close code's wording; subscribing
a channel twice or unsubscribing one that is not subscribed is acknowledged and changes nothing.
Payloads are encoded with the client's own wire Structs (``venues.okx.schemas``).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.sim.framing import TEXT, frame_body, ws_frame
from candlekeeper.sim.personality import Control
from candlekeeper.venues.okx import schemas
from candlekeeper.venues.okx.endpoints import (
    SUBSCRIBE_OPS_PER_HOUR,
    WS_INVALID_OP,
    WS_INVALID_REQUEST,
    WS_SERVICE_UPGRADE,
    WS_TOO_FREQUENT,
    WS_WRONG_URL_OR_CHANNEL,
)
from candlekeeper.venues.okx.stream import INTERVAL_OF_CHANNEL, channel, inst_id, symbol_of_inst

PING: Final = schemas.PING.encode()
PONG: Final = schemas.PONG.encode()
#: a close code OKX uses when a connection holds too many channels (§E.2), sent as an error
TOO_MANY_CHANNELS: Final = "4008"
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()
_conn_ids = itertools.count(0x5A17)


# -- names --------------------------------------------------------------------------------------
def stream_name(venue: str, symbol: str, interval: str) -> str:
    """``("BTCUSDT", "1m")`` -> ``candle1m:BTC-USDT-SWAP`` (swap) / ``…:BTC-USDT`` (spot)."""
    return f"{channel(interval)}:{inst_id(venue, symbol)}"


def parse_stream(venue: str, name: str) -> tuple[str, str] | None:
    """``candle1m:BTC-USDT-SWAP`` -> ``("BTCUSDT", "1m")`` when it is this venue's form."""
    ch, sep, inst = name.partition(":")
    interval = INTERVAL_OF_CHANNEL.get(ch)
    symbol = symbol_of_inst(venue, inst) if sep and interval is not None else None
    return None if symbol is None or interval is None else (symbol, interval)


# -- payloads -----------------------------------------------------------------------------------
def event_payload(event: str, *, rid: str | None = None, arg: schemas.Arg | None = None,
                  code: str | None = None, msg: str | None = None,
                  conn_id: str | None = None) -> bytes:
    return _encoder.encode(schemas.Event(event, rid, arg, code, msg, conn_id))


def contract_volume(base: str, ct_val: Decimal) -> str:
    """Base volume -> contracts (``vol`` of a swap row): ``13.3007`` BTC at 0.01 -> ``1330.07``."""
    return format((Decimal(base) / ct_val).normalize(), "f")


def quote_volume(c: Candle) -> str:
    """The candle's quote volume, or volume x close where the market has none."""
    if c.quote_volume_str is not None:
        return c.quote_volume_str
    return format((Decimal(c.volume_str) * Decimal(c.close_str)).quantize(Decimal("0.00001")),
                  "f")


def row(c: Candle, confirm: bool, ct_val: Decimal | None) -> schemas.Row:
    """``[ts,o,h,l,c,vol,volCcy,volCcyQuote,confirm]``: on a swap ``vol`` counts contracts and
    ``volCcy`` is the base volume; on spot ``vol`` is the base and ``volCcy`` the quote volume."""
    quote = quote_volume(c)
    if ct_val is not None:
        vol, vol_ccy = contract_volume(c.volume_str, ct_val), c.volume_str
    else:
        vol, vol_ccy = c.volume_str, quote
    return [str(c.open_time), c.open_str, c.high_str, c.low_str, c.close_str, vol, vol_ccy,
            quote, "1" if confirm else "0"]


def push_payload(arg: schemas.Arg, c: Candle, confirm: bool, ct_val: Decimal | None) -> bytes:
    return _encoder.encode(schemas.CandlePush(arg, [row(c, confirm, ct_val)]))


def notice_payload(conn_id: str) -> bytes:
    return event_payload("notice", code=WS_SERVICE_UPGRADE, msg="The connection will soon be "
                         "closed for a service upgrade. Please reconnect.", conn_id=conn_id)


def malformed_payloads(name: str) -> list[bytes]:
    """What the ``malformed`` fault sends: broken JSON, a row of numbers, a short row, an
    impossible ``confirm``, an empty ``data`` and a truncated frame."""
    ch, _, inst = name.partition(":")
    arg = b'{"arg":{"channel":"' + ch.encode() + b'","instId":"' + inst.encode() + b'"},'
    return [
        b"not json at all",
        arg + b'"data":[[1700000000000,1,2,3,4,5,6,7,1]]}',
        arg + b'"data":[["1700000000000","1","2"]]}',
        arg + b'"data":[["1700000000000","1","2","0.5","1","5","6","7","2"]]}',
        arg + b'"data":[]}',
        arg + b'"data":[["1700000000000","1.',
    ]


class OkxFraming:
    """Plain text frames; a payload holding several JSON messages (one per line) goes out as
    that many frames, in order (OKX acknowledges every arg of a request separately)."""

    def frame(self, payload: bytes) -> bytes:
        if b"\n" not in payload:
            return ws_frame(TEXT, payload)
        return b"".join(ws_frame(TEXT, part) for part in payload.split(b"\n"))

    def payload(self, frame: bytes) -> bytes:
        return frame_body(frame)


# -- the session --------------------------------------------------------------------------------
class OkxSession:
    """Subscription state of one ``/ws/v5/business`` connection."""

    combined = False  # OKX has one framing; kept for the server's FrameSink protocol

    def __init__(self, is_valid_stream: Callable[[str], bool], *, max_streams: int,
                 ops_per_hour: int = SUBSCRIBE_OPS_PER_HOUR,
                 wall: Callable[[], float] = time.monotonic) -> None:
        self.max_streams = max_streams
        self.ops_per_hour = ops_per_hour
        self.conn_id = format(next(_conn_ids) * 2654435761 % (1 << 32), "08x")
        self._valid = is_valid_stream
        self._wall = wall
        self._ops: deque[float] = deque()
        self.subscriptions: dict[str, None] = {}

    def open_with(self, streams: tuple[str, ...]) -> tuple[str, ...] | str:
        """OKX URLs name no channels; everything is subscribed live."""
        return "OKX takes no channels in the URL" if streams else ()

    def handle(self, text: str | bytes) -> Control:
        raw = text.encode() if isinstance(text, str) else text
        if raw == PING:
            return Control(PONG)
        try:
            obj = _decoder.decode(raw)
        except msgspec.DecodeError:
            return self._error(WS_INVALID_REQUEST, f"Invalid request: {raw[:200]!r}", None)
        rid = obj.get("id") if isinstance(obj, dict) else None
        if rid is not None and not (isinstance(rid, str) and rid.isalnum() and len(rid) <= 32):
            return self._error(WS_INVALID_REQUEST, f"Invalid request: bad id {rid!r}", None)
        op = obj.get("op") if isinstance(obj, dict) else None
        if not isinstance(obj, dict) or not isinstance(op, str):
            return self._error(WS_INVALID_REQUEST, f"Invalid request: {raw[:200]!r}", rid)
        if op not in (schemas.SUBSCRIBE, schemas.UNSUBSCRIBE):
            return self._error(WS_INVALID_OP, f"Invalid op: op :{op[:40]}", rid)
        try:
            args = msgspec.convert(obj.get("args"), list[schemas.Arg])
        except msgspec.ValidationError:
            return self._error(WS_INVALID_REQUEST, f"Invalid request: {raw[:200]!r}", rid)
        if not args:
            return self._error(WS_INVALID_REQUEST, f"Invalid request: {raw[:200]!r}", rid)
        now = self._wall()
        while self._ops and now - self._ops[0] >= 3600.0:
            self._ops.popleft()
        if len(self._ops) >= self.ops_per_hour:
            return self._error(WS_TOO_FREQUENT, "Requests too frequent.", rid)
        self._ops.append(now)
        for a in args:
            if not self._valid(f"{a.channel}:{a.instId}"):
                return self._error(WS_WRONG_URL_OR_CHANNEL, (
                    f"Wrong URL or channel:{a.channel},instId:{a.instId} doesn't exist. Please "
                    "use the correct URL, channel and parameters referring to API document."),
                    rid)
        names = list(dict.fromkeys(f"{a.channel}:{a.instId}" for a in args))
        if op == schemas.UNSUBSCRIBE:
            removed = tuple(n for n in names if n in self.subscriptions)
            for n in removed:
                del self.subscriptions[n]
            return Control(self._acks(op, args, rid), removed=removed)
        added = tuple(n for n in names if n not in self.subscriptions)
        if len(self.subscriptions) + len(added) > self.max_streams:
            return self._error(TOO_MANY_CHANNELS, "The number of subscribed channels exceeds "
                               "the maximum limit.", rid)
        for n in added:
            self.subscriptions[n] = None
        return Control(self._acks(op, args, rid), added=added)

    def _acks(self, op: str, args: list[schemas.Arg], rid: str | None) -> bytes:
        return b"\n".join(event_payload(op, rid=rid, arg=a, conn_id=self.conn_id)
                          for a in args)

    def _error(self, code: str, msg: str, rid: str | None) -> Control:
        return Control(event_payload("error", rid=rid, code=code, msg=msg,
                                     conn_id=self.conn_id), is_error=True)
