"""Hyperliquid wire schemas, named exactly like the exchange's fields (§F).

The simulator encodes with these Structs and the client decodes with them; the real samples in
``../shared/protocol-samples/hyperliquid_*`` guard against a bug both sides would share. Every
frame is plain JSON text; prices and volumes are the exchange's decimal **strings** (the docs
say numbers; the wire, the SDK and ccxt disagree with the docs, §F.3 [!]).
"""

from __future__ import annotations

from typing import Final

import msgspec

#: ``method`` values the client sends
SUBSCRIBE: Final = "subscribe"
UNSUBSCRIBE: Final = "unsubscribe"
PING: Final = "ping"
#: ``channel`` values the server sends
CANDLE: Final = "candle"
SUBSCRIPTION_RESPONSE: Final = "subscriptionResponse"
PONG: Final = "pong"
ERROR: Final = "error"
#: the text of an error frame for a second subscribe of the same subscription
ALREADY_SUBSCRIBED: Final = "Already subscribed: "


class Candle(msgspec.Struct, gc=False):
    """One candle, on the WebSocket (``data``) and in a ``candleSnapshot`` row: ``t`` the open
    time, ``T`` its last millisecond, ``s`` the coin, ``i`` the interval, ``n`` the trades."""

    t: int
    T: int
    s: str
    i: str
    o: str
    c: str
    h: str
    l: str  # noqa: E741 - the wire's name
    v: str
    n: int


class CandlePush(msgspec.Struct, gc=False):
    """``{"channel":"candle","data":{...}}``: ``data`` is ONE object (the docs say an array)."""

    channel: str
    data: Candle


class Subscription(msgspec.Struct, omit_defaults=True):
    """``{"type":"candle","coin":"BTC","interval":"1m"}``."""

    type: str
    coin: str | None = None
    interval: str | None = None


class Request(msgspec.Struct, omit_defaults=True):
    """Client -> server: ``{"method":"subscribe","subscription":{...}}`` or
    ``{"method":"ping"}``."""

    method: str
    subscription: Subscription | None = None


class SubscriptionAck(msgspec.Struct):
    """``data`` of a ``subscriptionResponse``: the request echoed."""

    method: str
    subscription: Subscription


class SubscriptionResponse(msgspec.Struct):
    channel: str
    data: SubscriptionAck


class ChannelOnly(msgspec.Struct):
    """``{"channel":"pong"}``."""

    channel: str


class ErrorFrame(msgspec.Struct):
    """``{"channel":"error","data":"<text>"}``."""

    channel: str
    data: str


# -- REST (POST /info) --------------------------------------------------------------------------
class CandleSnapshotReq(msgspec.Struct):
    coin: str
    interval: str
    startTime: int
    endTime: int


class InfoRequest(msgspec.Struct, omit_defaults=True):
    """``{"type":"candleSnapshot","req":{...}}``, ``{"type":"meta"}``, ..."""

    type: str
    req: CandleSnapshotReq | None = None
    dex: str | None = None


class Asset(msgspec.Struct, omit_defaults=True):
    """One entry of ``meta.universe``."""

    name: str
    szDecimals: int
    maxLeverage: int
    onlyIsolated: bool | None = None
    isDelisted: bool | None = None
    marginTableId: int | None = None


class Meta(msgspec.Struct, omit_defaults=True):
    universe: list[Asset]
    marginTables: list[object] | None = None


class AssetCtx(msgspec.Struct):
    """One entry of ``metaAndAssetCtxs[1]`` (the fields ccxt reads, and their neighbours)."""

    funding: str
    openInterest: str
    prevDayPx: str
    dayNtlVlm: str
    premium: str | None
    oraclePx: str
    markPx: str
    midPx: str | None
    impactPxs: list[str] | None
    dayBaseVlm: str


class ExchangeStatus(msgspec.Struct):
    """``{"specialStatuses":null,"time":...}``; ccxt's comment prints ``time`` as a string."""

    time: int | str
    specialStatuses: object = None


class ActionError(msgspec.Struct):
    """``{"status":"err","response":"<text>"}`` (ccxt's ``handle_errors``)."""

    status: str
    response: object = None
