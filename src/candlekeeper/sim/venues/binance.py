"""Binance market-stream protocol for one simulated connection, Sans-I/O.

:func:`parse_ws_path` decides what a WebSocket URL means (protocols.md §A.1, §A.2, §B.1) and
:class:`WsSession` is the per-connection state machine for the live control messages of §A.3
(SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY) plus the incoming
message-rate limit of §A.5/§B.3. It turns an incoming text frame into the reply frame and the
subscription changes; the server moves the bytes.

Error frames are the real wire shape ``{"error":{"code":..,"msg":".."},"id":..}`` (§A.3 [!]),
with the documented messages. Two messages are inferences, since no source quotes them: the
stream-cap error (the real exchange refuses a subscription beyond 1024 streams, wording unknown)
and the missing-``params`` message (serde's usual wording).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from candlekeeper.sim.venues.common import Control, WsPath
from candlekeeper.venues.binance import schemas

__all__ = ["Control", "RateLimiter", "WsPath", "WsSession", "error_frame", "is_kline_stream",
           "parse_ws_path", "result_frame"]

USDM = "binance-usdm"
SPOT = "binance-spot"
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_U64 = (1 << 64) - 1

INVALID_STREAM = "Invalid request: invalid stream"
BAD_ID = "Invalid request: request ID must be an unsigned integer"
BAD_ID_SPOT = ("Invalid request: request ID must be an unsigned integer, a string of at most "
               "36 characters, or null")
TOO_MANY_PARAMS = "Invalid request: too many parameters"
PROPERTY_NOT_STRING = "Invalid request: property name must be a string"
UNKNOWN_PROPERTY = "Unknown property"
EXPECTED_BOOLEAN = "Invalid value type: expected Boolean"


def parse_ws_path(venue: str, path: str, query: Mapping[str, str],
                  legacy_routes_push_klines: bool = False) -> WsPath | None:
    """``None`` when the path is not a market-stream endpoint (the server answers 404).

    USDⓈ-M: ``/market/ws/<s>...``, ``/market/stream?streams=a/b``, ``/market/stream``; the
    unrouted ``/ws`` and ``/stream`` (and the ``/public`` route) accept connections and
    subscriptions but carry no kline data (BF-WS, BF-NOTICE). Spot: ``/ws/...`` and
    ``/stream...`` (§B.1).
    """
    routed = True
    if venue == USDM:
        for prefix in ("/market", "/public", "/private"):
            if path == prefix or path.startswith(prefix + "/"):
                routed = prefix == "/market"
                path = path[len(prefix):] or "/"
                break
        else:
            routed = legacy_routes_push_klines
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    kind, rest = parts[0], parts[1:]
    if kind == "ws":
        return WsPath(False, routed, tuple(rest))
    if kind == "stream" and not rest:
        raw = query.get("streams", "")
        return WsPath(True, routed, tuple(s for s in raw.split("/") if s))
    return None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def result_frame(result: object, request_id: object) -> bytes:
    return _encoder.encode(schemas.ResultReply(result, request_id))  # type: ignore[arg-type]


def error_frame(code: int, msg: str, request_id: object = None) -> bytes:
    return _encoder.encode(
        schemas.ErrorReply(schemas.ErrorBody(code, msg), request_id))  # type: ignore[arg-type]


class RateLimiter:
    """Incoming messages per rolling second (§A.5: 10 usdm; §B.3: 5 spot). Text frames, pings
    and pongs all count. Over the limit the connection is closed."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self._times: deque[float] = deque()

    def allow(self, now_s: float) -> bool:
        times = self._times
        while times and now_s - times[0] >= 1.0:
            times.popleft()
        times.append(now_s)
        return len(times) <= self.per_second


class WsSession:
    """Subscription state of one connection."""

    def __init__(self, venue: str, is_valid_stream: Callable[[str], bool], *, combined: bool,
                 max_streams: int = 1024) -> None:
        self.venue = venue
        self.spot = venue == SPOT
        self.combined = combined
        self.max_streams = max_streams
        self._valid = is_valid_stream
        self.subscriptions: dict[str, None] = {}

    def open_with(self, streams: tuple[str, ...]) -> tuple[str, ...] | str:
        """Subscribe the streams named in the URL; an error message if any is invalid."""
        bad = [s for s in streams if not self._valid(s)]
        if bad:
            return f"invalid stream {bad[0]!r}"
        if len(set(streams)) > self.max_streams:
            return f"too many streams: {len(streams)} > {self.max_streams} per connection"
        for s in streams:
            self.subscriptions[s] = None
        return tuple(self.subscriptions)

    def handle(self, text: str | bytes) -> Control:
        try:
            obj = _decoder.decode(text)
        except msgspec.DecodeError as exc:
            return self._error(3, f"Invalid JSON: {_json_position(str(exc), len(text))}", None)
        raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        if not isinstance(obj, dict):
            return self._error(2, "Invalid request: invalid type: expected struct Request at "
                               f"line 1 column {len(raw)}", None)
        if "method" not in obj:
            return self._error(2, f"Invalid request: missing field `method` at line 1 column "
                               f"{len(raw)}", _echo(obj.get("id")))
        method = obj["method"]
        if method not in METHODS:
            token = msgspec.json.encode(method).decode()
            column = raw.find(token) + len(token) if isinstance(method, str) else len(raw)
            expected = ", ".join(f"`{m}`" for m in METHODS)
            return self._error(2, f"Invalid request: unknown variant `{method}`, expected one of "
                               f"{expected} at line 1 column {column}", _echo(obj.get("id")))
        rid = obj.get("id")
        if not self._valid_id(rid):
            return self._error(2, BAD_ID_SPOT if self.spot else BAD_ID, None)
        params = obj.get("params")
        handler = getattr(self, "_" + method.lower())
        result: Control = handler(rid, params)
        return result

    # -- methods ----------------------------------------------------------------------------
    def _streams(self, rid: Any, params: Any) -> list[str] | Control:
        if params is None:
            return self._error(2, "Invalid request: missing field `params`", rid)
        if not isinstance(params, list):
            return self._error(2, "Invalid request: invalid type: expected a sequence", rid)
        if not all(isinstance(p, str) and self._valid(p) for p in params):
            return self._error(2, INVALID_STREAM, rid)
        return list(dict.fromkeys(params))

    def _subscribe(self, rid: Any, params: Any) -> Control:
        streams = self._streams(rid, params)
        if isinstance(streams, Control):
            return streams
        new = [s for s in streams if s not in self.subscriptions]
        if len(self.subscriptions) + len(new) > self.max_streams:
            return self._error(2, f"Invalid request: too many streams: at most {self.max_streams}"
                               " per connection", rid)
        for s in new:
            self.subscriptions[s] = None
        return Control(result_frame(None, rid), added=tuple(new))

    def _unsubscribe(self, rid: Any, params: Any) -> Control:
        streams = self._streams(rid, params)
        if isinstance(streams, Control):
            return streams
        gone = [s for s in streams if s in self.subscriptions]
        for s in gone:
            del self.subscriptions[s]
        return Control(result_frame(None, rid), removed=tuple(gone))

    def _list_subscriptions(self, rid: Any, params: Any) -> Control:
        if params:
            return self._error(2, TOO_MANY_PARAMS, rid)
        return Control(result_frame(list(self.subscriptions), rid))

    def _property(self, rid: Any, params: Any, arity: int) -> str | Control:
        if not isinstance(params, list) or not params:
            return self._error(2, PROPERTY_NOT_STRING, rid)
        if len(params) > arity:
            return self._error(2, TOO_MANY_PARAMS, rid)
        name = params[0]
        if not isinstance(name, str):
            return self._error(2, PROPERTY_NOT_STRING, rid)
        if name != "combined":
            return self._error(0, UNKNOWN_PROPERTY, rid)
        return name

    def _set_property(self, rid: Any, params: Any) -> Control:
        name = self._property(rid, params, 2)
        if isinstance(name, Control):
            return name
        if len(params) < 2 or not isinstance(params[1], bool):
            return self._error(1, EXPECTED_BOOLEAN, rid)
        self.combined = params[1]
        return Control(result_frame(None, rid))

    def _get_property(self, rid: Any, params: Any) -> Control:
        name = self._property(rid, params, 1)
        if isinstance(name, Control):
            return name
        return Control(result_frame(self.combined, rid))

    # -- helpers ----------------------------------------------------------------------------
    def _valid_id(self, rid: Any) -> bool:
        if isinstance(rid, int) and not isinstance(rid, bool):
            return 0 <= rid <= _U64
        if self.spot:
            return rid is None or (isinstance(rid, str) and len(rid) <= 36)
        return False

    def _error(self, code: int, msg: str, rid: Any) -> Control:
        return Control(error_frame(code, msg, rid), is_error=True)


def _echo(rid: Any) -> Any:
    return rid if isinstance(rid, int | str) and not isinstance(rid, bool) else None


def _json_position(message: str, length: int) -> str:
    """msgspec says "... (byte 1)"; the exchange (serde) says "expected value at line 1
    column 2" (1-based)."""
    column = length + 1  # truncated input: the error is at the end
    if "(byte " in message:
        digits = message.rsplit("(byte ", 1)[1].split(")")[0]
        if digits.isdigit():
            column = int(digits) + 1
    return f"expected value at line 1 column {column}"


def is_kline_stream(name: str) -> tuple[str, str] | None:
    """``btcusdt@kline_1m`` -> ``("BTCUSDT", "1m")``; stream names use lowercase symbols."""
    symbol, sep, interval = name.partition("@kline_")
    if not sep or not symbol or not interval or symbol != symbol.lower():
        return None
    return symbol.upper(), interval
