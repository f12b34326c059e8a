"""An in-process :class:`Connector` for fast, deterministic tests of the session logic.

Like ``httpx.MockTransport``: the code under test is the real session; only the bytes stay in
memory. A test plays the venue through :class:`MemoryPeer` — the server end of each connection —
reading what the client sent (with the loop time it was sent, to check pacing) and pushing
frames, pings and closes. Frames pushed while the client paused reading are held back until it
resumes, as a kernel socket buffer would.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Literal

import msgspec

from candlekeeper.transport.base import ConnectError, FrameHandler

SentKind = Literal["text", "ping", "pong", "close"]


class Sent(msgspec.Struct, frozen=True):
    """Something the client sent, and the event-loop time it was sent."""

    kind: SentKind
    payload: str | bytes
    at: float


class MemoryPeer:
    """The server end of one in-memory connection."""

    def __init__(self, url: str, handler: FrameHandler) -> None:
        self.url = url
        self._handler = handler
        self.sent: asyncio.Queue[Sent] = asyncio.Queue()
        self.closed = False
        self.paused = False
        self._held: deque[Callable[[], None]] = deque()
        self._closed_event = asyncio.Event()
        self.close_reason = ""

    # -- server -> client --------------------------------------------------------------------
    def send(self, data: bytes | str) -> None:
        """Deliver one data frame to the client (now, or when it resumes reading)."""
        self._deliver(lambda: self._handler.on_frame(data))

    def ping(self, payload: bytes = b"") -> None:
        self._deliver(lambda: self._handler.on_ping(payload))

    def pong(self, payload: bytes = b"") -> None:
        self._deliver(lambda: self._handler.on_pong(payload))

    def drop(self, reason: str = "server closed the connection") -> None:
        """Close from the server side (like a TCP reset or a CLOSE frame)."""
        self._finish(reason)

    def _deliver(self, fn: Callable[[], None]) -> None:
        if self.closed:
            return
        if self.paused or self._held:
            self._held.append(fn)
        else:
            fn()

    # -- client -> server --------------------------------------------------------------------
    async def recv(self, timeout: float = 5.0) -> Sent:
        """The next thing the client sent."""
        async with asyncio.timeout(timeout):
            return await self.sent.get()

    async def recv_text(self, timeout: float = 5.0) -> Sent:
        """The next text message the client sent, skipping control frames."""
        while True:
            item = await self.recv(timeout)
            if item.kind == "text":
                return item

    def _client_sent(self, kind: SentKind, payload: str | bytes) -> None:
        if self.closed:
            raise ConnectionResetError("send on a closed memory connection")
        self.sent.put_nowait(Sent(kind, payload, asyncio.get_running_loop().time()))

    def _pause(self) -> None:
        self.paused = True

    def _resume(self) -> None:
        self.paused = False
        while self._held and not self.paused and not self.closed:
            self._held.popleft()()

    def _finish(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self._held.clear()
        self._closed_event.set()
        self._handler.on_closed(reason)

    async def wait_closed(self) -> None:
        await self._closed_event.wait()


class MemoryConnection:
    """The client end, as handed to the session."""

    def __init__(self, peer: MemoryPeer) -> None:
        self._peer = peer

    @property
    def url(self) -> str:
        return self._peer.url

    @property
    def closed(self) -> bool:
        return self._peer.closed

    def send_text(self, text: str) -> None:
        self._peer._client_sent("text", text)

    def send_ping(self, payload: bytes = b"") -> None:
        self._peer._client_sent("ping", payload)

    def send_pong(self, payload: bytes) -> None:
        self._peer._client_sent("pong", payload)

    def pause_reading(self) -> None:
        self._peer._pause()

    def resume_reading(self) -> None:
        self._peer._resume()

    def close(self) -> None:
        if not self._peer.closed:
            self._peer.sent.put_nowait(Sent("close", b"", asyncio.get_running_loop().time()))
            self._peer._finish("closed by client")

    async def wait_closed(self) -> None:
        await self._peer.wait_closed()


class MemoryConnector:
    """Hands each new connection's server end to the test through :attr:`peers`.

    ``refuse`` makes connects fail (``None`` to accept again); :attr:`attempts` counts every
    connect call with its URL.
    """

    def __init__(self) -> None:
        self.peers: asyncio.Queue[MemoryPeer] = asyncio.Queue()
        self.attempts: list[str] = []
        self.refuse: str | None = None

    async def connect(self, url: str, handler: FrameHandler) -> MemoryConnection:
        self.attempts.append(url)
        if self.refuse is not None:
            raise ConnectError(f"cannot connect to {url}: {self.refuse}")
        peer = MemoryPeer(url, handler)
        self.peers.put_nowait(peer)
        return MemoryConnection(peer)

    async def accept(self, timeout: float = 5.0) -> MemoryPeer:
        """The server end of the next connection the client opens."""
        async with asyncio.timeout(timeout):
            return await self.peers.get()
