"""Events that flow from venues through the feed to consumers.

``CandleUpdate`` is every live (possibly unfinished) kline; ``CandleClosed`` is emitted exactly
once per ``(venue, symbol, interval, open_time)`` and in open-time order per stream. Both are
*topics* on the :class:`~candlekeeper.core.bus.EventBus` whose payload is the
:class:`~candlekeeper.core.candle.Candle` itself: no envelope object is built per frame (at
hundreds of thousands of frames per second that allocation was measurable).
``StreamStatus`` and ``ConnectionStatus`` are ordinary events (topic = their type) that report
health; they drive the dashboard and, with issue 3, backfill after every break.
"""

from __future__ import annotations

import enum

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey


class CandleUpdate:
    """Topic: every live kline frame (closed or not). Payload: the ``Candle``."""


class CandleClosed:
    """Topic: each closed candle, exactly once per key, in open-time order per stream.
    Payload: the ``Candle``."""


class CandleCorrected(msgspec.Struct, frozen=True):
    """A closed candle already emitted from REST (a fast close, or a late close confirmed over
    REST) that the venue's own closing frame then contradicted: ``candle`` (the frame's values)
    replaces ``previous`` for the same key and open time. Sinks store it over the old row; the
    series still has each open time once. Counted (``candlekeeper_stream_corrections_total``).
    """

    previous: Candle
    candle: Candle


class StreamState(enum.StrEnum):
    SUBSCRIBING = "subscribing"
    SUBSCRIBED = "subscribed"  # ack received, no data yet
    LIVE = "live"  # data flowing within the expected cadence
    STALLED = "stalled"  # watchdog: nothing within the expected cadence
    SILENT = "silent"  # watchdog: subscribed but never sent a first message
    DISCONNECTED = "disconnected"
    REJECTED = "rejected"  # the venue refused the subscription
    POLLING = "polling"  # closes come from REST polls (REST-only mode, or WebSocket fallback)


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


Event = StreamStatus | ConnectionStatus
