"""Sans-I/O Bybit v5 kline stream codec, linear and spot (§D.2-§D.5).

Topics are ``kline.<interval>.<SYMBOL>`` (``kline.1.BTCUSDT``), subscribed live on
``/v5/public/linear`` or ``/v5/public/spot``. A push carries a ``data`` **array** and **every**
candle in it becomes a ``Candle``, oldest first: a frame that ships the closing bar and the
newly opened one together (reported on the hour) must lose neither. ``confirm: true`` marks the
closed candle; it is checked with ``candle_problem`` like every candle here (pushes come at
most once a second per topic).

Control answers share one envelope: ``{"success":…,"ret_msg":…,"conn_id":…,"req_id":…,
"op":…}``. ``op: "ping"`` with ``ret_msg: "pong"`` is the pong (``op: "pong"`` on other Bybit
markets, and ``{"pong": ms}`` seen by ccxt: all accepted); ``success: false`` is a refusal
(Bybit sends no error code, so :class:`ErrorReply` carries code 0 and the text); any other
``success: true`` answer to a subscribe or unsubscribe is its ack. Like pybit, any answer whose
``ret_msg`` is ``"pong"`` is a pong (older frames name the op in a ``request`` object). We
send ``req_id`` as the decimal string of our integer id and read it back as that integer.

``turnover`` is kept as the candle's quote volume (docs/venues.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.core.symbols import normalize_symbol
from candlekeeper.errors import ConfigError
from candlekeeper.venues.bybit import schemas
from candlekeeper.venues.bybit.endpoints import (
    INTERVAL_NAMES,
    INTERVALS_BY_NAME,
    KLINE_PREFIX,
    PING_EVERY_S,
)
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

#: candles accepted from one push (real pushes carry one or two)
MAX_CANDLES_PER_PUSH: Final = 100
#: distinct topics remembered by the hot path (bounded: a server cannot grow it forever)
_TOPIC_CACHE_MAX: Final = 10_000
#: the client's keep-alive: every 20 s (§D.5); pybit waits 10 s for the answer
HEARTBEAT: Final = Heartbeat(payload='{"op":"ping"}', every_s=PING_EVERY_S, timeout_s=10.0,
                             idle_only=False)


def native_symbol(symbol: str) -> str:
    """Any user form (``BTC-USDT``, ``BTC/USDT:USDT``, ``btcusdt``) -> ``BTCUSDT``."""
    return normalize_symbol(symbol)


def topic(symbol: str, interval: str) -> str:
    """``("BTCUSDT", "1h")`` -> ``kline.60.BTCUSDT``; ConfigError for an interval Bybit lacks."""
    name = INTERVAL_NAMES.get(interval)
    if name is None:
        raise ConfigError(f"Bybit has no interval {interval!r}; it serves "
                          f"{', '.join(INTERVAL_NAMES)}")
    return f"{KLINE_PREFIX}{name}.{native_symbol(symbol)}"


def parse_topic(name: str) -> tuple[str, str] | None:
    """``kline.60.BTCUSDT`` -> ``("BTCUSDT", "1h")``; None when it is no kline topic."""
    if not name.startswith(KLINE_PREFIX):
        return None
    interval, dot, symbol = name[len(KLINE_PREFIX):].partition(".")
    ours = INTERVALS_BY_NAME.get(interval)
    if not dot or ours is None or not symbol or symbol != symbol.upper() or "." in symbol:
        return None
    try:
        return normalize_symbol(symbol), ours
    except ConfigError:
        return None


def kline_to_candle(venue: str, key: StreamKey, k: schemas.KlineIn, ts: int) -> Candle:
    """Wire kline -> ``Candle``; ``end`` is kept as the close time so ``candle_problem`` checks
    it; ``turnover`` is the quote volume. Bybit sends no trade count, taker volumes or trade
    ids."""
    return Candle(venue, key.symbol, key.interval, k.start, k.end, k.open, k.high, k.low,
                  k.close, k.volume, k.turnover, None, None, None, None, None, k.confirm, ts,
                  "ws")


def candle_to_kline(c: Candle, turnover: str, last_trade_ms: int) -> schemas.Kline:
    """``Candle`` -> wire kline (used by the simulator)."""
    return schemas.Kline(start=c.open_time, end=c.close_time,
                         interval=INTERVAL_NAMES[c.interval], open=c.open_str,
                         close=c.close_str, high=c.high_str, low=c.low_str,
                         volume=c.volume_str, turnover=turnover, confirm=c.closed,
                         timestamp=last_trade_ms)


def request_id(value: object) -> int | str | None:
    """A reply's ``req_id`` as we sent it: our ids are ints sent as decimal strings; ``""``
    (the linear market's echo of no id) is None; anything else is kept as bounded text."""
    if isinstance(value, str):
        if value.isascii() and value.isdigit() and len(value) <= 18:
            return int(value)
        return value[:64] or None
    if isinstance(value, int) and not isinstance(value, bool):
        return value if abs(value) < 1 << 62 else str(value)[:64]
    return None if value is None else str(value)[:64]


class BybitStreamCodec:
    """Stream codec for ``bybit-linear`` and ``bybit-spot`` (they differ in data only)."""

    heartbeat: Heartbeat | None = HEARTBEAT

    def __init__(self, spec: VenueSpec) -> None:
        self.spec = spec
        self.venue = spec.id
        self._push = msgspec.json.Decoder(schemas.KlinePushIn)
        self._any = msgspec.json.Decoder()
        self._encoder = msgspec.json.Encoder()
        self._intervals = frozenset(spec.intervals)
        self._topics: dict[str, StreamKey] = {}

    # -- names ------------------------------------------------------------------------------
    def native_symbol(self, symbol: str) -> str:
        return native_symbol(symbol)

    def stream_name(self, key: StreamKey) -> str:
        if key.interval not in self._intervals:
            raise ConfigError(f"{self.venue} has no interval {key.interval!r}")
        return topic(key.symbol, key.interval)

    # -- outgoing frames ----------------------------------------------------------------------
    def connect_url(self, base: str, streams: Sequence[str]) -> str:
        """The base URL itself: every topic is subscribed live."""
        return base

    def _request(self, op: str, streams: Sequence[str], request_id: int) -> str:
        if len(streams) > self.spec.max_streams_per_subscribe:
            raise ValueError(f"{self.venue} takes at most {self.spec.max_streams_per_subscribe}"
                             f" args per {op!r}, got {len(streams)}")
        return self._encoder.encode(
            schemas.Request(op=op, req_id=str(request_id), args=list(streams))).decode()

    def subscribe(self, streams: Sequence[str], request_id: int) -> str:
        """``{"op":"subscribe","req_id":"7","args":["kline.1.BTCUSDT"]}``."""
        return self._request(schemas.SUBSCRIBE, streams, request_id)

    def unsubscribe(self, streams: Sequence[str], request_id: int) -> str:
        return self._request(schemas.UNSUBSCRIBE, streams, request_id)

    # -- incoming frames ----------------------------------------------------------------------
    def decode(self, frame: Frame) -> Message | list[Message]:
        try:
            push = self._push.decode(frame)
        except (msgspec.DecodeError, ValueError):
            return self._decode_other(frame)
        key = self._route(push.topic)
        if key is None:
            if push.topic.startswith(KLINE_PREFIX):
                return Malformed(f"unroutable kline topic {push.topic[:60]!r}", snippet(frame))
            return Ignored(push.topic[:60])
        return self._candles(key, push.data, push.ts, frame)

    def _route(self, name: str) -> StreamKey | None:
        key = self._topics.get(name)
        if key is None:
            parsed = parse_topic(name)
            if parsed is None or parsed[1] not in self._intervals:
                return None
            key = StreamKey(self.venue, *parsed)
            if len(self._topics) < _TOPIC_CACHE_MAX:
                self._topics[name] = key
        return key

    def _candles(self, key: StreamKey, klines: Sequence[schemas.KlineIn], ts: int,
                 frame: Frame) -> Message | list[Message]:
        """Every candle of a push, oldest first; a bad one is ``Malformed`` (with its stream
        key, so the feed fetches it over REST), the others still count."""
        if not klines:
            return Malformed("kline push without candles", snippet(frame), key)
        if len(klines) > MAX_CANDLES_PER_PUSH:
            return Malformed(f"push with {len(klines)} candles", snippet(frame), key)
        wire_interval = INTERVAL_NAMES[key.interval]
        out: list[Message] = []
        for k in sorted(klines, key=_start) if len(klines) > 1 else klines:
            if k.interval != wire_interval:
                out.append(Malformed(f"kline interval {k.interval[:10]!r} on topic of "
                                     f"{wire_interval!r}", snippet(frame), key))
                continue
            candle = kline_to_candle(self.venue, key, k, ts)
            problem = candle_problem(candle)
            out.append(candle if problem is None
                       else Malformed(f"kline with {problem}", snippet(frame), key))
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
        op = obj.get("op")
        ret_msg = obj.get("ret_msg")
        text = ret_msg[:300] if isinstance(ret_msg, str) else ""
        if op == schemas.PONG or "pong" in obj or text == "pong":
            return Pong()
        success = obj.get("success")
        if success is False:
            rid = request_id(obj.get("req_id"))
            return ErrorReply(rid, 0, text or "refused without a message")
        if success is True and op in (schemas.SUBSCRIBE, schemas.UNSUBSCRIBE):
            return Ack(request_id(obj.get("req_id")))
        name = obj.get("topic")
        if isinstance(name, str):
            if name.startswith(KLINE_PREFIX):
                return self._odd_push(obj, name, frame)
            return Ignored(name[:60])
        if success is True:
            return Ignored(f"op {str(op)[:30]}")
        return Malformed("unknown frame", snippet(frame))


    def _odd_push(self, obj: dict[str, Any], name: str, frame: Frame) -> Message | list[Message]:
        """A kline push the typed decoder refused (a wrong type somewhere): each candle of
        ``data`` is read on its own, so one bad candle does not hide the others."""
        key = self._route(name)
        if key is None:
            return Malformed(f"unroutable kline topic {name[:60]!r}", snippet(frame))
        rows = obj.get("data")
        if not isinstance(rows, list) or not rows:
            return Malformed("kline push without candles", snippet(frame), key)
        if len(rows) > MAX_CANDLES_PER_PUSH:
            return Malformed(f"push with {len(rows)} candles", snippet(frame), key)
        ts = obj.get("ts")
        ts = ts if isinstance(ts, int) and not isinstance(ts, bool) and 0 <= ts < 1 << 62 else 0
        good: list[schemas.KlineIn] = []
        bad: list[Message] = []
        for row in rows:
            try:
                good.append(msgspec.convert(row, schemas.KlineIn))
            except msgspec.ValidationError as exc:
                bad.append(Malformed(f"bad kline: {exc}"[:200], snippet(frame), key))
        if not good:
            return bad[0] if len(bad) == 1 else bad
        out = self._candles(key, good, ts, frame)
        return [*bad, *(out if isinstance(out, list) else [out])]


def _start(k: schemas.KlineIn) -> int:
    return k.start
