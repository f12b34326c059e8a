"""Binance wire schemas, named exactly like the exchange's fields (protocols.md §A.4, §A.6).

The simulator encodes with these same Structs and the client decodes with them; the captured
real frames in ``../shared/protocol-samples/`` guard against a bug both sides would share.
Prices and volumes stay the exchange's decimal *strings* (``Candle`` exposes them as ``Decimal``
on access), so no float ever touches them and the hot path builds no ``Decimal`` at all.
"""

from __future__ import annotations

import msgspec


class Kline(msgspec.Struct, gc=False):
    t: int  # kline open time, ms
    T: int  # kline close time, ms (t + interval - 1)
    s: str  # symbol, uppercase
    i: str  # interval
    f: int  # first trade id
    L: int  # last trade id
    o: str
    c: str
    h: str
    l: str  # noqa: E741 - the exchange's field name
    v: str  # base asset volume
    n: int  # number of trades
    x: bool  # is this kline closed?
    q: str  # quote asset volume
    V: str  # taker buy base asset volume
    Q: str  # taker buy quote asset volume
    B: str = "0"  # ignore


class KlineEvent(msgspec.Struct, gc=False):
    e: str  # "kline"
    E: int  # event time, ms
    s: str
    k: Kline


class CombinedKline(msgspec.Struct, gc=False):
    """``{"stream": "btcusdt@kline_1m", "data": {...}}`` from ``/stream`` endpoints."""

    stream: str
    data: KlineEvent


class Request(msgspec.Struct, omit_defaults=True):
    """A live control message: SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / ..."""

    method: str
    id: int | str | None
    params: list[object] | None = None


class ResultReply(msgspec.Struct):
    result: object
    id: int | str | None


class ErrorBody(msgspec.Struct):
    code: int
    msg: str


class ErrorReply(msgspec.Struct):
    error: ErrorBody
    id: int | str | None = None


#: one row of ``GET /fapi/v1/klines`` / ``GET /api/v3/klines`` (12 positional fields)
RestKlineRow = tuple[int, str, str, str, str, str, int, str, int, str, str, str]


class SymbolInfo(msgspec.Struct):
    symbol: str
    status: str
    contractType: str | None = None
    baseAsset: str | None = None
    quoteAsset: str | None = None


class ExchangeInfo(msgspec.Struct):
    symbols: list[SymbolInfo]
