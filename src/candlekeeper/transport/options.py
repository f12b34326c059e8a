"""The transport's public value types: listener protocol, options, per-connection statistics.

Defined apart from ``session.py`` and ``pool.py`` so both can use them without a cycle; the
public import path is :mod:`candlekeeper.transport` (or ``candlekeeper.transport.pool``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

import msgspec
from pydantic import Field, model_validator

from candlekeeper.core.candle import Candle
from candlekeeper.core.events import ConnectionState, ConnectionStatus, StreamStatus
from candlekeeper.core.options import Options
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


class TransportMode(enum.StrEnum):
    """How a feed gets its candles."""

    WEBSOCKET = "websocket"  # the venue's stream only (REST fills holes, as always)
    REST = "rest"  # REST polling only: each stream fetched just after each of its closes
    AUTO = "auto"  # the stream, falling back to polling while it is unavailable


class TransportOptions(Options):
    """Connection policy: the library's ``CandleFeed(transport=...)`` and the service config's
    ``transport:`` section are this one model (one definition, one default each). Times are
    wall seconds unless named ``_ms`` (venue time, converted through the injected ``Clock``)."""

    #: reconnect backoff: first delay, growth factor, cap, downward jitter fraction
    backoff_initial_s: float = Field(default=1.0, ge=0)
    backoff_factor: float = Field(default=2.0, ge=1)
    backoff_max_s: float = Field(default=60.0, gt=0)
    backoff_jitter: float = Field(default=0.2, ge=0, le=1)
    #: a connection that lived this long resets the backoff to its first delay
    healthy_after_s: float = Field(default=30.0, ge=0)
    #: no reply to a SUBSCRIBE within this long -> reconnect
    ack_timeout_s: float = Field(default=10.0, gt=0)
    #: venue ms added to ``min(interval, 60 s)`` before a quiet stream counts as stalled
    stall_grace_ms: int = Field(default=5_000, ge=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    #: streams per connection; None = the venue spec's limit
    max_streams_per_connection: int | None = Field(default=None, ge=1)
    #: replace the connection (make-before-break, see ``rotation.py``) once it has been open
    #: this long; None = never. Venues that cut every connection at 24 h: 23 h 30 min leaves half
    #: an hour for the handover and for retries if the new connection fails. This is *wall*
    #: time, measured by the event loop. The simulator's ``connection_lifetime_s`` is *venue*
    #: time: against a simulator running ``speed`` times faster, set this below
    #: ``connection_lifetime_s / speed`` or the simulator cuts the connection first (which is
    #: then handled as a break: DISCONNECTED and a backfill). A ``serverShutdown`` notice starts
    #: a rotation whatever this is.
    rotate_after_s: float | None = Field(default=23.5 * 3600, gt=0)
    #: how long a rotation waits for every live stream to flow on the new connection before it
    #: closes the old one anyway (those streams are then reported DISCONNECTED for a backfill);
    #: None = the session's longest stall threshold plus ``ack_timeout_s``, since a live stream
    #: sends within its stall threshold or the watchdog would call it stalled
    handover_timeout_s: float | None = Field(default=None, gt=0)
    #: fraction of the venue's control-message rate the session may use (pongs count too)
    control_rate_fraction: float = Field(default=0.8, gt=0, le=1)
    #: send a client PING after this long without any frame ...
    idle_ping_s: float = Field(default=30.0, gt=0)
    #: ... and give the connection up after this long without any frame
    idle_timeout_s: float = Field(default=45.0, gt=0)
    #: period of the watchdog/ack/idle checks; None = derived from the shortest stall threshold
    watchdog_period_s: float | None = Field(default=None, gt=0)
    #: how long stop() waits for a clean WebSocket close before abandoning the socket
    close_timeout_s: float = Field(default=2.0, gt=0)
    #: at most one log line per kind of bad input per this many seconds
    log_period_s: float = Field(default=10.0, gt=0)
    #: ``auto`` mode: a stream the WebSocket has not kept live for this long (refused or
    #: failing connections, no acknowledgement, silence) is polled over REST instead ...
    fallback_after_s: float = Field(default=30.0, gt=0)
    #: ... as is one whose connection broke this many times within ``fallback_after_s``
    fallback_breaks: int = Field(default=3, ge=1)
    #: ... and polling stops once the WebSocket has kept the stream live this long again
    recover_after_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _backoff_order(self) -> TransportOptions:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s}) must be >= backoff_initial_s "
                f"({self.backoff_initial_s})")
        return self


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
    #: messages larger than the connector's limit (each cost its connection)
    oversized: int = 0
