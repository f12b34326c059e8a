"""OKX v5 wire schemas, named exactly like the exchange's fields (protocols-more-venues.md §E).

The simulator encodes with these Structs and the client decodes with them; the real samples in
``../shared/protocol-samples/okx_*`` guard against a bug both sides would share. Frames are
plain JSON text; the heartbeat is the bare text ``ping`` / ``pong``. Every number on the wire
is a string, codes included.
"""

from __future__ import annotations

from typing import Final

import msgspec

#: the client's heartbeat and the server's answer: bare text, not JSON (§E.5)
PING: Final = "ping"
PONG: Final = "pong"
SUBSCRIBE: Final = "subscribe"
UNSUBSCRIBE: Final = "unsubscribe"

#: one candle row: ``[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]``, every one a string;
#: ``ts`` is the OPEN time in ms, ``confirm`` "1" when the candle is final
Row = list[str]
#: row indexes
TS, O, H, L, C, VOL, VOL_CCY, VOL_CCY_QUOTE, CONFIRM = range(9)  # noqa: E741


class Arg(msgspec.Struct, frozen=True):
    """``{"channel":"candle1m","instId":"BTC-USDT-SWAP"}``."""

    channel: str
    instId: str


class CandlePush(msgspec.Struct, gc=False):
    """``{"arg":{"channel","instId"},"data":[[ts,o,h,l,c,vol,volCcy,volCcyQuote,confirm]]}``."""

    arg: Arg
    data: list[Row]


class Request(msgspec.Struct, omit_defaults=True):
    """Client -> server: ``{"id":"7","op":"subscribe","args":[{...}]}``; ``id`` is optional
    (up to 32 alphanumerics) and echoed in the answers."""

    op: str
    args: list[Arg]
    id: str | None = None


class Event(msgspec.Struct, omit_defaults=True):
    """Server -> client control frame: an ack (``event`` "subscribe"/"unsubscribe", with the
    ``arg``), an error (``event`` "error", ``code``, ``msg``) or a notice (``event`` "notice",
    ``code`` "64008"). ``connId`` names the connection; 2022 captures show acks without it."""

    event: str
    id: str | None = None
    arg: Arg | None = None
    code: str | None = None
    msg: str | None = None
    connId: str | None = None


# -- REST ---------------------------------------------------------------------------------------


class CandlesResponse(msgspec.Struct):
    """``{"code":"0","msg":"","data":[[...], ...]}``: rows newest first."""

    code: str
    msg: str = ""
    data: list[Row] = msgspec.field(default_factory=list)


class Instrument(msgspec.Struct, omit_defaults=True):
    """One item of ``GET /api/v5/public/instruments`` (the fields we and ccxt read, plus a few
    that help the simulator look real). SPOT has ``baseCcy``/``quoteCcy``; SWAP has ``uly``
    (``BTC-USDT``), ``settleCcy`` and ``ctVal`` instead, ``baseCcy`` empty."""

    instId: str
    instType: str
    state: str
    tickSz: str = ""
    lotSz: str = ""
    minSz: str = ""
    baseCcy: str = ""
    quoteCcy: str = ""
    uly: str = ""
    instFamily: str = ""
    settleCcy: str = ""
    ctVal: str = ""
    ctValCcy: str = ""
    ctType: str = ""
    ctMult: str = ""
    lever: str = ""
    listTime: str = ""
    expTime: str = ""
    maxLmtSz: str = ""
    maxMktSz: str = ""
    alias: str = ""
    category: str = ""


class InstrumentsResponse(msgspec.Struct):
    code: str
    msg: str = ""
    data: list[Instrument] = msgspec.field(default_factory=list)


class TimeData(msgspec.Struct):
    ts: str


class TimeResponse(msgspec.Struct):
    """``{"code":"0","msg":"","data":[{"ts":"1597026383085"}]}``."""

    code: str
    msg: str = ""
    data: list[TimeData] = msgspec.field(default_factory=list)


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """``{"code":"50011","msg":"Too Many Requests","data":[]}``; a 404 from the gateway carries
    a *numeric* code (§E.10 [!]), hence the union."""

    code: str | int
    msg: str = ""
