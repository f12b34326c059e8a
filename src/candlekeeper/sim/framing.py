"""How a simulated venue turns a payload into the bytes of one WebSocket frame, and back.

Frames are built here, complete, and written straight to the socket by the server and the
pushers: a push costs one ``transport.write`` and no per-connection task or queue, and frames
stay in the order they were written. A venue either sends plain text frames
(:class:`TextFraming`) or gzip-compresses every message into a binary frame
(:class:`GzipFraming`); its personality says which.
"""

from __future__ import annotations

import struct
import zlib
from typing import Protocol

_pack_16 = struct.Struct("!BBH").pack
_pack_64 = struct.Struct("!BBQ").pack

TEXT = 0x81  # FIN + text opcode
BINARY = 0x82  # FIN + binary opcode


def ws_frame(opcode_byte: int, payload: bytes) -> bytes:
    """An unmasked, final frame (server-to-client frames are never masked)."""
    n = len(payload)
    if n < 126:
        return bytes((opcode_byte, n)) + payload
    if n < 65536:
        return _pack_16(opcode_byte, 126, n) + payload
    return _pack_64(opcode_byte, 127, n) + payload


def text_frame(payload: bytes) -> bytes:
    return ws_frame(TEXT, payload)


def frame_body(frame: bytes) -> bytes:
    """The payload of an unmasked server frame built by :func:`ws_frame`."""
    n = frame[1] & 0x7F
    return frame[2 + (2 if n == 126 else 8 if n == 127 else 0):]


class Framing(Protocol):
    """How a venue turns a payload into the bytes of one WebSocket frame, and back."""

    def frame(self, payload: bytes) -> bytes: ...

    def payload(self, frame: bytes) -> bytes: ...


class TextFraming:
    """Every server message is a plain text frame."""

    def frame(self, payload: bytes) -> bytes:
        return ws_frame(TEXT, payload)

    def payload(self, frame: bytes) -> bytes:
        return frame_body(frame)


def gzip_bytes(payload: bytes, level: int = 6) -> bytes:
    """A gzip member (RFC 1952) of ``payload``; zlib with ``wbits=31`` is ~3x faster than
    ``gzip.compress`` for small frames and writes a zero mtime, so output is deterministic."""
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    return comp.compress(payload) + comp.flush()


class GzipFraming:
    """Every server message is gzip-compressed and sent as a binary frame."""

    def frame(self, payload: bytes) -> bytes:
        return ws_frame(BINARY, gzip_bytes(payload))

    def payload(self, frame: bytes) -> bytes:
        return zlib.decompress(frame_body(frame), 31)
