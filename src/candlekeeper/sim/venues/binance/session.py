"""Binance market-stream protocol for one simulated connection, Sans-I/O.

:func:`parse_ws_path` decides what a WebSocket URL means (protocols.md §A.1, §A.2, §B.1) and
:class:`WsSession` is the per-connection state machine for the live control messages of §A.3
(SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY). It turns an incoming
text frame into the reply frame and the subscription changes; the server moves the bytes (and
enforces the incoming-message rate of §A.5/§B.3, a generic limit).

A name in a ``/ws/<name>`` URL that is no servable stream is accepted and ignored, not refused:
ccxt numbers its connections ``/ws/0``, ``/ws/1``, ... and subscribes live afterwards, which the
real exchange accepts; refusing the handshake would make the simulator stricter than Binance.

Error frames are the real wire shape ``{"error":{"code":..,"msg":".."},"id":..}`` (§A.3 [!]),
with the documented messages. Two messages are inferences, since no source quotes them: the
stream-cap error (the real exchange refuses a subscription beyond 1024 streams, wording unknown)
and the missing-``params`` message (serde's usual wording).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from candlekeeper.sim.personality import Control, WsPath
from candlekeeper.venues.binance import schemas

__all__ = ["Control", "WsPath", "WsSession", "error_frame", "is_kline_stream", "parse_ws_path",
           "result_frame"]

#: the routes of a routed stream host (§A.1): only the first carries klines
ROUTES = ("/market", "/public", "/private")
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


def parse_ws_path(kline_route: str, path: str, query: Mapping[str, str],
                  legacy_routes_push_klines: bool = False) -> WsPath | None:
    """``None`` when the path is not a market-stream endpoint (the server answers 404).

    ``kline_route`` is the path of the venue's ``ws_base`` (``/market`` on USDⓈ-M, empty on
    spot). A routed venue serves ``/market/ws/<s>...``, ``/market/stream?streams=a/b``,
    ``/market/stream``; its unrouted ``/ws`` and ``/stream`` (and the ``/public`` route) accept
    connections and subscriptions but carry no kline data (BF-WS, BF-NOTICE). An unrouted venue
    (spot) serves ``/ws/...`` and ``/stream...`` (§B.1).
    """
    routed = True
    if kline_route:
        for prefix in ROUTES:
            if path == prefix or path.startswith(prefix + "/"):
                routed = prefix == kline_route
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


class WsSession:
    """Subscription state of one connection."""

    def __init__(self, is_valid_stream: Callable[[str], bool], *, combined: bool,
                 max_streams: int = 1024, string_ids: bool = False) -> None:
        #: spot also accepts string ids of at most 36 characters and null (§A.3)
        self.string_ids = string_ids
        self.combined = combined
        self.max_streams = max_streams
        self._valid = is_valid_stream
        self.subscriptions: dict[str, None] = {}

    def open_with(self, streams: tuple[str, ...]) -> tuple[str, ...] | str:
        """Subscribe the streams named in the URL; names that are no servable stream are
        ignored (see the module docstring). Too many streams refuse the handshake."""
        streams = tuple(s for s in streams if self._valid(s))
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
            return self._error(2, BAD_ID_SPOT if self.string_ids else BAD_ID, None)
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
        if self.string_ids:
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
