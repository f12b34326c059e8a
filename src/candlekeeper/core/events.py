"""Events that flow from venues through the feed to consumers.

``CandleUpdate`` is every live (possibly unfinished) kline; ``CandleClosed`` is emitted exactly
once per ``(venue, symbol, interval, open_time)`` and in open-time order per stream;
``StreamStatus`` and ``ConnectionStatus`` report health (they drive dashboards and, later,
backfill after every break).
"""

from __future__ import annotations

import enum

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey


class CandleUpdate(msgspec.Struct, frozen=True, gc=False):
    candle: Candle


class CandleClosed(msgspec.Struct, frozen=True, gc=False):
    candle: Candle


class StreamState(enum.StrEnum):
    SUBSCRIBING = "subscribing"
    SUBSCRIBED = "subscribed"  # ack received, no data yet
    LIVE = "live"  # data flowing within the expected cadence
    STALLED = "stalled"  # watchdog: nothing within the expected cadence
    SILENT = "silent"  # watchdog: subscribed but never sent a first message
    DISCONNECTED = "disconnected"
    REJECTED = "rejected"  # the venue refused the subscription


class StreamStatus(msgspec.Struct, frozen=True):
    key: StreamKey
    state: StreamState
    detail: str = ""
    ts_ms: int = 0


class ConnectionState(enum.StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class ConnectionStatus(msgspec.Struct, frozen=True):
    connection: str
    state: ConnectionState
    streams: int = 0
    detail: str = ""
    reconnects: int = 0
    ts_ms: int = 0


Event = CandleUpdate | CandleClosed | StreamStatus | ConnectionStatus
