"""Venue-agnostic WebSocket transport: sessions, sharding, reconnection, watchdogs.

The feed uses :class:`ConnectionPool` with a venue codec and a :class:`StreamListener`; tests
inject :class:`~candlekeeper.transport.memory.MemoryConnector` instead of real sockets.
"""

from candlekeeper.transport.backoff import Verdict, backoff_delays, classify
from candlekeeper.transport.base import (
    ConnectError,
    Connection,
    ConnectionLost,
    Connector,
    FrameHandler,
)
from candlekeeper.transport.options import TransportMode
from candlekeeper.transport.pool import (
    ConnectionPool,
    SessionStats,
    StreamListener,
    TransportOptions,
    shard,
)

__all__ = [
    "ConnectError",
    "Connection",
    "ConnectionLost",
    "ConnectionPool",
    "Connector",
    "FrameHandler",
    "SessionStats",
    "StreamListener",
    "TransportMode",
    "TransportOptions",
    "Verdict",
    "backoff_delays",
    "classify",
    "shard",
]
