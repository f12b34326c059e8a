"""Sans-I/O OKX v5 candle stream codec, for USDT swaps and spot (protocols-more-venues.md §E).

Frames are JSON text on ``/ws/v5/business``. A push is ``{"arg":{"channel","instId"},"data":
[row, ...]}`` with rows of nine strings ``[ts,o,h,l,c,vol,volCcy,volCcyQuote,confirm]``; it
decodes into a :class:`~schemas.CandlePush` in one C call and **every** row becomes a
``Candle``, oldest first. ``confirm`` "1" is the closed flag. The base-asset volume is ``vol``
on spot and ``volCcy`` on swaps (whose ``vol`` counts contracts); OKX publishes neither trade
counts nor taker volumes. Acks, errors and notices go through a generic decode; bad input
becomes ``Malformed``, never an exception.

Stream names are ``<channel>:<instId>`` (``candle1Dutc:BTC-USDT-SWAP``): what one subscribe
``arg`` holds. The heartbeat is the client's: the text ``ping`` after 20 s without a frame,
answered by ``pong`` (:class:`Heartbeat` with ``idle_only``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import close_time
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.core.symbols import normalize_symbol
from candlekeeper.errors import ConfigError
from candlekeeper.venues.checks import candle_problem, snippet
from candlekeeper.venues.contract import (
    Ack,
    ErrorReply,
    Frame,
    Heartbeat,
    Ignored,
    Malformed,
    Message,
    Pong,
    Reply,
    ServerShutdown,
    VenueSpec,
)
from candlekeeper.venues.okx import schemas
from candlekeeper.venues.okx.endpoints import (
    BARS,
    CHANNEL_PREFIX,
    INST_SUFFIX,
    WS_INVALID_ARGS,
    WS_INVALID_OP,
    WS_INVALID_REQUEST,
    WS_MOVED_TO_BUSINESS,
    WS_SERVICE_UPGRADE,
    WS_TOO_FREQUENT,
    WS_WRONG_URL_OR_CHANNEL,
)

#: quote assets tried, longest first, when a canonical symbol has to be split (``BTCUSDT``)
QUOTE_ASSETS: Final = ("FDUSD", "USDT", "USDC", "EUR", "USD", "BTC", "ETH")
#: the channel of each of our intervals, and back
CHANNELS: Final = {iv: CHANNEL_PREFIX + bar for iv, bar in BARS.items()}
INTERVAL_OF_CHANNEL: Final = {ch: iv for iv, ch in CHANNELS.items()}
#: candles accepted from one push (real pushes carry one)
MAX_CANDLES_PER_PUSH: Final = 100
_NAME_CACHE_MAX: Final = 10_000
_PONG: Final = schemas.PONG.encode()
_PING: Final = schemas.PING.encode()

#: what the WebSocket codes mean (§E.2), for error messages people can act on
WS_CODES: Final[dict[str, str]] = {
    WS_INVALID_REQUEST: "invalid request",
    WS_INVALID_ARGS: "invalid args",
    WS_TOO_FREQUENT: "requests too frequent",
    WS_WRONG_URL_OR_CHANNEL: "wrong URL or channel (candles are on /ws/v5/business)",
    WS_INVALID_OP: "invalid op",
    WS_MOVED_TO_BUSINESS: "channel moved to /ws/v5/business",
    "64002": "channel not supported by /ws/v5/business",
    WS_SERVICE_UPGRADE: "connection closing for a service upgrade",
}

HEARTBEAT: Final = Heartbeat(payload=schemas.PING, every_s=20.0, timeout_s=10.0, idle_only=True)


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCUSDT`` / ``BTC-USDT`` / ``BTC-USDT-SWAP`` / ``BTC/USDT:USDT`` / ``BTC/USDT`` ->
    ``("BTC", "USDT")``. A separator in the input decides the split; a canonical symbol is split
    before the longest known quote asset that leaves a non-empty base."""
    text = symbol.strip()
    if text.upper().endswith("-SWAP"):
        text = text[:-5]
    body = text.partition(":")[0]
    for sep in "-/_":
        if sep in body:
            normalize_symbol(text)  # validates the shape and raises a clear error
            base, _, quote = body.partition(sep)
            return base.upper(), quote.upper()
    canonical = normalize_symbol(text)
    for quote in QUOTE_ASSETS:
        if canonical.endswith(quote) and len(canonical) > len(quote):
            return canonical[: -len(quote)], quote
    raise ConfigError(
        f"cannot tell the quote asset of {symbol!r} for OKX; write it as 'BASE-QUOTE' "
        f"(e.g. 'BTC-USDT'); known quote assets: {', '.join(QUOTE_ASSETS)}")


def canonical_symbol(symbol: str) -> str:
    """Any accepted form -> ``BTCUSDT``."""
    base, quote = split_symbol(symbol)
    return base + quote


def inst_id(venue: str, symbol: str) -> str:
    """Canonical or user form -> the venue's instrument id (``BTC-USDT-SWAP`` / ``BTC-USDT``)."""
    base, quote = split_symbol(symbol)
    return f"{base}-{quote}{INST_SUFFIX[venue]}"


def symbol_of_inst(venue: str, inst: str) -> str | None:
    """``BTC-USDT-SWAP`` -> ``BTCUSDT`` for the swap venue (``BTC-USDT`` for spot); None for an
    instrument of another type or shape."""
    suffix = INST_SUFFIX[venue]
    if suffix:
        if not inst.endswith(suffix):
            return None
        inst = inst[: -len(suffix)]
    base, dash, quote = inst.partition("-")
    if not dash or not base or not quote or "-" in quote or inst != inst.upper():
        return None
    try:
        return normalize_symbol(f"{base}-{quote}")
    except ConfigError:
        return None


def channel(interval: str) -> str:
    try:
        return CHANNELS[interval]
    except KeyError:
        raise ConfigError(f"OKX has no interval {interval!r}") from None


def stream_name_of(venue: str, symbol: str, interval: str) -> str:
    """``candle1m:BTC-USDT-SWAP``: the channel and instrument of one subscribe arg."""
    return f"{channel(interval)}:{inst_id(venue, symbol)}"


def parse_stream_name(name: str) -> schemas.Arg | None:
    ch, sep, inst = name.partition(":")
    return schemas.Arg(ch, inst) if sep and ch and inst else None


def describe_code(code: str, msg: str) -> str:
    meaning = WS_CODES.get(code)
    msg = msg[:300]
    if meaning is None:
        return msg or "no message"
    return f"{meaning}: {msg}" if msg else meaning


def base_volume_index(venue: str) -> int:
    """Swaps count ``vol`` in contracts and ``volCcy`` in base; spot ``vol`` in base (§E.3)."""
    return schemas.VOL_CCY if INST_SUFFIX[venue] else schemas.VOL


def row_problem(row: Sequence[object]) -> str | None:
    """Why a row is not nine strings with a numeric ``ts`` and ``confirm`` "0"/"1"."""
    if len(row) < 9:
        return f"candle row with {len(row)} fields, expected 9"
    ts = row[schemas.TS]
    if not isinstance(ts, str) or not ts.isascii() or not ts.isdigit() or len(ts) > 15:
        return f"bad ts {str(ts)[:20]!r}"
    if row[schemas.CONFIRM] not in ("0", "1"):
        return f"bad confirm {str(row[schemas.CONFIRM])[:10]!r}"
    return None


def row_to_candle(venue: str, symbol: str, interval: str, row: Sequence[str],
                  source: str) -> Candle:
    """One wire row -> ``Candle`` (call :func:`row_problem` first)."""
    t = int(row[schemas.TS])
    return Candle(venue, symbol, interval, t, close_time(t, interval), row[schemas.O],
                  row[schemas.H], row[schemas.L], row[schemas.C],
                  row[base_volume_index(venue)], row[schemas.VOL_CCY_QUOTE], None, None, None,
                  None, None,
                  row[schemas.CONFIRM] == "1", None,
                  "rest" if source == "rest" else "ws")


class OkxStreamCodec:
    """Stream codec of one OKX venue (``okx-swap`` or ``okx-spot``)."""

    heartbeat: Heartbeat | None = HEARTBEAT

    def __init__(self, spec: VenueSpec) -> None:
        self.spec = spec
        self.venue = spec.id
        self._push = msgspec.json.Decoder(schemas.CandlePush)
        self._any = msgspec.json.Decoder()
        self._encoder = msgspec.json.Encoder()
        self._intervals = frozenset(spec.intervals)
        self._names: dict[tuple[str, str], StreamKey] = {}

    # -- names ------------------------------------------------------------------------------
    def native_symbol(self, symbol: str) -> str:
        return inst_id(self.venue, symbol)

    def stream_name(self, key: StreamKey) -> str:
        if key.interval not in self._intervals:
            raise ConfigError(f"{self.venue} has no interval {key.interval!r}")
        return stream_name_of(self.venue, key.symbol, key.interval)

    # -- outgoing frames ----------------------------------------------------------------------
    def connect_url(self, base: str, streams: Sequence[str]) -> str:
        """The base URL itself: every channel is subscribed after connecting."""
        return base

    def _request(self, op: str, streams: Sequence[str], request_id: int) -> str:
        args = []
        for name in streams:
            arg = parse_stream_name(name)
            if arg is None:
                raise ValueError(f"not an OKX stream name: {name!r}")
            args.append(arg)
        return self._encoder.encode(schemas.Request(op, args, str(request_id))).decode()

    def subscribe(self, streams: Sequence[str], request_id: int) -> str:
        """``{"op":"subscribe","args":[{"channel":"candle1m","instId":"BTC-USDT"}],"id":"7"}``;
        the int id is sent as its decimal string and read back as an int from the ack."""
        return self._request(schemas.SUBSCRIBE, streams, request_id)

    def unsubscribe(self, streams: Sequence[str], request_id: int) -> str:
        return self._request(schemas.UNSUBSCRIBE, streams, request_id)

    # -- incoming frames ----------------------------------------------------------------------
    def decode(self, frame: Frame) -> Message | list[Message]:
        data = frame.encode() if isinstance(frame, str) else frame
        if len(data) <= 6:
            word = bytes(data).strip()
            if word == _PONG:
                return Pong()
            if word == _PING:
                return Reply(schemas.PONG)
        try:
            push = self._push.decode(data)
        except (msgspec.DecodeError, ValueError):
            return self._decode_other(data)
        key = self._route(push.arg)
        if key is None:
            return Malformed(f"unroutable candle channel {push.arg.channel[:40]!r} "
                             f"{push.arg.instId[:40]!r}", snippet(data))
        return self._candles(key, push.data, data)

    def _route(self, arg: schemas.Arg) -> StreamKey | None:
        cache_key = (arg.channel, arg.instId)
        key = self._names.get(cache_key)
        if key is None:
            interval = INTERVAL_OF_CHANNEL.get(arg.channel)
            symbol = symbol_of_inst(self.venue, arg.instId)
            if interval is None or interval not in self._intervals or symbol is None:
                return None
            key = StreamKey(self.venue, symbol, interval)
            if len(self._names) < _NAME_CACHE_MAX:
                self._names[cache_key] = key
        return key

    def _candles(self, key: StreamKey, rows: Sequence[Sequence[str]],
                 data: bytes | bytearray | memoryview) -> Message | list[Message]:
        """Every row of a push, oldest first; a bad one is ``Malformed`` (with its stream key),
        the others still count."""
        if not rows:
            return Malformed("candle push without rows", snippet(data), key)
        if len(rows) > MAX_CANDLES_PER_PUSH:
            return Malformed(f"push with {len(rows)} candles", snippet(data), key)
        out: list[Message] = []
        good: list[Candle] = []
        for row in rows:
            problem = row_problem(row)
            if problem is None:
                candle = row_to_candle(self.venue, key.symbol, key.interval, row, "ws")
                problem = candle_problem(candle)
                if problem is None:
                    good.append(candle)
                    continue
            out.append(Malformed(f"candle with {problem}", snippet(data), key))
        good.sort(key=_open_time)
        out.extend(good)
        return out[0] if len(out) == 1 else out

    def _decode_other(self, data: bytes | bytearray | memoryview) -> Message | list[Message]:
        try:
            obj = self._any.decode(data)
        except msgspec.DecodeError as exc:
            return Malformed(f"invalid JSON: {exc}", snippet(data))
        except (ValueError, RecursionError) as exc:  # an integer too large to convert, say
            return Malformed(f"undecodable JSON: {exc}"[:200], snippet(data))
        if not isinstance(obj, dict):
            return Malformed("frame is not a JSON object", snippet(data))
        event = obj.get("event")
        rid = _request_id(obj.get("id"))
        if event in (schemas.SUBSCRIBE, schemas.UNSUBSCRIBE):
            return Ack(rid, obj.get("arg"))
        code = obj.get("code")
        code_text = code if isinstance(code, str) else str(code)[:20]
        msg = obj.get("msg")
        msg = msg[:300] if isinstance(msg, str) else ""
        if event == "error":
            number = int(code_text) if code_text.isascii() and code_text.isdigit() \
                and len(code_text) < 10 else -1
            return ErrorReply(rid, number, f"{describe_code(code_text, msg)} (code {code_text})")
        if event == "notice":
            if code_text == WS_SERVICE_UPGRADE:
                return ServerShutdown(0)
            return Ignored(f"notice {code_text}")
        if isinstance(event, str):
            return Ignored(event[:40])
        arg = obj.get("arg")
        if isinstance(arg, dict) and "data" in obj:
            return self._odd_push(arg, obj.get("data"), data)
        return Ignored("unknown")

    def _odd_push(self, arg: dict[str, object], rows: object,
                  data: bytes | bytearray | memoryview) -> Message | list[Message]:
        """A push the typed decoder refused: wrong types in the rows, a missing field."""
        ch, inst = arg.get("channel"), arg.get("instId")
        if not isinstance(ch, str) or not isinstance(inst, str):
            return Malformed("push with a bad arg", snippet(data))
        key = self._route(schemas.Arg(ch, inst))
        if key is None:
            if not ch.startswith(CHANNEL_PREFIX):
                return Ignored(ch[:40])
            return Malformed(f"unroutable candle channel {ch[:40]!r} {inst[:40]!r}",
                             snippet(data))
        return Malformed("candle push with bad rows", snippet(data), key)


def _open_time(c: Candle) -> int:
    return c.open_time


def _request_id(value: object) -> int | str | None:
    """The ack's id as we sent it: our ids are ints sent as decimal strings."""
    if isinstance(value, str):
        if value.isascii() and value.isdigit() and len(value) <= 18:
            return int(value)
        return value[:64]
    if isinstance(value, int) and not isinstance(value, bool):
        return value if abs(value) < 1 << 62 else str(value)[:64]
    return None if value is None else str(value)[:64]
