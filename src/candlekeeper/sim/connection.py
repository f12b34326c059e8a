"""One accepted WebSocket of a simulated venue: direct frame writes, and a deterministic close.

Frames (pushes and control replies) are written straight to the transport as complete frames, so
they stay in order and a push never waits on a slow client; a client whose unread backlog
exceeds ``slow_limit`` is disconnected, as an exchange does.

**Closing** follows RFC 6455 §7 in one fixed order, whatever the load: (1) stop writing frames;
(2) send the close frame, queued behind every frame already written; (3) wait for the client's
close frame, or ``CLOSE_TIMEOUT_S``; (4) close the socket gracefully once everything queued has
been flushed, and abort it only if the client never reads. Dropping the socket before the close
frame is flushed, or while the client may still send, would show the client an abnormal closure
(1006) instead of the code the server chose, depending on scheduling: a flaky simulator.
:meth:`Connection.abort` is the deliberate exception (a fault: a TCP reset, no close frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
import time
from collections import deque

from aiohttp import web

from candlekeeper.sim.framing import Framing
from candlekeeper.sim.personality import Session
from candlekeeper.sim.shaper import Shaper

#: how long the server waits for the client's close frame, then for its socket to flush
CLOSE_TIMEOUT_S = 2.0
_FLUSH_POLL_S = 0.005
_ids = itertools.count(1)


class Connection:
    """One accepted WebSocket, as the server, the pusher, the injector and the firehose see it."""

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport,
                 session: Session, pushes_klines: bool, slow_limit: int,
                 disconnects: dict[str, int], framing: Framing) -> None:
        self.id = next(_ids)
        self.ws, self.transport, self.session = ws, transport, session
        self.framing = framing
        self.pushes_klines = pushes_klines
        self.slow_limit = slow_limit
        #: True once no frame may be written any more (closing, closed or aborted)
        self.closed = False
        self.paused = False  # True while a firehose owns the socket
        self.close_reason: str | None = None
        #: frame faults active on this connection; None (the fast path) when there are none
        self.shaper: Shaper | None = None
        self.outstanding: dict[bytes, float] = {}  # ping payload -> monotonic time sent
        #: set by :meth:`request_close`; the connection's handler then runs :meth:`close`
        self.close_requested = asyncio.Event()
        self._close_code: int | None = 1000
        self._close_message = b""
        #: monotonic time of the last frame written (a venue's idle rule counts from it)
        self.last_sent = time.monotonic()
        self._disconnects = disconnects  # the venue's counter, by reason

    @property
    def combined(self) -> bool:
        return self.session.combined

    def write(self, data: bytes) -> None:
        if self.paused:
            return
        self.write_now(data)

    def write_now(self, data: bytes) -> None:
        if self.closed or self.transport.is_closing():
            return
        self.transport.write(data)
        self.last_sent = time.monotonic()
        if self.transport.get_write_buffer_size() > self.slow_limit:
            self.request_close("slow_consumer")

    def _count(self, reason: str) -> bool:
        if self.close_reason is not None:
            return False
        self.close_reason = reason
        self._disconnects[reason] = self._disconnects.get(reason, 0) + 1
        self.closed = True
        if self.shaper is not None:
            self.shaper.connection_closed(reason)
        return True

    def request_close(self, reason: str, *, code: int | None = 1008,
                      message: str | None = None) -> None:
        """Ask for a close with ``code`` and ``message`` (default: ``reason``); no frame is
        written after this call. ``reason`` is what ``VenueStats.disconnects`` counts.
        ``code=None``: the connection is dropped with no close frame (the client reports
        1006, "abnormal closure"), as a venue's load balancer does."""
        if self._count(reason):
            self._close_code = code
            self._close_message = (message if message is not None else reason).encode()
            self.close_requested.set()

    async def close(self) -> None:
        """The close handshake (see the module docstring). Must run in the connection's handler
        task with no concurrent ``receive``: the handshake reads the client's close frame."""
        if self._close_code is not None:
            with contextlib.suppress(Exception):
                # sends the close frame, reads until the client's (or the ws timeout), then
                # closes the transport gracefully; the outer bound covers a client that never
                # drains
                await asyncio.wait_for(self.ws.close(code=self._close_code,
                                                     message=self._close_message),
                                       2 * CLOSE_TIMEOUT_S)
        await self.flushed(CLOSE_TIMEOUT_S)

    async def flushed(self, timeout: float) -> None:
        """Close the transport once its write buffer is empty; abort after ``timeout``."""
        transport = self.transport
        transport.close()  # graceful: asyncio sends what is queued, then FIN
        deadline = time.monotonic() + timeout
        # asyncio offers no awaitable for "write buffer flushed": poll it, bounded
        while transport.get_write_buffer_size() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(_FLUSH_POLL_S)
        if transport.get_write_buffer_size():
            transport.abort()  # the client never read: nothing else would ever free it

    def abort(self, reason: str) -> None:
        """Drop the connection with a TCP reset and no close frame (an abrupt network break)."""
        if not self._count(reason):
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # SO_LINGER 0: close() sends RST, not FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class RateLimiter:
    """Incoming messages per rolling second; text frames, pings and pongs all count."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self._times: deque[float] = deque()

    def allow(self, now_s: float) -> bool:
        times = self._times
        while times and now_s - times[0] >= 1.0:
            times.popleft()
        times.append(now_s)
        return len(times) <= self.per_second


class HandshakeLimiter:
    """Events per IP in sliding wall-clock windows: WebSocket handshakes
    (``VenueSpec.connect_limits``) or incoming messages (``VenueSpec.ip_message_limits``). An
    event over any window is refused (and not counted)."""

    def __init__(self, windows: tuple[tuple[float, int], ...]) -> None:
        self.windows = windows
        self._longest = max((s for s, _ in windows), default=0.0)
        self._times: dict[str, deque[float]] = {}

    def allow(self, ip: str, now_s: float) -> bool:
        if not self.windows:
            return True
        times = self._times.setdefault(ip, deque())
        while times and now_s - times[0] >= self._longest:
            times.popleft()
        for seconds, limit in self.windows:
            if sum(1 for t in times if now_s - t < seconds) >= limit:
                return False
        times.append(now_s)
        return True
