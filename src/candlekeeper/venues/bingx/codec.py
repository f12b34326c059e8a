"""Sans-I/O BingX perpetual swap kline codec (protocols.md §C).

Every server frame is gzip-compressed (the heartbeat ``Ping`` too); the transport hands us the
payload whatever the WebSocket opcode was, so gzip is recognised by its magic bytes and anything
else is taken as plain text. The hot path inflates, decodes a :class:`~schemas.KlinePush` in one
C call and builds a ``Candle``; everything else (acks, error frames, other pushes, the older
2023 push shape) goes through a generic decode. Bad input becomes ``Malformed``, never an
exception.

BingX has no closed flag: pushes are always ``closed=False`` and the feed infers a close from
the next push with a later open time (``VenueSpec.closed_flag`` is False).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import align, close_time
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.core.symbols import normalize_symbol
from candlekeeper.errors import ConfigError, DecodeError
from candlekeeper.venues.base import (
    Ack,
    ErrorReply,
    Frame,
    Ignored,
    Malformed,
    Message,
    Reply,
    RestRequest,
    VenueSpec,
    klines_rest_request,
)
from candlekeeper.venues.bingx import schemas
from candlekeeper.venues.bingx.endpoints import RATE_LIMITED_CODE, TOPIC_LIMIT_CODE

_GZIP_MAGIC: Final = b"\x1f\x8b"
_PING: Final = schemas.PING.encode()
#: a decompressed frame larger than this is refused (a push is ~150 bytes; a bomb is not a frame)
MAX_FRAME_BYTES: Final = 1 << 20
#: quote assets tried, longest first, when a canonical symbol has to be split (``BTCUSDT``)
QUOTE_ASSETS: Final = ("FDUSD", "USDT", "USDC", "BUSD", "USD")
#: distinct dataTypes remembered by the hot path (bounded: a server cannot grow it forever)
_NAME_CACHE_MAX: Final = 10_000

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
    if meaning is None:
        return msg or "no message"
    return f"{meaning}: {msg}" if msg else meaning


def gzip_frame(payload: bytes | str) -> bytes:
    """Compress a server frame as BingX does (used by the simulator and tests)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return gzip.compress(data, compresslevel=1, mtime=0)


def kline_to_candle(venue: str, symbol: str, interval: str, k: schemas.Kline) -> Candle:
    """Wire kline -> live ``Candle``. ``T`` is the open time; BingX sends no trade count, quote
    or taker volume, trade ids or event time, so those are ``None``; never closed."""
    return Candle(venue, symbol, interval, k.T, close_time(k.T, interval), k.o, k.h, k.l, k.c,
                  k.v, None, None, None, None, None, None, False, None, "ws")


def candle_to_kline(c: Candle) -> schemas.Kline:
    """``Candle`` -> wire kline (used by the simulator)."""
    return schemas.Kline(c=c.close_str, o=c.open_str, h=c.high_str, l=c.low_str,
                         v=c.volume_str, T=c.open_time)


def candle_to_rest_kline(c: Candle) -> schemas.RestKline:
    """``Candle`` -> one REST v3 klines row (used by the simulator)."""
    return schemas.RestKline(open=c.open_str, close=c.close_str, high=c.high_str,
                             low=c.low_str, volume=c.volume_str, time=c.open_time)


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


class BingxCodec:
    """Codec for the BingX perpetual swap venue (``BINGX_SWAP``)."""

    def __init__(self, spec: VenueSpec) -> None:
        self.spec = spec
        self.venue = spec.id
        self._push = msgspec.json.Decoder(schemas.KlinePush)
        self._any = msgspec.json.Decoder()
        self._klines = msgspec.json.Decoder(schemas.KlinesResponse)
        self._contracts = msgspec.json.Decoder(schemas.ContractsResponse)
        self._encoder = msgspec.json.Encoder()
        self._intervals = frozenset(spec.intervals)
        #: dataType -> (canonical symbol, interval), filled on first sight
        self._names: dict[str, tuple[str, str]] = {}
        #: canonical -> native, learnt from the contracts list (exact for odd listings)
        self._native: dict[str, str] = {}

    # -- names ------------------------------------------------------------------------------
    def native_symbol(self, symbol: str) -> str:
        """Any user form -> ``BTC-USDT`` (uppercase, hyphenated)."""
        known = self._native.get(symbol)
        if known is not None:
            return known
        base, quote = split_symbol(symbol)
        return f"{base}-{quote}"

    def canonical_symbol(self, native: str) -> str:
        """``BTC-USDT`` -> ``BTCUSDT``, the form used in storage, events and metrics."""
        return normalize_symbol(native)

    def stream_name(self, key: StreamKey) -> str:
        if key.interval not in self._intervals:
            raise ConfigError(f"{self.venue} has no interval {key.interval!r}")
        return f"{self.native_symbol(key.symbol)}{schemas.KLINE_TAG}{key.interval}"

    def stream_key(self, stream_name: str) -> StreamKey:
        symbol, sep, interval = stream_name.partition(schemas.KLINE_TAG)
        if not sep or not symbol or interval not in self._intervals:
            raise DecodeError(f"not a {self.venue} kline dataType: {stream_name!r}")
        try:
            return StreamKey(self.venue, normalize_symbol(symbol), interval)
        except ConfigError as exc:
            raise DecodeError(f"bad symbol in dataType {stream_name!r}: {exc}") from exc

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

    def list_subscriptions(self, request_id: int) -> str:
        """BingX has no such request; sending a made-up one could earn an error frame or a
        disconnect, so this refuses clearly instead (the transport does not call it)."""
        raise NotImplementedError(f"{self.venue} has no request that lists subscriptions")

    # -- incoming frames ----------------------------------------------------------------------
    def decode(self, frame: Frame) -> Message:
        if isinstance(frame, str):
            data: bytes | bytearray | memoryview = frame.encode()
        elif frame[:2] == _GZIP_MAGIC:
            inflater = zlib.decompressobj(31)
            try:
                data = inflater.decompress(frame, MAX_FRAME_BYTES)
            except zlib.error as exc:
                return Malformed(f"invalid gzip: {exc}", _snippet(frame))
            if inflater.unconsumed_tail:
                return Malformed(f"gzip frame inflates beyond {MAX_FRAME_BYTES} bytes",
                                 _snippet(frame))
            if not inflater.eof:
                return Malformed("truncated gzip frame", _snippet(frame))
        else:
            data = frame  # a text frame: passed through, as BingX clients do
        if data == _PING:
            return Reply(schemas.PONG)
        try:
            push = self._push.decode(data)
        except msgspec.DecodeError:
            return self._decode_other(data)
        if push.code != 0 or not push.data:
            return self._decode_other(data)
        names = self._names.get(push.dataType)
        if names is None:
            names = self._learn(push.dataType)
            if names is None:
                return Malformed(f"unroutable kline dataType {push.dataType!r}", _snippet(data))
        # Real frames carry one candle; should several come, the newest is the live one (older
        # ones are superseded updates, and closes are confirmed over REST anyway).
        k = push.data[0] if len(push.data) == 1 else max(push.data, key=_open_time)
        return kline_to_candle(self.venue, names[0], names[1], k)

    def _learn(self, data_type: str) -> tuple[str, str] | None:
        """Parse a dataType once; None when it is not a kline topic we can route."""
        try:
            key = self.stream_key(data_type)
        except DecodeError:
            return None
        names = (key.symbol, key.interval)
        if len(self._names) < _NAME_CACHE_MAX:
            self._names[data_type] = names
        return names

    def _decode_other(self, data: bytes | bytearray | memoryview) -> Message:
        try:
            obj = self._any.decode(data)
        except msgspec.DecodeError as exc:
            text = bytes(data[:16]).strip()
            if text in (b"Pong", b"pong", b"ping"):
                return Ignored(text.decode())
            return Malformed(f"invalid JSON: {exc}", _snippet(data))
        if not isinstance(obj, dict):
            return Malformed("frame is not a JSON object", _snippet(data))
        code = obj.get("code", 0)
        if not isinstance(code, int) or isinstance(code, bool):
            return Malformed(f"non-integer code {code!r}", _snippet(data))
        has_id = "id" in obj
        rid = _request_id(obj.get("id")) if has_id else None
        msg = obj.get("msg")
        msg = msg if isinstance(msg, str) else ("" if msg is None else str(msg))
        if code != 0:
            return ErrorReply(rid, code, f"{describe_code(code, msg)} (code {code})")
        if has_id:
            return Ack(rid, obj.get("data"))
        data_type = obj.get("dataType")
        if not isinstance(data_type, str):
            return Ignored("unknown")
        if schemas.KLINE_TAG not in data_type:
            return Ignored(data_type)
        return self._odd_push(obj, data_type, data)

    def _odd_push(self, obj: dict[str, Any], data_type: str,
                  data: bytes | bytearray | memoryview) -> Message:
        """A kline push the typed decoder refused: the 2023 shape (``data`` an object, ``T``
        the candle's last millisecond), an empty list, or wrong field types."""
        names = self._learn(data_type)
        if names is None:
            return Malformed(f"unroutable kline dataType {data_type!r}", _snippet(data))
        rows = obj.get("data")
        if isinstance(rows, dict):
            rows = [rows]
        if not isinstance(rows, list) or not rows:
            return Malformed("kline push without candles", _snippet(data))
        try:
            klines = msgspec.convert(rows, list[schemas.Kline])
        except msgspec.ValidationError as exc:
            return Malformed(f"bad kline: {exc}", _snippet(data))
        k = max(klines, key=_open_time)
        k = schemas.Kline(k.c, k.o, k.h, k.l, k.v, align(k.T, names[1]))
        return kline_to_candle(self.venue, names[0], names[1], k)

    # -- REST -------------------------------------------------------------------------------
    def klines_request(self, symbol: str, interval: str, *, start_time: int | None = None,
                       end_time: int | None = None, limit: int | None = None) -> RestRequest:
        if interval not in self._intervals:
            raise ConfigError(f"{self.venue} has no interval {interval!r}")
        return klines_rest_request(self.spec, self.native_symbol(symbol), interval,
                                   start_time=start_time, end_time=end_time, limit=limit)

    def decode_klines(self, body: bytes, symbol: str, interval: str) -> list[Candle]:
        """Rows sorted by open time (BingX does not document the order), one per open time,
        all ``closed=True``: the fetcher drops the forming one by the clock, as for Binance."""
        try:
            resp = self._klines.decode(body)
        except msgspec.DecodeError as exc:
            raise DecodeError(f"{self.venue} klines body: {exc}: {_snippet(body)}") from exc
        if resp.code != 0:
            raise DecodeError(f"{self.venue} klines: code {resp.code}: "
                              f"{describe_code(resp.code, resp.msg)}")
        rows = resp.data
        if rows is None:
            return []
        if isinstance(rows, schemas.RestKline):
            rows = [rows]  # the v2 "latest candle" quirk
        venue, sym = self.venue, normalize_symbol(symbol)
        by_time = {r.time: r for r in rows}
        return [
            Candle(venue, sym, interval, t, close_time(t, interval), r.open, r.high, r.low,
                   r.close, r.volume, None, None, None, None, None, None, True, None, "rest")
            for t, r in sorted(by_time.items())
        ]

    def exchange_info_request(self) -> RestRequest:
        return RestRequest("GET", self.spec.exchange_info_path, {}, self.spec.exchange_info_weight)

    def decode_symbols(self, body: bytes) -> list[str]:
        """Canonical symbols of the contracts currently trading (``status == 1``). Their native
        forms are remembered, so ``native_symbol`` is exact for every listed contract."""
        try:
            resp = self._contracts.decode(body)
        except msgspec.DecodeError as exc:
            raise DecodeError(f"{self.venue} contracts body: {exc}: {_snippet(body)}") from exc
        if resp.code != 0:
            raise DecodeError(f"{self.venue} contracts: code {resp.code}: "
                              f"{describe_code(resp.code, resp.msg)}")
        out: set[str] = set()
        for c in resp.data or ():
            try:
                canonical = normalize_symbol(c.symbol)
            except ConfigError:
                continue
            self._native[canonical] = c.symbol.upper()
            if c.status == 1:
                out.add(canonical)
        return sorted(out)


def _open_time(k: schemas.Kline) -> int:
    return k.T


def _request_id(value: object) -> int | str | None:
    """The ack's id as we sent it: our ids are ints sent as decimal strings."""
    if isinstance(value, str):
        return int(value) if value.isascii() and value.isdigit() else value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None if value is None else str(value)


def _snippet(frame: Frame, n: int = 120) -> str:
    """The start of a frame as text, copied (a memoryview frame dies with the callback)."""
    if isinstance(frame, str):
        return frame[:n]
    return bytes(frame[:n]).decode("utf-8", "replace")
