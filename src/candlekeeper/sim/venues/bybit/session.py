"""Bybit v5 public-stream protocol for one simulated connection, Sans-I/O (§D.2-§D.6).

:class:`BybitSession` turns one incoming text frame (``{"op","req_id","args"}``) into the reply
payload and the subscription changes. Payloads are encoded with the client's own wire Structs
(``venues.bybit.schemas``), so the simulator and the codec cannot drift apart silently.

What the docs show, reproduced: the ack per market (linear ``ret_msg: ""`` and ``req_id``
echoed, ``""`` when none was sent; spot ``ret_msg: "subscribe"``), the pong per market (linear
``{"success":true,"ret_msg":"pong",…,"req_id":…,"op":"ping"}``, spot the same without
``req_id``), refusals as the same envelope with ``success: false``, and spot's 10 args per
request. Inferences, since no source documents them (docs/venues.md lists them too):

* a request naming any topic the venue does not serve is refused whole (no topic of it is
  subscribed), ``ret_msg`` ``"Invalid topic: <topic>"`` (the nautilus fixture's wording);
* more than 10 args on spot: ``"args size >10"``; a connection whose args would exceed 21,000
  characters, or the per-connection topic count: ``"args length exceeds the limit"``;
* a numeric ``req_id`` is echoed as its decimal string (ccxt compares as strings);
* an unknown ``op`` or a frame that is no JSON object: ``"error:invalid op"`` (ccxt's comment);
* subscribing a topic twice, or unsubscribing one not subscribed, is acknowledged and changes
  nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.sim.framing import TEXT, ws_frame
from candlekeeper.sim.personality import Control
from candlekeeper.venues.bybit import schemas
from candlekeeper.venues.bybit.stream import candle_to_kline, parse_topic

#: "you cannot have length of "args" array over 21,000 characters" per connection (§D.6)
MAX_ARGS_CHARS: Final = 21_000
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()
_conn_ids = itertools.count(1)


def turnover(c: Candle) -> str:
    """The candle's quote volume as Bybit prints it (the market gives every candle of a venue
    publishing one a quote volume); volume x close for a candle made outside the market."""
    if c.quote_volume_str is not None:
        return c.quote_volume_str
    return format(Decimal(c.volume_str) * Decimal(c.close_str), "f")


def push_payload(name: str, candles: Sequence[Candle], ts: int) -> bytes:
    """``{"topic":…,"data":[…],"ts":…,"type":"snapshot"}``; ``timestamp`` (the last trade) is
    the push time, or the candle's last millisecond once it closed."""
    data = [candle_to_kline(c, turnover(c), min(ts, c.close_time)) for c in candles]
    return _encoder.encode(schemas.KlinePush(topic=name, data=data, ts=ts, type="snapshot"))


def malformed_frames(stream: str) -> list[bytes]:
    """What the ``malformed`` fault sends: broken JSON, wrong types, an empty ``data`` array, a
    truncated push and a push whose candle is off the grid."""
    s = stream.encode()
    bodies = [
        b"not json at all",
        b'{"topic":"' + s + b'","data":[{"start":oops}],"ts":1,"type":"snapshot"}',
        b'{"topic":"' + s + b'","data":[{"start":"soon","end":1,"interval":1,"open":2,'
        b'"close":3,"high":4,"low":5,"volume":6,"turnover":7,"confirm":"yes","timestamp":1}],'
        b'"ts":1,"type":"snapshot"}',
        b'{"topic":"' + s + b'","data":[],"ts":1,"type":"snapshot"}',
        b'{"topic":"' + s + b'","data":[{"start":1700000000000,"end":',
        b"[]",
    ]
    return [ws_frame(TEXT, b) for b in bodies]


class BybitSession:
    """Subscription state of one ``/v5/public/{linear|spot}`` connection."""

    combined = False  # one framing; kept for the server's FrameSink protocol

    def __init__(self, is_valid_stream: Callable[[str], bool], *, spot: bool,
                 max_streams: int, max_args_per_request: int | None) -> None:
        self.spot = spot
        self.max_streams = max_streams
        self.max_args_per_request = max_args_per_request
        self._valid = is_valid_stream
        self.conn_id = f"sim{next(_conn_ids):08x}-{'spot' if spot else 'linear'}"
        self.subscriptions: dict[str, None] = {}
        self._chars = 0

    def open_with(self, streams: tuple[str, ...]) -> tuple[str, ...] | str:
        """Bybit URLs name no topics; everything is subscribed live."""
        return "Bybit takes no topics in the URL" if streams else ()

    # -- payloads ---------------------------------------------------------------------------
    def reply(self, op: str, ret_msg: str, req_id: str | None, *, success: bool = True) -> bytes:
        return _encoder.encode(schemas.OpReply(success=success, ret_msg=ret_msg,
                                               conn_id=self.conn_id, op=op, req_id=req_id))

    def _error(self, op: str, ret_msg: str, req_id: str | None) -> Control:
        return Control(self.reply(op, ret_msg, req_id, success=False), is_error=True)

    # -- requests ---------------------------------------------------------------------------
    def handle(self, text: str | bytes) -> Control:
        try:
            obj = _decoder.decode(text)
        except msgspec.DecodeError:
            return self._error("", "error:invalid op", None)
        if not isinstance(obj, dict):
            return self._error("", "error:invalid op", None)
        op = obj.get("op")
        raw_id = obj.get("req_id")
        rid = raw_id if isinstance(raw_id, str) else (
            str(raw_id) if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None)
        echo = rid if rid is not None else ""  # linear echoes "" when no id was sent
        if op == schemas.PING:
            if self.spot:
                return Control(self.reply(schemas.PING, "pong", None))
            return Control(self.reply(schemas.PING, "pong", echo))
        if op not in (schemas.SUBSCRIBE, schemas.UNSUBSCRIBE):
            return self._error(str(op)[:30] if op is not None else "", "error:invalid op", rid)
        args = obj.get("args")
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            return self._error(op, "Params Error", echo)
        if self.max_args_per_request is not None and len(args) > self.max_args_per_request:
            return self._error(op, f"args size >{self.max_args_per_request}", echo)
        for name in args:
            if parse_topic(name) is None or not self._valid(name):
                return self._error(op, f"Invalid topic: {name[:80]}", echo)
        ack = self.reply(op, "subscribe" if self.spot and op == schemas.SUBSCRIBE else "", echo)
        if op == schemas.UNSUBSCRIBE:
            removed = tuple(dict.fromkeys(a for a in args if a in self.subscriptions))
            for name in removed:
                del self.subscriptions[name]
                self._chars -= len(name) + 3
            return Control(ack, removed=removed)
        added = tuple(dict.fromkeys(a for a in args if a not in self.subscriptions))
        chars = self._chars + sum(len(a) + 3 for a in added)  # quotes and a comma each
        if chars > MAX_ARGS_CHARS or len(self.subscriptions) + len(added) > self.max_streams:
            return self._error(op, "args length exceeds the limit", echo)
        for name in added:
            self.subscriptions[name] = None
        self._chars = chars
        return Control(ack, added=added)
