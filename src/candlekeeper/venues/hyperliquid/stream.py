"""Sans-I/O Hyperliquid candle stream codec (§F.2-§F.5).

One subscription per message, ``{"method":"subscribe","subscription":{"type":"candle",
"coin":"BTC","interval":"1m"}}``; our stream name for it is ``candle:BTC:1m``. Hyperliquid
requests carry **no id**: the ``subscriptionResponse`` ack echoes the subscription, so the codec
remembers which request id last subscribed each stream name and answers the ack with it.

A push is ``{"channel":"candle","data":{...}}`` with ``data`` ONE object (the docs say an
array; a list is accepted too, every candle of it decoded, oldest first). Prices and volume are
strings, ``t``/``T``/``n`` numbers; ``n`` is the candle's trade count (``Candle.trades``).
**There is no closed flag**: every push is a forming candle (``closed=False``); the feed infers
a close from the first push with a later ``t`` and confirms it over REST
(``VenueSpec.closed_flag`` is False). Pushes come about once a second per stream, so each is
checked with ``candle_problem``.

Control frames: ``{"channel":"pong"}`` answers our ``{"method":"ping"}``;
``{"channel":"error","data":"<text>"}`` is an :class:`ErrorReply` (no id, code 0), except
"Already subscribed: {...}", which means the subscription is in place (an ack). An unknown coin
gets **no** error frame: the server closes the socket (the transport isolates the stream).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import close_time
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError
from candlekeeper.venues.checks import candle_problem, snippet
from candlekeeper.venues.contract import (
    Ack,
    ErrorReply,
    Frame,
    Heartbeat,
    Ignored,
    Malformed,
    Message,
    Pong,
    VenueSpec,
)
from candlekeeper.venues.hyperliquid import schemas, symbols
from candlekeeper.venues.hyperliquid.endpoints import PING_EVERY_S

#: the client's keep-alive (§F.5): the server closes after 60 s without sending anything
HEARTBEAT: Final = Heartbeat(payload='{"method":"ping"}', every_s=PING_EVERY_S, timeout_s=10.0,
                             idle_only=False)
STREAM_PREFIX: Final = "candle:"
#: candles accepted from one push (real pushes carry one)
MAX_CANDLES_PER_PUSH: Final = 100
#: distinct (coin, interval) pairs remembered by the hot path
_ROUTE_CACHE_MAX: Final = 10_000


def stream_name(symbol: str, interval: str) -> str:
    """``("BTC", "1m")`` -> ``candle:BTC:1m`` (the coin as the venue spells it)."""
    return f"{STREAM_PREFIX}{symbols.native(symbol)}:{interval}"


def parse_stream(name: str) -> tuple[str, str] | None:
    """``candle:BTC:1m`` -> ``("BTC", "1m")`` (the wire coin, our interval); None otherwise."""
    if not name.startswith(STREAM_PREFIX):
        return None
    coin, sep, interval = name[len(STREAM_PREFIX):].partition(":")
    if not sep or not coin or not interval or ":" in interval:
        return None
    return coin, interval


def subscription_of(name: str) -> schemas.Subscription:
    parsed = parse_stream(name)
    if parsed is None:
        raise ValueError(f"not a Hyperliquid candle stream: {name!r}")
    return schemas.Subscription(type="candle", coin=parsed[0], interval=parsed[1])


def wire_to_candle(venue: str, symbol: str, k: schemas.Candle) -> Candle:
    """Wire candle -> a forming ``Candle`` (the close time is ours; ``T`` is checked to equal
    it by the caller)."""
    return Candle(venue, symbol, k.i, k.t, close_time(k.t, k.i), k.o, k.h, k.l, k.c, k.v,
                  None, k.n, None, None, None, None, False, None, "ws")


def candle_to_wire(c: Candle, coin: str, trades: int) -> schemas.Candle:
    """``Candle`` -> wire candle (used by the simulator)."""
    return schemas.Candle(t=c.open_time, T=c.close_time, s=coin, i=c.interval, o=c.open_str,
                          c=c.close_str, h=c.high_str, l=c.low_str, v=c.volume_str, n=trades)


class HyperliquidStreamCodec:
    """Stream codec for ``hyperliquid-perp``."""

    heartbeat: Heartbeat | None = HEARTBEAT

    def __init__(self, spec: VenueSpec) -> None:
        self.spec = spec
        self.venue = spec.id
        self._push = msgspec.json.Decoder(schemas.CandlePush)
        self._any = msgspec.json.Decoder()
        self._encoder = msgspec.json.Encoder()
        self._intervals = frozenset(spec.intervals)
        #: (wire coin, interval) -> stream key
        self._routes: dict[tuple[str, str], StreamKey] = {}
        #: stream name -> id of the request that last (un)subscribed it (acks carry no id)
        self._sent: dict[str, int] = {}

    # -- names ------------------------------------------------------------------------------
    def native_symbol(self, symbol: str) -> str:
        return symbols.native(symbol)

    def stream_name(self, key: StreamKey) -> str:
        if key.interval not in self._intervals:
            raise ConfigError(f"{self.venue} has no interval {key.interval!r}")
        return stream_name(key.symbol, key.interval)

    # -- outgoing frames ----------------------------------------------------------------------
    def connect_url(self, base: str, streams: Sequence[str]) -> str:
        """The base URL itself: every subscription is a message."""
        return base

    def _request(self, method: str, streams: Sequence[str], request_id: int) -> str:
        if len(streams) != 1:
            raise ValueError(f"Hyperliquid takes one subscription per {method!r} message, "
                             f"got {len(streams)}")
        name = streams[0]
        sub = subscription_of(name)
        if len(self._sent) >= _ROUTE_CACHE_MAX:
            self._sent.clear()
        self._sent[name] = request_id
        return self._encoder.encode(schemas.Request(method=method, subscription=sub)).decode()

    def subscribe(self, streams: Sequence[str], request_id: int) -> str:
        return self._request(schemas.SUBSCRIBE, streams, request_id)

    def unsubscribe(self, streams: Sequence[str], request_id: int) -> str:
        return self._request(schemas.UNSUBSCRIBE, streams, request_id)

    # -- incoming frames ----------------------------------------------------------------------
    def decode(self, frame: Frame) -> Message | list[Message]:
        try:
            push = self._push.decode(frame)
        except (msgspec.DecodeError, ValueError):
            return self._decode_other(frame)
        if push.channel != schemas.CANDLE:
            return self._decode_other(frame)
        return self._candles([push.data], frame)

    def _route(self, coin: str, interval: str) -> StreamKey | None:
        key = self._routes.get((coin, interval))
        if key is None:
            symbol = symbols.of_coin(coin)
            if symbol is None or interval not in self._intervals:
                return None
            key = StreamKey(self.venue, symbol, interval)
            if len(self._routes) < _ROUTE_CACHE_MAX:
                self._routes[(coin, interval)] = key
        return key

    def _candles(self, rows: Sequence[schemas.Candle], frame: Frame) -> Message | list[Message]:
        if len(rows) > MAX_CANDLES_PER_PUSH:
            return Malformed(f"push with {len(rows)} candles", snippet(frame))
        out: list[Message] = []
        for k in sorted(rows, key=_open_time) if len(rows) > 1 else rows:
            key = self._route(k.s, k.i)
            if key is None:
                out.append(Malformed(f"unroutable candle {k.s[:40]!r} {k.i[:10]!r}",
                                     snippet(frame)))
                continue
            candle = wire_to_candle(self.venue, key.symbol, k)
            problem = candle_problem(candle)
            if problem is None and candle.close_time != k.T:
                problem = f"T {k.T} does not end the {k.i} candle opening at {k.t}"
            if problem is None and k.n < 0:
                problem = f"a negative trade count {k.n}"
            out.append(candle if problem is None
                       else Malformed(f"candle with {problem}", snippet(frame), key))
        if not out:
            return Malformed("candle push without candles", snippet(frame))
        return out[0] if len(out) == 1 else out

    def _decode_other(self, frame: Frame) -> Message | list[Message]:
        try:
            obj = self._any.decode(frame)
        except msgspec.DecodeError as exc:
            return Malformed(f"invalid JSON: {exc}", snippet(frame))
        except (ValueError, RecursionError) as exc:  # an integer too large to convert, say
            return Malformed(f"undecodable JSON: {exc}"[:200], snippet(frame))
        if not isinstance(obj, dict):
            return Malformed("frame is not a JSON object", snippet(frame))
        channel = obj.get("channel")
        data = obj.get("data")
        if channel == schemas.PONG:
            return Pong()
        if channel == schemas.SUBSCRIPTION_RESPONSE:
            return self._ack(data.get("subscription") if isinstance(data, dict) else None)
        if channel == schemas.ERROR:
            text = data[:300] if isinstance(data, str) else str(data)[:300]
            if text.startswith(schemas.ALREADY_SUBSCRIBED):
                try:
                    sub = msgspec.json.decode(text[len(schemas.ALREADY_SUBSCRIBED):])
                except (msgspec.DecodeError, ValueError, RecursionError):
                    sub = None
                return self._ack(sub)
            return ErrorReply(None, 0, text or "error without a message")
        if channel == schemas.CANDLE:
            return self._odd_push(data, frame)
        if isinstance(channel, str):
            return Ignored(channel[:60])
        return Malformed("unknown frame", snippet(frame))

    def _ack(self, sub: object) -> Message:
        """An ack (or "Already subscribed") for a candle subscription: the id we sent it with."""
        if not isinstance(sub, dict) or sub.get("type") != "candle":
            return Ignored("subscriptionResponse")
        coin, interval = sub.get("coin"), sub.get("interval")
        if not isinstance(coin, str) or not isinstance(interval, str):
            return Ignored("subscriptionResponse")
        return Ack(self._sent.get(f"{STREAM_PREFIX}{coin}:{interval}"))

    def _odd_push(self, data: Any, frame: Frame) -> Message | list[Message]:
        """A candle push the typed decoder refused: the documented array shape, or a wrong
        type somewhere (each candle is read on its own)."""
        rows = data if isinstance(data, list) else [data]
        if not rows:
            return Malformed("candle push without candles", snippet(frame))
        if len(rows) > MAX_CANDLES_PER_PUSH:
            return Malformed(f"push with {len(rows)} candles", snippet(frame))
        good: list[schemas.Candle] = []
        bad: list[Message] = []
        for row in rows:
            try:
                good.append(msgspec.convert(row, schemas.Candle))
            except msgspec.ValidationError as exc:
                key = None
                if isinstance(row, dict) and isinstance(row.get("s"), str) \
                        and isinstance(row.get("i"), str):
                    key = self._route(row["s"], row["i"])
                bad.append(Malformed(f"bad candle: {exc}"[:200], snippet(frame), key))
        if not good:
            return bad[0] if len(bad) == 1 else bad
        out = self._candles(good, frame)
        if not bad:
            return out
        return [*bad, *(out if isinstance(out, list) else [out])]


def _open_time(k: schemas.Candle) -> int:
    return k.t
