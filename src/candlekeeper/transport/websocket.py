"""The real :class:`Connector`, on picows.

Chosen by measurement (``benchmarks/ws_libs.py``, 300k real kline frames from a local
server in another process, 2-core machine): picows received ~1.9M msgs/s at 0.05 CPU s per 100k
messages, aiohttp ~0.5M at 0.19, websockets ~0.29M at 0.35. picows also delivers frames through a
synchronous callback, which is exactly the session's push model (no per-frame await).

picows hands over raw frames: this module joins fragmented messages (never beyond
``max_message_bytes``: a server that streams continuation frames without end is cut off with
close code 1009, counted and logged, instead of taking the process's memory), answers the
server's CLOSE, and maps library errors onto :mod:`candlekeeper.errors` at the boundary. Pings
are *not* auto-answered here; they go to the handler (the session answers them and counts them
against the venue's control-message budget).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from typing import Any

import picows

from candlekeeper.errors import ConfigError
from candlekeeper.transport.base import ConnectError, FrameHandler

_TEXT = picows.WSMsgType.TEXT
_BINARY = picows.WSMsgType.BINARY
_CONT = picows.WSMsgType.CONTINUATION
_PING = picows.WSMsgType.PING
_PONG = picows.WSMsgType.PONG
_CLOSE = picows.WSMsgType.CLOSE


class _Listener(picows.WSListener):
    """Adapts picows callbacks to a :class:`FrameHandler`."""

    def __init__(self, handler: FrameHandler, max_message_bytes: int) -> None:
        super().__init__()
        self._handler = handler
        self._on_frame = handler.on_frame
        self._fragments: list[bytes] | None = None
        self._fragment_bytes = 0
        self._max_message = max_message_bytes
        self._close_reason = ""
        #: set once we refused an oversized message: its buffered continuations are ignored
        self._dropping = False

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        mt = frame.msg_type
        if mt is _TEXT or mt is _BINARY:
            if frame.fin:  # bytes: for small frames cheaper than a memoryview (measured)
                self._on_frame(frame.get_payload_as_bytes())
            else:
                first = frame.get_payload_as_bytes()
                self._fragments, self._fragment_bytes = [first], len(first)
        elif mt is _CONT:
            if self._fragments is None:
                if self._dropping:  # the rest of the message we refused, still buffered
                    return
                self._close_reason = "protocol error: continuation frame without a start"
                transport.send_close(picows.WSCloseCode.PROTOCOL_ERROR)
                transport.disconnect()
                return
            part = frame.get_payload_as_bytes()
            self._fragment_bytes += len(part)
            if self._fragment_bytes > self._max_message:
                size, self._fragments = self._fragment_bytes, None
                self._close_reason = (f"message larger than {self._max_message} bytes "
                                      f"({size} so far, fragmented): connection dropped")
                self._dropping = True
                self._handler.on_oversized(size)
                transport.send_close(picows.WSCloseCode.MESSAGE_TOO_BIG)
                transport.disconnect()
                return
            self._fragments.append(part)
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), None
                self._on_frame(data)
        elif mt is _PING:
            self._handler.on_ping(frame.get_payload_as_bytes())
        elif mt is _PONG:
            self._handler.on_pong(frame.get_payload_as_bytes())
        elif mt is _CLOSE:
            code = frame.get_close_code()
            reason = frame.get_close_reason() if frame.payload_size > 2 else ""
            self._close_reason = (f"server closed the connection (code {code.value}"
                                  f"{', ' + repr(reason) if reason else ''})")
            if not transport.is_close_frame_sent:
                transport.send_close(code if code is not picows.WSCloseCode.NO_INFO
                                     else picows.WSCloseCode.OK)
            transport.disconnect()

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self._handler.on_closed(self._close_reason or "connection lost")


#: The largest message (one frame, or fragments joined) accepted from a venue. Market data
#: messages are at most a few KiB; 16 MiB leaves room for any snapshot a venue could send.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

#: Kernel receive buffer per connection. Linux autotuning grows loopback buffers to 32 MiB, and
#: picows then hands over up to ~90k frames per read before the loop runs anything else: consumer
#: tasks starve, queues balloon and RSS triples (benchmarks/README.md). 256 KiB still holds
#: seconds of the busiest kline traffic and keeps each read to a few hundred frames.
RECEIVE_BUFFER_BYTES = 256 * 1024


class PicowsConnection:
    """The client end of one picows connection."""

    def __init__(self, url: str, transport: picows.WSTransport,
                 receive_buffer: int | None = RECEIVE_BUFFER_BYTES) -> None:
        self._url = url
        self._transport = transport
        self._raw: asyncio.Transport = transport.underlying_transport
        sock = self._raw.get_extra_info("socket")
        if receive_buffer and sock is not None:
            # some platforms refuse; kernel autotuning then applies
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)

    @property
    def url(self) -> str:
        return self._url

    @property
    def closed(self) -> bool:
        return bool(self._transport.is_disconnected)

    def send_text(self, text: str) -> None:
        self._transport.send(_TEXT, text.encode())

    def send_ping(self, payload: bytes = b"") -> None:
        self._transport.send_ping(payload)

    def send_pong(self, payload: bytes) -> None:
        self._transport.send_pong(payload)

    def pause_reading(self) -> None:
        if self._raw.is_reading():
            self._raw.pause_reading()

    def resume_reading(self) -> None:
        if not self._raw.is_reading() and not self._raw.is_closing():
            self._raw.resume_reading()

    def close(self) -> None:
        if self._transport.is_disconnected:
            return
        if not self._transport.is_close_frame_sent:
            self._transport.send_close(picows.WSCloseCode.OK)
        self._transport.disconnect()

    async def wait_closed(self) -> None:
        await self._transport.wait_disconnected()


class PicowsConnector:
    """Opens WebSocket connections with picows (``ws://`` and ``wss://``)."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None,
                 handshake_timeout_s: float = 10.0, max_frame_size: int = MAX_MESSAGE_BYTES,
                 max_message_bytes: int = MAX_MESSAGE_BYTES,
                 extra_headers: dict[str, str] | None = None) -> None:
        self._ssl = ssl_context
        self._handshake_timeout = handshake_timeout_s
        self._max_frame_size = max_frame_size
        self._max_message = max_message_bytes
        self._headers = extra_headers

    async def connect(self, url: str, handler: FrameHandler) -> PicowsConnection:
        kwargs: dict[str, Any] = {}
        if self._headers:
            kwargs["extra_headers"] = self._headers
        try:
            transport, _ = await picows.ws_connect(
                lambda: _Listener(handler, self._max_message), url,
                ssl_context=self._ssl,
                websocket_handshake_timeout=self._handshake_timeout,
                enable_auto_pong=False,
                max_frame_size=self._max_frame_size,
                # read what the kernel buffer holds in one go: fewer, larger batches for the
                # consumers' tasks (one wake-up per read, not per frame)
                read_buffer_init_size=RECEIVE_BUFFER_BYTES,
                logger_name="candlekeeper",
                **kwargs,
            )
        except picows.WSInvalidURL as exc:
            raise ConfigError(f"invalid WebSocket URL {url!r}: {exc}") from exc
        except picows.WSHandshakeError as exc:
            status = exc.response.status if exc.response is not None else None
            what = f"HTTP {int(status)}" if status is not None else str(exc)
            raise ConnectError(f"WebSocket upgrade refused by {url}: {what}",
                               status=int(status) if status is not None else None) from exc
        except picows.WSError as exc:
            raise ConnectError(f"WebSocket error connecting to {url}: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                reason = "WebSocket handshake timed out"
            elif isinstance(exc, socket.gaierror):  # errno is a getaddrinfo code, not errno
                reason = f"cannot resolve host (no network or DNS?): {exc.strerror or exc}"
            elif exc.errno:  # asyncio's text is "Connect call failed (...)"; say why
                reason = os.strerror(exc.errno)
            else:
                reason = str(exc)
            raise ConnectError(f"cannot connect to {url}: {reason or type(exc).__name__}") \
                from exc
        return PicowsConnection(url, transport)
