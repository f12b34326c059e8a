"""Bybit v5 public wire schemas, named exactly like the exchange's fields (§D).

The simulator encodes with these Structs and the client decodes with them; the real samples in
``../shared/protocol-samples/bybit_*`` guard against a bug both sides would share. Every frame
is plain JSON text. Prices and volumes stay the exchange's decimal strings.
"""

from __future__ import annotations

from typing import Final

import msgspec

#: ``op`` values
SUBSCRIBE: Final = "subscribe"
UNSUBSCRIBE: Final = "unsubscribe"
PING: Final = "ping"
PONG: Final = "pong"


class Kline(msgspec.Struct, gc=False):
    """One candle of a push's ``data`` array (BY-WSK). ``start`` is the open time, ``end`` the
    last millisecond; ``confirm`` says the candle has closed; ``timestamp`` is the time of the
    last trade in it; ``turnover`` the quote volume (linear and spot)."""

    start: int
    end: int
    interval: str
    open: str
    close: str
    high: str
    low: str
    volume: str
    turnover: str
    confirm: bool
    timestamp: int


class KlinePush(msgspec.Struct, gc=False):
    """``{"topic":"kline.5.BTCUSDT","data":[{...}],"ts":…,"type":"snapshot"}``."""

    topic: str
    data: list[Kline]
    ts: int
    type: str


class KlineIn(msgspec.Struct, gc=False):
    """What the client reads of a :class:`Kline`: the candle and its ``turnover`` (the quote
    volume; optional, so a frame without it still decodes). ``timestamp`` (the last trade) is
    not kept, so it is not decoded either: a change in its type cannot cost us the candle."""

    start: int
    end: int
    interval: str
    open: str
    close: str
    high: str
    low: str
    volume: str
    confirm: bool
    turnover: str | None = None


class KlinePushIn(msgspec.Struct, gc=False):
    """A push as the client decodes it (``type`` is always ``snapshot`` and unused)."""

    topic: str
    data: list[KlineIn]
    ts: int


class Request(msgspec.Struct, omit_defaults=True):
    """Client -> server: ``{"req_id":"7","op":"subscribe","args":["kline.1.BTCUSDT"]}``.
    ``req_id`` is optional; ccxt sends it as a number, the docs as a string."""

    op: str
    req_id: str | None = None
    args: list[str] | None = None


class OpReply(msgspec.Struct, omit_defaults=True):
    """Server -> client answer to an ``op``: the subscribe/unsubscribe ack, the pong
    (``ret_msg: "pong"``, ``op: "ping"``) and the refusal (``success: false``). The linear
    market echoes ``req_id`` (``""`` when none was sent); spot acks echo it too, spot pongs
    carry none (the docs' tabs), hence ``omit_defaults`` on a None ``req_id``."""

    success: bool
    ret_msg: str
    conn_id: str
    op: str
    req_id: str | None = None


class KlinesResult(msgspec.Struct):
    """``result`` of ``GET /v5/market/kline``: rows ``[start, open, high, low, close, volume,
    turnover]`` as strings, **newest first**, the forming candle included."""

    category: str = ""
    symbol: str = ""
    rows: list[list[str]] = msgspec.field(default_factory=list, name="list")


class KlinesResponse(msgspec.Struct):
    retCode: int
    retMsg: str
    result: KlinesResult | None = None
    retExtInfo: dict[str, object] = msgspec.field(default_factory=dict)
    time: int = 0


class PriceFilter(msgspec.Struct):
    tickSize: str
    minPrice: str | None = None
    maxPrice: str | None = None


class LotSizeFilter(msgspec.Struct, omit_defaults=True):
    """Linear: ``qtyStep``; spot: ``basePrecision`` / ``quotePrecision``."""

    minOrderQty: str | None = None
    maxOrderQty: str | None = None
    qtyStep: str | None = None
    basePrecision: str | None = None
    quotePrecision: str | None = None
    minOrderAmt: str | None = None
    maxOrderAmt: str | None = None
    minNotionalValue: str | None = None


class Instrument(msgspec.Struct, omit_defaults=True):
    """One item of ``GET /v5/market/instruments-info`` (the fields ccxt needs, §D.11, and the
    precision we keep). ``contractType``/``settleCoin``/``priceScale`` exist on linear only."""

    symbol: str
    status: str
    baseCoin: str
    quoteCoin: str
    priceFilter: PriceFilter
    lotSizeFilter: LotSizeFilter
    contractType: str | None = None
    settleCoin: str | None = None
    priceScale: str | None = None
    launchTime: str | None = None


class InstrumentsResult(msgspec.Struct):
    category: str = ""
    items: list[Instrument] = msgspec.field(default_factory=list, name="list")
    nextPageCursor: str = ""


class InstrumentsResponse(msgspec.Struct):
    retCode: int
    retMsg: str
    result: InstrumentsResult | None = None
    retExtInfo: dict[str, object] = msgspec.field(default_factory=dict)
    time: int = 0


class TimeResult(msgspec.Struct):
    timeSecond: str
    timeNano: str


class TimeResponse(msgspec.Struct):
    retCode: int
    retMsg: str
    result: TimeResult | None = None
    retExtInfo: dict[str, object] = msgspec.field(default_factory=dict)
    time: int = 0
