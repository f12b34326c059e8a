"""Sharding streams over connections, one :class:`Session` each, as one supervised unit.

Streams are spread over ``ceil(n / limit)`` connections in balanced, contiguous slices of the
sorted key list, so the same keys always land on the same connection (stable across restarts
and independent of input order) and no connection carries much more than its neighbours.
Sessions run as tasks of one ``asyncio.TaskGroup``: none outlives :meth:`ConnectionPool.run`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence

from candlekeeper.core.clock import Clock, SystemClock
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError
from candlekeeper.transport.base import Connector
from candlekeeper.transport.connect_gate import GatedConnector, gate_for
from candlekeeper.transport.options import SessionStats, StreamListener, TransportOptions
from candlekeeper.transport.session import Session
from candlekeeper.venues.contract import StreamCodec

__all__ = ["ConnectionPool", "SessionStats", "StreamListener", "TransportOptions", "shard"]


def shard(keys: Sequence[StreamKey], limit: int) -> list[list[StreamKey]]:
    """Split ``keys`` (deduplicated, sorted) into the fewest slices of at most ``limit``, with
    sizes differing by at most one."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    unique = sorted(set(keys))
    if not unique:
        return []
    n = math.ceil(len(unique) / limit)
    size, extra = divmod(len(unique), n)
    out: list[list[StreamKey]] = []
    start = 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(unique[start:end])
        start = end
    return out


class ConnectionPool:
    """All connections for one venue's streams."""

    def __init__(self, codec: StreamCodec, keys: Sequence[StreamKey], listener: StreamListener,
                 *, ws_base: str | None = None, clock: Clock | None = None,
                 options: TransportOptions | None = None,
                 connector: Connector | None = None) -> None:
        self.codec = codec
        self.options = options or TransportOptions()
        venue = codec.spec.id
        foreign = sorted({k.venue for k in keys if k.venue != venue})
        if foreign:
            raise ConfigError(f"streams of venue(s) {', '.join(foreign)} given to the {venue} "
                              "connection pool")
        for key in keys:
            codec.stream_name(key)  # raises ConfigError for an interval the venue lacks
        if connector is None:
            from candlekeeper.transport.websocket import PicowsConnector
            connector = PicowsConnector(handshake_timeout_s=self.options.connect_timeout_s)
        gate = gate_for(codec.spec)
        if gate is not None:  # the venue limits handshakes per IP: every session asks the gate
            connector = GatedConnector(connector, gate, time.monotonic)
        venue_limit = codec.spec.max_streams_per_connection
        limit = min(self.options.max_streams_per_connection or venue_limit, venue_limit)
        base = ws_base if ws_base is not None else codec.spec.ws_base
        clock = clock or SystemClock()
        parts = shard(keys, limit)
        per_ip = codec.spec.max_connections_per_ip
        if per_ip is not None and len(parts) > per_ip:
            # the venue would refuse the extra connections: say so now, not as endless retries
            raise ConfigError(
                f"{venue}: {len(set(keys))} streams need {len(parts)} connections at {limit} "
                f"streams each, but the venue allows {per_ip} per IP; stream fewer, or run "
                "shards (--shard K/N) from different IPs")
        self.sessions = [
            Session(f"{venue}#{i}", codec, part, listener, ws_base=base, clock=clock,
                    options=self.options, connector=connector)
            for i, part in enumerate(parts)
        ]
        self._stopped = False

    async def run(self) -> None:
        """Run every session until :meth:`stop`. Only a fatal (configuration) error escapes;
        it stops the other sessions and is raised as itself."""
        if self._stopped or not self.sessions:
            return
        try:
            async with asyncio.TaskGroup() as tg:
                for session in self.sessions:
                    tg.create_task(session.run(), name=session.name)
        except ExceptionGroup as group:
            first = group.exceptions[0]
            raise first from group

    async def stop(self) -> None:
        """Close every connection and make :meth:`run` return. Idempotent."""
        self._stopped = True
        await asyncio.gather(*(s.stop() for s in self.sessions))

    def stats(self) -> list[SessionStats]:
        return [s.stats() for s in self.sessions]

    def stream_counts(self) -> dict[StreamKey, int]:
        """Kline frames received per stream, ever (the transport's own per-stream counters)."""
        return {slot.key: slot.count for s in self.sessions for slot in s.slots}
