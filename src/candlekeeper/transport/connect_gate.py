"""Pacing of new WebSocket connections against a venue's per-IP handshake limits.

Venues cap how many connections one IP may open per window (a few per second, or a few hundred
per 5 minutes — ``VenueSpec.connect_limits``). A process opening many
connections at once (a start with several hundred streams, a reconnect after the network came
back) would otherwise open them all in the same instant and get refused, then back off and
retry, refused again. Every connection a process opens to a venue — from any pool, any session
and any rotation — goes through one :class:`ConnectGate` for that venue, which grants each
handshake a moment at which no window would be exceeded.

The gate is pure (time is passed in, nothing awaits inside it), so one instance can be shared by
every event loop of the process. A small margin widens each window: the venue counts arrivals,
and a handshake can take a little longer on the wire than the one before it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Final

from candlekeeper.transport.base import Connection, Connector, FrameHandler
from candlekeeper.venues.contract import RestWindow, VenueSpec

#: each window is treated as this much longer than the venue states
WINDOW_MARGIN: Final = 0.1


class ConnectGate:
    """Grants handshake times so that no ``(seconds, limit)`` window is ever exceeded."""

    def __init__(self, windows: tuple[RestWindow, ...], *, margin: float = WINDOW_MARGIN) -> None:
        if any(w.limit < 1 or w.seconds <= 0 for w in windows):
            raise ValueError(f"bad connection limits {windows}")
        self.windows = tuple((w.seconds * (1 + margin), w.limit) for w in windows)
        self._longest = max((s for s, _ in self.windows), default=0.0)
        self._granted: deque[float] = deque()  # grant times, ascending
        self._lock = threading.Lock()
        #: handshakes that had to wait for the gate, ever
        self.delayed = 0

    def reserve(self, now: float) -> float:
        """Reserve the earliest allowed moment at or after ``now``; return the wait (seconds)."""
        with self._lock:
            while self._granted and self._granted[0] <= now - self._longest:
                self._granted.popleft()
            # never before an earlier grant: handshakes go out in the order they asked
            at = max(now, self._granted[-1]) if self._granted else now
            for seconds, limit in self.windows:
                # the grant ``limit`` places back must have left the window by ``at``
                if len(self._granted) >= limit:
                    at = max(at, self._granted[-limit] + seconds)
            self._granted.append(at)
            if at > now:
                self.delayed += 1
            return at - now


class GatedConnector:
    """A :class:`Connector` that waits for its gate before each handshake."""

    def __init__(self, inner: Connector, gate: ConnectGate,
                 now: Callable[[], float]) -> None:
        self.inner, self.gate, self._now = inner, gate, now

    async def wait_turn(self) -> None:
        """Wait until the gate grants this handshake its moment."""
        wait = self.gate.reserve(self._now())
        if wait > 0:
            await asyncio.sleep(wait)

    async def connect(self, url: str, handler: FrameHandler) -> Connection:
        await self.wait_turn()
        return await self.inner.connect(url, handler)


async def connect_within(connector: Connector, url: str, handler: FrameHandler,
                         timeout: float) -> Connection:
    """Open one connection, the handshake bounded by ``timeout``; a wait for the venue's
    connection gate comes first and does not count against it (a pool of a hundred connections
    to a venue allowing three per second waits half a minute for its last turn, and that is not
    the handshake failing)."""
    if isinstance(connector, GatedConnector):
        await connector.wait_turn()
        connector = connector.inner
    return await asyncio.wait_for(connector.connect(url, handler), timeout)


_GATES: dict[tuple[str, tuple[RestWindow, ...]], ConnectGate] = {}
_GATES_LOCK = threading.Lock()


def gate_for(spec: VenueSpec) -> ConnectGate | None:
    """The process-wide gate of one venue (None when the venue states no connection limit)."""
    if not spec.connect_limits:
        return None
    with _GATES_LOCK:
        key = (spec.id, spec.connect_limits)
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = ConnectGate(spec.connect_limits)
        return gate
