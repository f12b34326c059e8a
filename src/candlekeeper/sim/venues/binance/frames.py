"""Byte-level encoding of what the simulated Binance sends: kline events, REST rows and raw
WebSocket frames.

Kline payloads are encoded once per stream update with the client's own wire Structs
(``schemas.KlineEvent`` via ``codec.candle_to_kline``) and then shared by every subscriber, raw
or combined. Frames are written straight to the socket as unmasked RFC 6455 text frames, so a
push costs one ``transport.write`` and no per-connection task or queue; the saturation mode
(:class:`FirehoseTemplate`) goes further and splices per-message numbers into a pre-encoded
frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.sim.candles import plain_decimals
from candlekeeper.sim.framing import text_frame
from candlekeeper.venues.binance import schemas
from candlekeeper.venues.binance.stream import candle_to_kline

__all__ = ["FirehoseTemplate", "combined", "kline_payload", "rest_rows", "text_frame"]

_encoder = msgspec.json.Encoder()


def kline_payload(candle: Candle, event_time: int) -> bytes:
    """The raw (``/ws``) payload ``{"e":"kline","E":..,"s":..,"k":{..}}``."""
    event = schemas.KlineEvent("kline", event_time, candle.symbol, candle_to_kline(candle))
    return plain_decimals(_encoder.encode(event))


def combined(stream: bytes, payload: bytes) -> bytes:
    """The ``/stream`` wrapper ``{"stream":"<name>","data":<payload>}`` (§A.2)."""
    return b'{"stream":"' + stream + b'","data":' + payload + b"}"


RestRow = tuple[int, str, str, str, str, str, int, str, int, str, str, str]


def rest_rows(candles: Sequence[Candle]) -> bytes:
    """``GET /fapi/v1/klines`` / ``/api/v3/klines`` body: 12-element arrays (§A.6)."""
    rows: list[RestRow] = [
        (c.open_time, c.open_str, c.high_str, c.low_str, c.close_str, c.volume_str,
         c.close_time, c.quote_volume_str or "0", c.trades or 0,
         c.taker_buy_base_volume_str or "0", c.taker_buy_quote_volume_str or "0", "0")
        for c in candles
    ]
    return plain_decimals(_encoder.encode(rows))


_E_MARK = 918_273_645_546_372
_L_MARK = 827_364_554_637_281
_N_MARK = 736_455_463_728_190


class FirehoseTemplate:
    """Pre-encoded kline frame for the saturation benchmark.

    Message *i* carries event time ``E`` (venue time when its batch was built, non-decreasing),
    trade count ``n = i + 1`` and last trade id ``L = f + i``, so every frame is a distinct,
    valid kline update and a consumer can check order and loss from ``n`` alone.
    """

    def __init__(self, candle: Candle, stream: str, combined_mode: bool) -> None:
        marked = Candle.of(candle.venue, candle.symbol, candle.interval, candle.open_time,
                        candle.close_time, candle.open, candle.high, candle.low, candle.close,
                        candle.volume, candle.quote_volume, _N_MARK,
                        candle.taker_buy_base_volume, candle.taker_buy_quote_volume,
                        candle.first_trade_id, _L_MARK, False)
        body = kline_payload(marked, _E_MARK)
        if combined_mode:
            body = combined(stream.encode(), body)
        head, rest = body.split(str(_E_MARK).encode())
        mid, tail_ = rest.split(str(_L_MARK).encode())
        mid2, tail = tail_.split(str(_N_MARK).encode())
        self._parts = (head, mid, mid2, tail)
        self.first_trade_id = candle.first_trade_id or 0

    def frames(self, start: int, count: int, event_time: int) -> bytes:
        """``count`` frames for messages ``start .. start+count-1``, joined for one write."""
        head, mid, mid2, tail = self._parts
        e = b"%d" % event_time
        f = self.first_trade_id
        out = []
        for i in range(start, start + count):
            payload = b"".join((head, e, mid, b"%d" % (f + i), mid2, b"%d" % (i + 1), tail))
            out.append(text_frame(payload))
        return b"".join(out)
