"""What the venue server needs from a venue *personality* (Binance, BingX), as data and small
pure objects.

The server (``sim.server``) accepts sockets, runs the heartbeat and moves bytes; everything that
differs between venues is asked of a :class:`Personality`: which URL paths are market streams,
what a stream name means, the per-connection control-message state machine, how a payload
becomes a WebSocket frame (plain text vs gzip'd binary), whether the heartbeat is a protocol
ping or an in-band ``Ping`` text, and which pusher / REST API serve the venue. Venue variants
are data and small objects rather than a subclass tree of servers (architecture.md principle 8).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from aiohttp import web

    from candlekeeper.core.clock import ScaledClock
    from candlekeeper.sim.market import Market
    from candlekeeper.sim.rest import RestStats
    from candlekeeper.sim.rest_faults import RestFaults
    from candlekeeper.sim.server import VenueOptions
    from candlekeeper.sim.shaper import Shaper
    from candlekeeper.venues.contract import VenueSpec

_pack_16 = struct.Struct("!BBH").pack
_pack_64 = struct.Struct("!BBQ").pack


class WsPath(NamedTuple):
    """What a WebSocket URL asks for."""

    combined: bool  # /stream (wrapped) vs /ws (bare payloads)
    pushes_klines: bool  # False on usdm unrouted legacy URLs since the 2026-04-23 cutover
    streams: tuple[str, ...]  # streams named in the URL


class Control(NamedTuple):
    """Result of one incoming text frame: the reply *payload* (unframed) and the changes."""

    reply: bytes
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    is_error: bool = False


def ws_frame(opcode_byte: int, payload: bytes) -> bytes:
    """An unmasked, final frame (server-to-client frames are never masked)."""
    n = len(payload)
    if n < 126:
        return bytes((opcode_byte, n)) + payload
    if n < 65536:
        return _pack_16(opcode_byte, 126, n) + payload
    return _pack_64(opcode_byte, 127, n) + payload


def frame_body(frame: bytes) -> bytes:
    """The payload of an unmasked server frame built by :func:`ws_frame`."""
    n = frame[1] & 0x7F
    return frame[2 + (2 if n == 126 else 8 if n == 127 else 0):]


class Framing(Protocol):
    """How a venue turns a payload into the bytes of one WebSocket frame, and back."""

    def frame(self, payload: bytes) -> bytes: ...

    def payload(self, frame: bytes) -> bytes: ...


class TextFraming:
    """Binance: every server message is a plain text frame."""

    def frame(self, payload: bytes) -> bytes:
        return ws_frame(0x81, payload)

    def payload(self, frame: bytes) -> bytes:
        return frame_body(frame)


def gzip_bytes(payload: bytes, level: int = 6) -> bytes:
    """A gzip member (RFC 1952) of ``payload``; zlib with ``wbits=31`` is ~3x faster than
    ``gzip.compress`` for small frames and writes a zero mtime, so output is deterministic."""
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    return comp.compress(payload) + comp.flush()


class GzipFraming:
    """BingX: every server message is gzip-compressed and sent as a binary frame (§C.2)."""

    def frame(self, payload: bytes) -> bytes:
        return ws_frame(0x82, gzip_bytes(payload))

    def payload(self, frame: bytes) -> bytes:
        return zlib.decompress(frame_body(frame), 31)


class FrameSink(Protocol):
    """A connection as a pusher sees it."""

    @property
    def combined(self) -> bool: ...

    #: frame faults of this connection (``sim.shaper``); None when no fault is active
    shaper: Shaper | None

    def write(self, data: bytes) -> None: ...


class Session(Protocol):
    """The subscription state machine of one connection (Sans-I/O)."""

    combined: bool
    subscriptions: dict[str, None]

    def open_with(self, streams: tuple[str, ...]) -> tuple[str, ...] | str: ...

    def handle(self, text: str | bytes) -> Control: ...


class VenuePusher(Protocol):
    """Decides when kline frames go out and writes them to subscribed sinks."""

    frames_sent: int
    closes_sent: int
    errors: int
    shaping: bool

    def subscribe(self, sink: FrameSink, name: str) -> None: ...

    def unsubscribe(self, sink: FrameSink, name: str) -> None: ...

    def drop(self, sink: FrameSink) -> None: ...

    async def run(self) -> None: ...


class RestService(Protocol):
    """A venue's REST API as the server and the REST fault injector see it."""

    stats: RestStats
    #: REST faults of this venue, set once a fault plan touches REST (None: the fast path)
    faults: RestFaults | None

    def handles(self, path: str) -> bool: ...

    async def handle(self, request: web.Request) -> web.Response: ...

    def fault_headers(self, ip: str) -> dict[str, str]:
        """Rate-limit headers for an answer a fault produced (no request is charged)."""
        ...

    def fault_answer(self, status: int, retry_after_s: int) -> tuple[bytes, str]:
        """The venue's own body and content type for a faulted 429, 418 or 5xx."""
        ...


class Personality(Protocol):
    """Everything venue-specific the generic server asks."""

    venue: str
    framing: Framing
    #: True: the heartbeat is an in-band ``Ping`` message answered by a text ``Pong`` (BingX);
    #: False: RFC 6455 ping/pong control frames whose payload must be echoed (Binance)
    in_band_ping: bool
    #: True when the venue offers the firehose benchmark mode (Binance only)
    firehose: bool
    #: what the fault log calls the frame that closes a candle
    closing_frame_name: str

    def parse_ws_path(self, path: str, query: Mapping[str, str],
                      legacy_routes_push_klines: bool) -> WsPath | None: ...

    def parse_stream(self, name: str) -> tuple[str, str] | None:
        """Stream name -> (canonical symbol, interval); None when it is no kline stream."""
        ...

    def stream_name(self, symbol: str, interval: str) -> str: ...

    def new_session(self, is_valid: Callable[[str], bool], *, combined: bool,
                    max_streams: int, now_ms: Callable[[], int]) -> Session: ...

    def is_pong(self, text: str) -> bool:
        """Is this incoming text frame the in-band heartbeat answer?"""
        ...

    def ping_payload(self) -> bytes: ...

    def rate_limit_error(self) -> bytes:
        """Payload sent before closing a connection over the incoming-message rate."""
        ...

    def malformed(self, stream: str) -> list[bytes]:
        """Bad *frames* (already framed) the ``malformed`` fault picks from."""
        ...

    def shutdown_notice(self, now_ms: int, combined: bool) -> bytes | None:
        """The framed ``serverShutdown`` notice, or None when the venue has none."""
        ...

    def make_pusher(self, market: Market, clock: ScaledClock, opts: VenueOptions,
                    seed: int) -> VenuePusher: ...

    def make_rest(self, spec: VenueSpec, market: Market, clock: ScaledClock,
                  opts: VenueOptions) -> RestService: ...
