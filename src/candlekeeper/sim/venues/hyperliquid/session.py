"""Hyperliquid WebSocket protocol for one simulated connection, Sans-I/O (§F.2-§F.6).

:class:`HyperliquidSession` turns one incoming text frame into the reply payload and the
subscription changes. Payloads are encoded with the client's own wire Structs
(``venues.hyperliquid.schemas``), so the simulator and the codec cannot drift apart silently.

What the sources show, reproduced:

* ``{"method":"ping"}`` -> ``{"channel":"pong"}``;
* a candle subscribe -> ``{"channel":"subscriptionResponse","data":{"method":"subscribe",
  "subscription":{...}}}`` echoing the subscription, before the first push;
* a second subscribe of the same subscription -> ``{"channel":"error","data":"Already
  subscribed: {...}"}``; a frame that is no valid request (bad JSON, a ``coin`` array) ->
  ``"Error parsing JSON into valid websocket request: <frame>"``; the socket stays open;
* **an unknown coin gets no answer: the server drops the socket** (close 1006, no close frame,
  within ~100 ms in the probe), ending every stream on it (``Control.drop``).

Inferences (docs/simulator.md): an interval the venue does not serve gets the parse error (its
``interval`` is an enum); an unsubscribe of something not subscribed is acknowledged and changes
nothing; more than ``max_streams`` subscriptions on a connection get an error frame (the limit
is 1000 per IP; this simulator counts per connection); subscribe messages beyond
:data:`BURST_PER_S` in one wall second are **silently ignored** — no ack, no candles (the
third-party note "over-fast subscriptions were silently rejected", §F.6).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.sim.framing import TEXT, ws_frame
from candlekeeper.sim.personality import Control
from candlekeeper.venues.hyperliquid import schemas
from candlekeeper.venues.hyperliquid.stream import STREAM_PREFIX, candle_to_wire

#: subscribe messages one connection may send in a wall second before the rest are ignored
BURST_PER_S: Final = 20
PARSE_ERROR: Final = "Error parsing JSON into valid websocket request: "
PONG: Final = msgspec.json.encode(schemas.ChannelOnly(channel=schemas.PONG))
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def error_payload(text: str) -> bytes:
    return _encoder.encode(schemas.ErrorFrame(channel=schemas.ERROR, data=text))


def push_payload(coin: str, candle: Candle, trades: int) -> bytes:
    """``{"channel":"candle","data":{"t","T","s","i","o","c","h","l","v","n"}}``."""
    return _encoder.encode(schemas.CandlePush(channel=schemas.CANDLE,
                                              data=candle_to_wire(candle, coin, trades)))


def malformed_frames(stream: str) -> list[bytes]:
    """What the ``malformed`` fault sends: broken JSON, wrong types (numbers where strings
    belong, a string time), an empty ``data`` list, a truncated push, a push off the grid."""
    coin, _, interval = stream.removeprefix(STREAM_PREFIX).partition(":")
    c, i = coin.encode(), interval.encode()
    bodies = [
        b"not json at all",
        b'{"channel":"candle","data":{"t":oops}}',
        b'{"channel":"candle","data":{"t":"soon","T":1,"s":"' + c + b'","i":"' + i +
        b'","o":1,"c":2,"h":3,"l":4,"v":5,"n":"x"}}',
        b'{"channel":"candle","data":[]}',
        b'{"channel":"candle","data":{"t":1700000000000,"T":',
        b'{"channel":"candle","data":{"t":1700000000001,"T":1700000060000,"s":"' + c +
        b'","i":"' + i + b'","o":"1","c":"1","h":"1","l":"1","v":"1","n":1}}',
        b"[]",
    ]
    return [ws_frame(TEXT, b) for b in bodies]


class HyperliquidSession:
    """Subscription state of one ``/ws`` connection."""

    combined = False  # one framing; kept for the server's FrameSink protocol

    def __init__(self, is_valid_stream: Callable[[str], bool], *, intervals: frozenset[str],
                 max_streams: int, wall: Callable[[], float] = time.monotonic) -> None:
        self.max_streams = max_streams
        self.intervals = intervals
        self._valid = is_valid_stream
        self._wall = wall
        self._recent: deque[float] = deque()
        self.subscriptions: dict[str, None] = {}
        #: subscribes ignored for arriving too fast (no ack, no candles)
        self.ignored = 0

    def open_with(self, streams: tuple[str, ...]) -> tuple[str, ...] | str:
        """Hyperliquid URLs name no subscriptions; everything is subscribed live."""
        return "Hyperliquid takes no subscriptions in the URL" if streams else ()

    def handle(self, text: str | bytes) -> Control:
        raw = text if isinstance(text, str) else text.decode("utf-8", "replace")
        try:
            obj = _decoder.decode(text)
        except msgspec.DecodeError:
            return self._error(PARSE_ERROR + raw[:200])
        if not isinstance(obj, dict):
            return self._error(PARSE_ERROR + raw[:200])
        method = obj.get("method")
        if method == schemas.PING:
            return Control(PONG)
        sub = obj.get("subscription")
        if method not in (schemas.SUBSCRIBE, schemas.UNSUBSCRIBE) or not isinstance(sub, dict):
            return self._error(PARSE_ERROR + raw[:200])
        coin, interval = sub.get("coin"), sub.get("interval")
        if sub.get("type") != "candle" or not isinstance(coin, str) \
                or not isinstance(interval, str) or interval not in self.intervals:
            return self._error(PARSE_ERROR + raw[:200])
        name = f"{STREAM_PREFIX}{coin}:{interval}"
        if not self._valid(name):
            return Control(b"", drop=True)  # an unknown coin: the socket just closes
        echo = schemas.Subscription(type="candle", coin=coin, interval=interval)
        if method == schemas.UNSUBSCRIBE:
            removed: tuple[str, ...] = ()
            if name in self.subscriptions:
                del self.subscriptions[name]
                removed = (name,)
            return Control(self._ack(method, echo), removed=removed)
        if self._too_fast():
            self.ignored += 1
            return Control(b"")  # silently ignored: nothing is sent
        if name in self.subscriptions:
            return self._error(schemas.ALREADY_SUBSCRIBED + _encoder.encode(echo).decode())
        if len(self.subscriptions) >= self.max_streams:
            return self._error(f"Cannot track more than {self.max_streams} total "
                               "subscriptions")
        self.subscriptions[name] = None
        return Control(self._ack(method, echo), added=(name,))

    def _too_fast(self) -> bool:
        now = self._wall()
        recent = self._recent
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        recent.append(now)
        return len(recent) > BURST_PER_S

    @staticmethod
    def _ack(method: str, sub: schemas.Subscription) -> bytes:
        return _encoder.encode(schemas.SubscriptionResponse(
            channel=schemas.SUBSCRIPTION_RESPONSE,
            data=schemas.SubscriptionAck(method=method, subscription=sub)))

    @staticmethod
    def _error(text: str) -> Control:
        return Control(error_payload(text), is_error=True)
