"""BingX perpetual swap wire schemas, named exactly like the exchange's fields (protocols.md §C).

The simulator encodes with these Structs and the client decodes with them; the real samples in
``../shared/protocol-samples/bingx_*`` guard against a bug both sides would share. Every server
frame is this JSON (or the text ``Ping``) **gzip-compressed** in a binary WebSocket frame; the
client sends plain text. Prices and volumes stay the exchange's decimal strings.
"""

from __future__ import annotations

from typing import Final

import msgspec

#: the server's heartbeat (gzip'd like every server frame) and the client's text answer
PING: Final = "Ping"
PONG: Final = "Pong"
#: ``reqType`` values of a control request
SUB: Final = "sub"
UNSUB: Final = "unsub"
#: ``dataType`` = ``<SYMBOL>@kline_<interval>``, e.g. ``BTC-USDT@kline_1m``
KLINE_TAG: Final = "@kline_"


class Kline(msgspec.Struct, gc=False):
    """One candle in a push. ``T`` is the candle's OPEN time (ms); there is no closed flag, no
    trade count, no quote volume and no event time."""

    c: str
    o: str
    h: str
    l: str  # noqa: E741 - the exchange's field name
    v: str
    T: int


class KlinePush(msgspec.Struct, gc=False):
    """``{"code":0,"dataType":"BTC-USDT@kline_1m","s":"BTC-USDT","data":[{...}]}``."""

    code: int
    dataType: str
    s: str
    data: list[Kline]


class Request(msgspec.Struct):
    """Client -> server: ``{"id":"1","reqType":"sub","dataType":"BTC-USDT@kline_1m"}``.
    BingX ids are strings (ccxt sends UUIDs, JK numeric strings); the server echoes them."""

    id: str
    reqType: str
    dataType: str


class Ack(msgspec.Struct):
    """Server -> client reply to a request, in the full form ccxt and the v3 docs show:
    ``{"id":"…","code":0,"msg":"","dataType":"","data":null}``. ``code != 0`` is a refusal
    (e.g. 80403 for a topic over the 200 per connection)."""

    id: str
    code: int = 0
    msg: str = ""
    dataType: str = ""
    data: object = None


class ErrorFrame(msgspec.Struct, omit_defaults=True):
    """An error not tied to a push: ``{"code":100400,"msg":"","timestamp":…}`` or with an
    ``id`` (``{"code":100500,"id":"…","msg":"","timestamp":…}``)."""

    code: int
    msg: str
    id: str | None = None
    timestamp: int | None = None


# -- REST ---------------------------------------------------------------------------------------


class RestKline(msgspec.Struct, gc=False):
    """One row of ``GET /openApi/swap/v3/quote/klines``; ``time`` is the OPEN time."""

    open: str
    close: str
    high: str
    low: str
    volume: str
    time: int


class KlinesResponse(msgspec.Struct):
    """``{"code":0,"msg":"","data":[...]}``. The older v2 endpoint returned ``data`` as a
    single object when no time range was given, hence the union; an error carries no data."""

    code: int
    msg: str = ""
    data: list[RestKline] | RestKline | None = None


class Contract(msgspec.Struct):
    """One item of ``GET /openApi/swap/v2/quote/contracts`` (fields we use, plus a few that
    help the simulator look real). ``status == 1`` means trading."""

    symbol: str
    status: int
    asset: str | None = None
    currency: str | None = None
    contractId: str | None = None
    pricePrecision: int | None = None
    quantityPrecision: int | None = None
    apiStateOpen: str | None = None
    apiStateClose: str | None = None


class ContractsResponse(msgspec.Struct):
    code: int
    msg: str = ""
    data: list[Contract] | None = None
