"""Sans-I/O Binance kline codec, shared by USDⓈ-M futures and spot.

The hot path decodes a combined kline frame straight into typed Structs (one C call) and builds a
``Candle``; anything that does not fit that shape falls back to a generic decode that classifies
acks, error frames, shutdown notices and raw (``/ws``) frames. Malformed input becomes a
``Malformed`` message; it is never raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import close_time
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError, DecodeError
from candlekeeper.venues.base import (
    Ack,
    ErrorReply,
    Frame,
    Ignored,
    Malformed,
    Message,
    RestRequest,
    ServerShutdown,
    VenueSpec,
    klines_rest_request,
)
from candlekeeper.venues.binance import schemas

_KLINE_TAG = "@kline_"


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


class BinanceCodec:
    """Codec for one Binance venue (``BINANCE_USDM`` or ``BINANCE_SPOT``)."""

    def __init__(self, spec: VenueSpec) -> None:
        self.spec = spec
        self.venue = spec.id
        self._combined = msgspec.json.Decoder(schemas.CombinedKline)
        self._raw_event = msgspec.json.Decoder(schemas.KlineEvent)
        self._any = msgspec.json.Decoder()
        self._rows = msgspec.json.Decoder(list[schemas.RestKlineRow])
        self._info = msgspec.json.Decoder(schemas.ExchangeInfo)
        self._encoder = msgspec.json.Encoder()
        self._intervals = frozenset(spec.intervals)

    # -- names ------------------------------------------------------------------------------
    def native_symbol(self, symbol: str) -> str:
        return symbol.replace("-", "").replace("/", "").upper()

    def stream_name(self, key: StreamKey) -> str:
        if key.interval not in self._intervals:
            raise ConfigError(f"{self.venue} has no interval {key.interval!r}")
        return f"{key.symbol.lower()}{_KLINE_TAG}{key.interval}"

    def stream_key(self, stream_name: str) -> StreamKey:
        symbol, sep, interval = stream_name.partition(_KLINE_TAG)
        if not sep or not symbol or not interval:
            raise DecodeError(f"not a kline stream name: {stream_name!r}")
        return StreamKey(self.venue, symbol.upper(), interval)

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
        return Candle(self.venue, k.s, k.i, k.t, k.T, k.o, k.h, k.l, k.c, k.v, k.q, k.n, k.V,
                      k.Q, k.f, k.L, k.x, msg.data.E, "ws")

    def _decode_other(self, frame: Frame) -> Message:
        try:
            obj = self._any.decode(frame)
        except msgspec.DecodeError as exc:
            return Malformed(f"invalid JSON: {exc}", _snippet(frame))
        if not isinstance(obj, dict):
            return Malformed("frame is not a JSON object", _snippet(frame))
        if "result" in obj and "id" in obj:
            return Ack(obj["id"], obj["result"])
        if "error" in obj:
            err = obj["error"]
            if isinstance(err, dict):
                return ErrorReply(obj.get("id"), _int(err.get("code")), str(err.get("msg", "")))
            return ErrorReply(obj.get("id"), -1, str(err))
        if "code" in obj and "msg" in obj:  # unwrapped error, as in the doc table
            return ErrorReply(obj.get("id"), _int(obj["code"]), str(obj["msg"]))
        payload = obj.get("data") if "stream" in obj else obj
        if not isinstance(payload, dict):
            return Malformed("combined frame without an object payload", _snippet(frame))
        event = payload.get("e")
        if event == "serverShutdown":
            return ServerShutdown(_int(payload.get("E")))
        if event == "kline":
            try:
                raw = msgspec.convert(payload, schemas.KlineEvent, strict=False)
            except msgspec.ValidationError as exc:
                return Malformed(f"bad kline: {exc}", _snippet(frame))
            return kline_to_candle(self.venue, raw.k, raw.E)
        return Ignored(str(event) if event is not None else "unknown")

    # -- REST -------------------------------------------------------------------------------
    def klines_request(self, symbol: str, interval: str, *, start_time: int | None = None,
                       end_time: int | None = None, limit: int | None = None) -> RestRequest:
        return klines_rest_request(self.spec, self.native_symbol(symbol), interval,
                                   start_time=start_time, end_time=end_time, limit=limit)

    def decode_klines(self, body: bytes, symbol: str, interval: str) -> list[Candle]:
        """Decode a klines response. Every row is a closed candle except possibly the last one
        (the candle still forming); ``closed`` is left False there — the caller knows the
        clock and decides (see ``mark_closed``)."""
        try:
            rows = self._rows.decode(body)
        except msgspec.DecodeError as exc:
            raise DecodeError(f"{self.venue} klines body: {exc}: {_snippet(body)}") from exc
        venue, sym = self.venue, self.native_symbol(symbol)
        return [
            Candle(venue, sym, interval, r[0], r[6], r[1], r[2], r[3], r[4], r[5], r[7], r[8],
                   r[9], r[10], None, None, True, None, "rest")
            for r in rows
        ]

    def exchange_info_request(self) -> RestRequest:
        return RestRequest("GET", self.spec.exchange_info_path, {}, self.spec.exchange_info_weight)

    def decode_symbols(self, body: bytes) -> list[str]:
        """Symbols currently trading (perpetuals only on USDⓈ-M)."""
        try:
            info = self._info.decode(body)
        except msgspec.DecodeError as exc:
            raise DecodeError(f"{self.venue} exchangeInfo body: {exc}") from exc
        return sorted(
            s.symbol for s in info.symbols
            if s.status == "TRADING" and s.contractType in (None, "PERPETUAL")
        )


def mark_closed(candles: list[Candle], now_ms: int) -> list[Candle]:
    """REST rows whose close time has passed are final; the forming one is not."""
    return [c if c.close_time < now_ms else msgspec.structs.replace(c, closed=False)
            for c in candles]


def expected_close_time(open_time: int, interval: str) -> int:
    return close_time(open_time, interval)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _snippet(frame: Frame, n: int = 120) -> str:
    """The start of a frame as text, copied (a memoryview frame dies with the callback)."""
    if isinstance(frame, str):
        return frame[:n]
    return bytes(frame[:n]).decode("utf-8", "replace")
