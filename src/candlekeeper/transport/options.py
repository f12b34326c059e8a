"""The transport's public value types: listener protocol, options, per-connection statistics.

Defined apart from ``session.py`` and ``pool.py`` so both can use them without a cycle; the
public import path is :mod:`candlekeeper.transport` (or ``candlekeeper.transport.pool``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.events import ConnectionState, ConnectionStatus, StreamStatus
from candlekeeper.core.stream_key import StreamKey

#: Delivers one stream's candles; returns True when the consumer is under pressure (the
#: session then stops reading the socket until ``StreamListener.relieve`` returns).
CandleSink = Callable[[Candle], bool]


class StreamListener(Protocol):
    """Where a session delivers what it receives. Called on the event loop thread."""

    def stream_sink(self, key: StreamKey) -> CandleSink:
        """The hot path, resolved once per stream when the session is built: the returned
        callable receives every kline frame of ``key``, synchronously, in arrival order. Its
        boolean result is the backpressure signal (TCP backpressure reaches the venue instead
        of memory growing)."""
        ...

    def on_stream_status(self, status: StreamStatus) -> None: ...

    def on_connection_status(self, status: ConnectionStatus) -> None: ...

    def on_malformed(self, key: StreamKey) -> None:
        """A frame of this stream was dropped as malformed (e.g. a closed candle with an
        impossible price): fetch what it carried some other way."""
        ...

    async def relieve(self) -> None: ...


class TransportOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Tunables; the defaults are issue 2's. Times are wall seconds unless named ``_ms``
    (venue time, converted through the injected ``Clock``)."""

    #: reconnect backoff: first delay, growth factor, cap, downward jitter fraction
    backoff_initial_s: float = 1.0
    backoff_factor: float = 2.0
    backoff_max_s: float = 60.0
    backoff_jitter: float = 0.2
    #: a connection that lived this long resets the backoff to its first delay
    healthy_after_s: float = 30.0
    #: no reply to a SUBSCRIBE within this long -> reconnect
    ack_timeout_s: float = 10.0
    #: venue ms added to ``min(interval, 60 s)`` before a quiet stream counts as stalled
    stall_grace_ms: int = 5_000
    connect_timeout_s: float = 10.0
    #: streams per connection; None = the venue spec's limit
    max_streams_per_connection: int | None = None
    #: replace the connection (make-before-break, see ``rotation.py``) once it has been open
    #: this long; None = never. Venues that cut every connection at 24 h: 23 h 30 min leaves half
    #: an hour for the handover and for retries if the new connection fails. This is *wall*
    #: time, measured by the event loop. The simulator's ``connection_lifetime_s`` is *venue*
    #: time: against a simulator running ``speed`` times faster, set this below
    #: ``connection_lifetime_s / speed`` or the simulator cuts the connection first (which is
    #: then handled as a break: DISCONNECTED and a backfill). A ``serverShutdown`` notice starts
    #: a rotation whatever this is.
    rotate_after_s: float | None = 23.5 * 3600
    #: how long a rotation waits for every live stream to flow on the new connection before it
    #: closes the old one anyway (those streams are then reported DISCONNECTED for a backfill);
    #: None = the session's longest stall threshold plus ``ack_timeout_s``, since a live stream
    #: sends within its stall threshold or the watchdog would call it stalled
    handover_timeout_s: float | None = None
    #: fraction of the venue's control-message rate the session may use (pongs count too)
    control_rate_fraction: float = 0.8
    #: send a client PING after this long without any frame ...
    idle_ping_s: float = 30.0
    #: ... and give the connection up after this long without any frame
    idle_timeout_s: float = 45.0
    #: period of the watchdog/ack/idle checks; None = derived from the shortest stall threshold
    watchdog_period_s: float | None = None
    #: how long stop() waits for a clean WebSocket close before abandoning the socket
    close_timeout_s: float = 2.0
    #: at most one log line per kind of bad input per this many seconds
    log_period_s: float = 10.0

    def __post_init__(self) -> None:
        positive = {
            "backoff_max_s": self.backoff_max_s, "ack_timeout_s": self.ack_timeout_s,
            "connect_timeout_s": self.connect_timeout_s, "idle_ping_s": self.idle_ping_s,
            "idle_timeout_s": self.idle_timeout_s, "close_timeout_s": self.close_timeout_s,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"TransportOptions.{name} must be > 0, got {value}")
        if self.backoff_initial_s < 0 or self.backoff_factor < 1:
            raise ValueError("backoff_initial_s must be >= 0 and backoff_factor >= 1")
        if not 0 <= self.backoff_jitter <= 1:
            raise ValueError("backoff_jitter must be in [0, 1]")
        if not 0 < self.control_rate_fraction <= 1:
            raise ValueError("control_rate_fraction must be in (0, 1]")
        if self.max_streams_per_connection is not None and self.max_streams_per_connection < 1:
            raise ValueError("max_streams_per_connection must be >= 1")
        if self.rotate_after_s is not None and self.rotate_after_s <= 0:
            raise ValueError("rotate_after_s must be > 0")
        if self.handover_timeout_s is not None and self.handover_timeout_s <= 0:
            raise ValueError("handover_timeout_s must be > 0")
        if self.watchdog_period_s is not None and self.watchdog_period_s <= 0:
            raise ValueError("watchdog_period_s must be > 0")
        if self.stall_grace_ms < 0:
            raise ValueError("stall_grace_ms must be >= 0")


class SessionStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one connection's counters (``ConnectionPool.stats()``)."""

    name: str
    url: str
    streams: int
    state: ConnectionState
    reconnects: int
    #: data frames received (klines and everything else)
    messages: int
    malformed: int
    #: venue error frames (rejected subscriptions included)
    error_frames: int
    rejected: int
    #: frames for streams this connection did not subscribe
    unexpected: int
    pings: int
    #: exceptions raised by the listener's stream sinks (counted, never fatal)
    listener_errors: int
    #: ``time.monotonic()`` when a frame was last noticed (watchdog resolution), or None
    last_message_monotonic: float | None
    connected_since_monotonic: float | None
    last_error: str
    #: number of streams in each ``StreamState`` (by value)
    stream_states: dict[str, int]
    #: make-before-break rotations completed (not counted in ``reconnects``: no break)
    rotations: int = 0
