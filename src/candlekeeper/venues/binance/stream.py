"""Sans-I/O Binance kline stream codec, shared by USDⓈ-M futures and spot.

The hot path decodes a combined kline frame straight into typed Structs (one C call) and builds a
``Candle``; anything that does not fit that shape falls back to a generic decode that classifies
acks, error frames, shutdown notices and raw (``/ws``) frames. Malformed input becomes a
``Malformed`` message; it is never raised. A *closed* candle (``x:true``, one per stream and
interval) is also checked for impossible values (:func:`~candlekeeper.venues.contract.
candle_problem`); a bad one is ``Malformed`` with its stream key, so the feed fetches that candle
over REST instead.

Binance needs no application heartbeat: its server sends RFC 6455 pings the transport answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError
from candlekeeper.venues.binance import schemas
from candlekeeper.venues.checks import candle_problem, snippet
from candlekeeper.venues.contract import (
    Ack,
    ErrorReply,
    Frame,
    Heartbeat,
    Ignored,
    Malformed,
    Message,
    ServerShutdown,
    VenueSpec,
)

KLINE_TAG = "@kline_"


def kline_to_candle(venue: str, k: schemas.Kline, event_time: int | None,
                    source: str = "ws") -> Candle:
    """Wire kline -> ``Candle`` (positional for speed; order matches ``Candle``'s fields)."""
    return Candle(venue, k.s, k.i, k.t, k.T, k.o, k.h, k.l, k.c, k.v, k.q, k.n, k.V, k.Q,
                  k.f, k.L, k.x, event_time, source)  # type: ignore[arg-type]


def candle_to_kline(c: Candle) -> schemas.Kline:
    """``Candle`` -> wire kline (used by the simulator; fields REST lacks become 0 / -1)."""
    return schemas.Kline(
        t=c.open_time, T=c.close_time, s=c.symbol, i=c.interval,
        f=c.first_trade_id if c.first_trade_id is not None else -1,
        L=c.last_trade_id if c.last_trade_id is not None else -1,
        o=c.open_str, c=c.close_str, h=c.high_str, l=c.low_str, v=c.volume_str,
        n=c.trades or 0, x=c.closed,
        q=c.quote_volume_str if c.quote_volume_str is not None else "0",
        V=c.taker_buy_base_volume_str if c.taker_buy_base_volume_str is not None else "0",
        Q=c.taker_buy_quote_volume_str if c.taker_buy_quote_volume_str is not None else "0",
        B="0",
    )


def native_symbol(symbol: str) -> str:
    """Any user form -> ``BTCUSDT`` (Binance writes symbols without a separator)."""
    return symbol.partition(":")[0].replace("-", "").replace("/", "").replace("_", "").upper()


def stream_key(venue: str, stream_name: str) -> StreamKey | None:
    """``btcusdt@kline_1m`` -> the stream's key; None when it is no kline stream name."""
    symbol, sep, interval = stream_name.partition(KLINE_TAG)
    if not sep or not symbol or not interval:
        return None
    return StreamKey(venue, symbol.upper(), interval)


class BinanceStreamCodec:
    """Stream codec for one Binance venue (``BINANCE_USDM`` or ``BINANCE_SPOT``)."""

    heartbeat: Heartbeat | None = None

    def __init__(self, spec: VenueSpec) -> None:
        self.spec = spec
        self.venue = spec.id
        self._combined = msgspec.json.Decoder(schemas.CombinedKline)
        self._any = msgspec.json.Decoder()
        self._encoder = msgspec.json.Encoder()
        self._intervals = frozenset(spec.intervals)

    # -- names ------------------------------------------------------------------------------
    def native_symbol(self, symbol: str) -> str:
        return native_symbol(symbol)

    def stream_name(self, key: StreamKey) -> str:
        if key.interval not in self._intervals:
            raise ConfigError(f"{self.venue} has no interval {key.interval!r}")
        return f"{key.symbol.lower()}{KLINE_TAG}{key.interval}"

    # -- outgoing frames ----------------------------------------------------------------------
    def connect_url(self, base: str, streams: Sequence[str]) -> str:
        """Combined-stream endpoint; streams are listed in the URL when given, else subscribed
        live after connecting (the URL would be too long for 1024 streams)."""
        base = base.rstrip("/")
        if streams:
            return f"{base}/stream?streams={'/'.join(streams)}"
        return f"{base}/stream"

    def _request(self, method: str, request_id: int, params: list[object] | None) -> str:
        return self._encoder.encode(schemas.Request(method, request_id, params)).decode()

    def subscribe(self, streams: Sequence[str], request_id: int) -> str:
        return self._request("SUBSCRIBE", request_id, list(streams))

    def unsubscribe(self, streams: Sequence[str], request_id: int) -> str:
        return self._request("UNSUBSCRIBE", request_id, list(streams))

    def list_subscriptions(self, request_id: int) -> str:
        return self._request("LIST_SUBSCRIPTIONS", request_id, None)

    # -- incoming frames ----------------------------------------------------------------------
    def decode(self, frame: Frame) -> Message:
        try:
            msg = self._combined.decode(frame)
        except msgspec.DecodeError:
            return self._decode_other(frame)
        k = msg.data.k
        candle = Candle(self.venue, k.s, k.i, k.t, k.T, k.o, k.h, k.l, k.c, k.v, k.q, k.n, k.V,
                        k.Q, k.f, k.L, k.x, msg.data.E, "ws")
        if k.x:
            return self._checked(candle, frame)
        return candle

    def _checked(self, candle: Candle, frame: Frame) -> Message:
        problem = candle_problem(candle)
        if problem is None:
            return candle
        return Malformed(f"closed kline with {problem}", snippet(frame), candle.key)

    def _decode_other(self, frame: Frame) -> Message:
        try:
            obj = self._any.decode(frame)
        except msgspec.DecodeError as exc:
            return Malformed(f"invalid JSON: {exc}", snippet(frame))
        except (ValueError, RecursionError) as exc:  # e.g. an integer too large to convert
            return Malformed(f"undecodable JSON: {exc}"[:200], snippet(frame))
        if not isinstance(obj, dict):
            return Malformed("frame is not a JSON object", snippet(frame))
        if "result" in obj and "id" in obj:
            return Ack(_id(obj["id"]), obj["result"])
        if "error" in obj:
            err = obj["error"]
            if isinstance(err, dict):
                return ErrorReply(_id(obj.get("id")), _int(err.get("code")),
                                  str(err.get("msg", ""))[:500])
            return ErrorReply(_id(obj.get("id")), -1, str(err)[:500])
        if "code" in obj and "msg" in obj:  # unwrapped error, as in the doc table
            return ErrorReply(_id(obj.get("id")), _int(obj["code"]), str(obj["msg"])[:500])
        payload = obj.get("data") if "stream" in obj else obj
        if not isinstance(payload, dict):
            return Malformed("combined frame without an object payload", snippet(frame))
        event = payload.get("e")
        if event == "serverShutdown":
            return ServerShutdown(_int(payload.get("E")))
        if event == "kline":
            try:
                raw = msgspec.convert(payload, schemas.KlineEvent, strict=False)
            except msgspec.ValidationError as exc:
                return Malformed(f"bad kline: {exc}", snippet(frame))
            candle = kline_to_candle(self.venue, raw.k, raw.E)
            return self._checked(candle, frame) if candle.closed else candle
        return Ignored(str(event)[:40] if event is not None else "unknown")


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value)[:30])
    except ValueError:
        return -1


def _id(value: Any) -> int | str | None:
    """A request id as we sent it (an int), or as the venue echoed something else."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return str(value)[:64]
