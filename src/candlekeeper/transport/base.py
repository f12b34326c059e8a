"""The seam between the venue-agnostic session and a WebSocket implementation.

The session never sees a WebSocket library: it opens connections through a :class:`Connector`
and receives everything through a :class:`FrameHandler` whose methods are *synchronous
callbacks*. Push-style delivery keeps the hot path free of per-frame awaits and tasks (the
picows model); a pull-style library can still be adapted with one reader task per connection.

Implementations: :mod:`candlekeeper.transport.websocket` (real sockets) and
:mod:`candlekeeper.transport.memory` (in-process, for fast unit tests of the session logic).
"""

from __future__ import annotations

from typing import Protocol

from candlekeeper.errors import TransportError
from candlekeeper.venues.contract import Frame


class FrameHandler(Protocol):
    """Receives what arrives on one connection, in order, on the event loop thread.

    Methods must not block; they may call :class:`Connection` send methods.
    """

    def on_frame(self, data: Frame) -> None:
        """One complete data message (text or binary; fragments already joined). A
        ``memoryview`` is only valid during this call."""
        ...

    def on_ping(self, payload: bytes) -> None:
        """An RFC 6455 PING control frame; the handler decides when to answer it."""
        ...

    def on_pong(self, payload: bytes) -> None:
        """An RFC 6455 PONG control frame."""
        ...

    def on_closed(self, reason: str) -> None:
        """The connection is gone (called exactly once); ``reason`` is one human line."""
        ...


class Connection(Protocol):
    """One open WebSocket connection, as the session drives it."""

    @property
    def url(self) -> str: ...

    @property
    def closed(self) -> bool: ...

    def send_text(self, text: str) -> None: ...

    def send_ping(self, payload: bytes = b"") -> None: ...

    def send_pong(self, payload: bytes) -> None: ...

    def pause_reading(self) -> None:
        """Stop reading from the socket (backpressure); frames already read may still arrive."""
        ...

    def resume_reading(self) -> None: ...

    def close(self) -> None:
        """Start a close; idempotent. ``FrameHandler.on_closed`` follows."""
        ...

    async def wait_closed(self) -> None: ...


class Connector(Protocol):
    """Opens connections. Errors are :class:`ConnectError` (retryable) or ``ConfigError``."""

    async def connect(self, url: str, handler: FrameHandler) -> Connection: ...


class ConnectError(TransportError):
    """A connection could not be opened (refused, DNS, TLS, handshake status, timeout)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        #: HTTP status of a refused WebSocket upgrade, when there was one
        self.status = status


class ConnectionLost(TransportError):
    """An open connection broke, or the session gave up on it (ack timeout, idle)."""
