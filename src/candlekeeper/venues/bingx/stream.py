"""Sans-I/O BingX perpetual swap kline stream codec (protocols.md §C.2, §C.3).

Every server frame is gzip-compressed (the heartbeat ``Ping`` too); the transport hands us the
payload whatever the WebSocket opcode was, so gzip is recognised by its magic bytes and anything
else is taken as plain text. A push decodes into a :class:`~schemas.KlinePush` in one C call and
**every** candle it carries becomes a ``Candle``, oldest first: a push that carries a candle and
the next one must not lose the first (it may be the last look at a candle before it closes).
Acks, error frames, the older 2023 push shape and anything else go through a generic decode. Bad
input becomes ``Malformed``, never an exception.

BingX has no closed flag: pushes are always ``closed=False`` and the feed infers a close from
the next push with a later open time (``VenueSpec.closed_flag`` is False). Pushes arrive once a
second per topic, so each one is checked for impossible values (the codec's gzip inflate costs
more than the check).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import align, close_time
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.core.symbols import normalize_symbol
from candlekeeper.errors import ConfigError
from candlekeeper.venues.bingx import schemas
from candlekeeper.venues.bingx.endpoints import RATE_LIMITED_CODE, TOPIC_LIMIT_CODE
from candlekeeper.venues.checks import candle_problem, snippet
from candlekeeper.venues.contract import (
    Ack,
    ErrorReply,
    Frame,
    Heartbeat,
    Ignored,
    Malformed,
    Message,
    Reply,
    VenueSpec,
)

_GZIP_MAGIC: Final = b"\x1f\x8b"
_PING: Final = schemas.PING.encode()
#: a decompressed frame larger than this is refused (a push is ~150 bytes; a bomb is not a frame)
MAX_FRAME_BYTES: Final = 1 << 20
#: quote assets tried, longest first, when a canonical symbol has to be split (``BTCUSDT``)
QUOTE_ASSETS: Final = ("FDUSD", "USDT", "USDC", "BUSD", "USD")
#: distinct dataTypes remembered by the hot path (bounded: a server cannot grow it forever)
_NAME_CACHE_MAX: Final = 10_000
#: candles accepted from one push (real pushes carry one or two)
MAX_CANDLES_PER_PUSH: Final = 100

#: what the codes mean (protocols.md §C.2, §C.4), for error messages people can act on
ERROR_CODES: Final[dict[int, str]] = {
    TOPIC_LIMIT_CODE: "over the limit of 200 topics per connection",
    100400: "invalid parameter",
    80014: "invalid parameter",
    RATE_LIMITED_CODE: "rate limit exceeded",
    80012: "service unavailable",
    100500: "internal system error",
}


def describe_code(code: int, msg: str) -> str:
    """``msg`` with the meaning of ``code`` in front (BingX often sends an empty ``msg``)."""
    meaning = ERROR_CODES.get(code)
    msg = msg[:300]
    if meaning is None:
        return msg or "no message"
    return f"{meaning}: {msg}" if msg else meaning


def gzip_frame(payload: bytes | str) -> bytes:
    """Compress a server frame as BingX does (used by the simulator and tests)."""
    data = payload.encode() if isinstance(payload, str) else payload
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    return comp.compress(data) + comp.flush()


def kline_to_candle(venue: str, symbol: str, interval: str, k: schemas.Kline) -> Candle:
    """Wire kline -> live ``Candle``. ``T`` is the open time; BingX sends no trade count, quote
    or taker volume, trade ids or event time, so those are ``None``; never closed."""
    return Candle(venue, symbol, interval, k.T, close_time(k.T, interval), k.o, k.h, k.l, k.c,
                  k.v, None, None, None, None, None, None, False, None, "ws")


def candle_to_kline(c: Candle) -> schemas.Kline:
    """``Candle`` -> wire kline (used by the simulator)."""
    return schemas.Kline(c=c.close_str, o=c.open_str, h=c.high_str, l=c.low_str,
                         v=c.volume_str, T=c.open_time)


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCUSDT`` / ``BTC-USDT`` / ``BTC/USDT:USDT`` -> ``("BTC", "USDT")``.

    A separator in the input decides the split; a canonical symbol is split before the longest
    known quote asset that leaves a non-empty base. Raises :class:`ConfigError` otherwise.
    """
    text = symbol.strip()
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
        f"cannot tell the quote asset of {symbol!r} for BingX; write it as 'BASE-QUOTE' "
        f"(e.g. 'BTC-USDT'); known quote assets: {', '.join(QUOTE_ASSETS)}"
    )


def native_symbol(symbol: str) -> str:
    """Any user form -> ``BTC-USDT`` (uppercase, hyphenated)."""
    base, quote = split_symbol(symbol)
    return f"{base}-{quote}"


def parse_data_type(venue: str, data_type: str,
                    intervals: frozenset[str]) -> StreamKey | None:
    """``BTC-USDT@kline_1m`` -> its stream key; None when it is no kline topic we serve."""
    symbol, sep, interval = data_type.partition(schemas.KLINE_TAG)
    if not sep or not symbol or interval not in intervals:
        return None
    try:
        return StreamKey(venue, normalize_symbol(symbol), interval)
    except ConfigError:
        return None


class BingxStreamCodec:
    """Stream codec for the BingX perpetual swap venue (``BINGX_SWAP``).

    No client heartbeat: the server sends ``Ping`` every 5 s and the codec answers each with a
    :class:`Reply` (``Pong``); the transport's idle RFC ping covers a silent server.
    """

    heartbeat: Heartbeat | None = None

    def __init__(self, spec: VenueSpec) -> None:
        self.spec = spec
        self.venue = spec.id
        self._push = msgspec.json.Decoder(schemas.KlinePush)
        self._any = msgspec.json.Decoder()
        self._encoder = msgspec.json.Encoder()
        self._intervals = frozenset(spec.intervals)
        #: dataType -> stream key, filled on first sight
        self._names: dict[str, StreamKey] = {}

    # -- names ------------------------------------------------------------------------------
    def native_symbol(self, symbol: str) -> str:
        return native_symbol(symbol)

    def stream_name(self, key: StreamKey) -> str:
        if key.interval not in self._intervals:
            raise ConfigError(f"{self.venue} has no interval {key.interval!r}")
        return f"{native_symbol(key.symbol)}{schemas.KLINE_TAG}{key.interval}"

    # -- outgoing frames ----------------------------------------------------------------------
    def connect_url(self, base: str, streams: Sequence[str]) -> str:
        """The base URL itself: BingX has no streams in the URL, every topic is subscribed live."""
        return base

    def _request(self, req_type: str, streams: Sequence[str], request_id: int) -> str:
        if len(streams) != 1:
            raise ValueError(f"BingX takes exactly one dataType per {req_type!r} message, "
                             f"got {len(streams)} (spec.max_streams_per_subscribe is 1)")
        return self._encoder.encode(
            schemas.Request(str(request_id), req_type, streams[0])).decode()

    def subscribe(self, streams: Sequence[str], request_id: int) -> str:
        """``{"id":"7","reqType":"sub","dataType":"BTC-USDT@kline_1m"}``; the int id is sent as
        its decimal string (BingX ids are strings) and read back as an int from the ack."""
        return self._request(schemas.SUB, streams, request_id)

    def unsubscribe(self, streams: Sequence[str], request_id: int) -> str:
        return self._request(schemas.UNSUB, streams, request_id)

    # -- incoming frames ----------------------------------------------------------------------
    def decode(self, frame: Frame) -> Message | list[Message]:
        if isinstance(frame, str):
            data: bytes | bytearray | memoryview = frame.encode()
        elif frame[:2] == _GZIP_MAGIC:
            inflater = zlib.decompressobj(31)
            try:
                data = inflater.decompress(frame, MAX_FRAME_BYTES)
            except zlib.error as exc:
                return Malformed(f"invalid gzip: {exc}", snippet(frame))
            if inflater.unconsumed_tail:
                return Malformed(f"gzip frame inflates beyond {MAX_FRAME_BYTES} bytes",
                                 snippet(frame))
            if not inflater.eof:
                return Malformed("truncated gzip frame", snippet(frame))
        else:
            data = frame  # a text frame: passed through, as BingX clients do
        if data == _PING:
            return Reply(schemas.PONG)
        try:
            push = self._push.decode(data)
        except (msgspec.DecodeError, ValueError):
            return self._decode_other(data)
        if push.code != 0 or not push.data:
            return self._decode_other(data)
        key = self._route(push.dataType)
        if key is None:
            return Malformed(f"unroutable kline dataType {push.dataType[:60]!r}", snippet(data))
        return self._candles(key, push.data, data)

    def _route(self, data_type: str) -> StreamKey | None:
        key = self._names.get(data_type)
        if key is None:
            key = parse_data_type(self.venue, data_type, self._intervals)
            if key is not None and len(self._names) < _NAME_CACHE_MAX:
                self._names[data_type] = key
        return key

    def _candles(self, key: StreamKey, klines: Sequence[schemas.Kline],
                 data: bytes | bytearray | memoryview) -> Message | list[Message]:
        """Every candle of a push, oldest first; a bad one is ``Malformed`` (with its stream
        key), the others still count."""
        if len(klines) > MAX_CANDLES_PER_PUSH:
            return Malformed(f"push with {len(klines)} candles", snippet(data), key)
        out: list[Message] = []
        for k in sorted(klines, key=_open_time) if len(klines) > 1 else klines:
            candle = kline_to_candle(self.venue, key.symbol, key.interval, k)
            problem = candle_problem(candle)
            out.append(candle if problem is None
                       else Malformed(f"kline with {problem}", snippet(data), key))
        return out[0] if len(out) == 1 else out

    def _decode_other(self, data: bytes | bytearray | memoryview) -> Message | list[Message]:
        try:
            obj = self._any.decode(data)
        except msgspec.DecodeError as exc:
            text = bytes(data[:16]).strip()
            if text in (b"Pong", b"pong", b"ping"):
                return Ignored(text.decode())
            return Malformed(f"invalid JSON: {exc}", snippet(data))
        except (ValueError, RecursionError) as exc:  # an integer too large to convert, say
            return Malformed(f"undecodable JSON: {exc}"[:200], snippet(data))
        if not isinstance(obj, dict):
            return Malformed("frame is not a JSON object", snippet(data))
        code = obj.get("code", 0)
        if not isinstance(code, int) or isinstance(code, bool) or abs(code) > 1 << 62:
            return Malformed(f"non-integer code {str(code)[:30]!r}", snippet(data))
        has_id = "id" in obj
        rid = _request_id(obj.get("id")) if has_id else None
        msg = obj.get("msg")
        msg = msg[:300] if isinstance(msg, str) else ("" if msg is None else str(msg)[:300])
        if code != 0:
            return ErrorReply(rid, code, f"{describe_code(code, msg)} (code {code})")
        if has_id:
            return Ack(rid, obj.get("data"))
        data_type = obj.get("dataType")
        if not isinstance(data_type, str):
            return Ignored("unknown")
        if schemas.KLINE_TAG not in data_type:
            return Ignored(data_type[:60])
        return self._odd_push(obj, data_type, data)

    def _odd_push(self, obj: dict[str, Any], data_type: str,
                  data: bytes | bytearray | memoryview) -> Message | list[Message]:
        """A kline push the typed decoder refused: the 2023 shape (``data`` an object, ``T``
        the candle's last millisecond), an empty list, or wrong field types."""
        key = self._route(data_type)
        if key is None:
            return Malformed(f"unroutable kline dataType {data_type[:60]!r}", snippet(data))
        rows = obj.get("data")
        if isinstance(rows, dict):
            rows = [rows]
        if not isinstance(rows, list) or not rows:
            return Malformed("kline push without candles", snippet(data), key)
        try:
            klines = msgspec.convert(rows, list[schemas.Kline])
        except msgspec.ValidationError as exc:
            return Malformed(f"bad kline: {exc}", snippet(data), key)
        aligned = [schemas.Kline(k.c, k.o, k.h, k.l, k.v, align(k.T, key.interval))
                   for k in klines]
        return self._candles(key, aligned, data)


def _open_time(k: schemas.Kline) -> int:
    return k.T


def _request_id(value: object) -> int | str | None:
    """The ack's id as we sent it: our ids are ints sent as decimal strings. Anything else is
    kept as (bounded) text: a 4,301-digit id must not raise on conversion."""
    if isinstance(value, str):
        if value.isascii() and value.isdigit() and len(value) <= 18:
            return int(value)
        return value[:64]
    if isinstance(value, int) and not isinstance(value, bool):
        return value if abs(value) < 1 << 62 else str(value)[:64]
    return None if value is None else str(value)[:64]
