"""The firehose: push pre-built kline frames to one connection as fast as the socket drains, or
at a fixed rate (the benchmarks' saturation mode). It is a personality capability
(``Personality.firehose``): the personality builds a pre-encoded template
(``Personality.firehose_frames``) that splices per-message numbers into ready frames, so the
server is never the bottleneck; this module only paces the writes. Firehose frames bypass the
fault shaper.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from candlekeeper.core.intervals import align, prev_open

if TYPE_CHECKING:
    from candlekeeper.sim.server import Connection, VenueServer


class FirehoseResult(msgspec.Struct, frozen=True):
    sent: int
    seconds: float


async def run_firehose(server: VenueServer, conn: Connection, count: int, *,
                       rate: float | None = None, stream: str | None = None,
                       batch: int = 256) -> FirehoseResult:
    """Send ``count`` frames of ``stream`` (default: the connection's first subscription, or
    the market's first stream) to ``conn``; regular pushes to ``conn`` pause meanwhile."""
    persona = server.personality
    name = stream or next(iter(conn.session.subscriptions), None)
    if name is None or not server.valid_stream(name):
        sym = server.market.symbols[0]
        name = persona.stream_name(sym, server.market.intervals_of(sym)[0])
    parsed = persona.parse_stream(name)
    assert parsed is not None
    symbol, interval = parsed
    t = prev_open(align(server.clock.time_ms(), interval), interval)
    candle = server.market.bar(symbol, interval, t)
    if candle is None:
        raise ValueError(f"no candle to build firehose frames for {name}")
    tpl = persona.firehose_frames(candle, name, conn.combined)
    transport, high, low = conn.transport, 4 << 20, 1 << 20
    conn.paused = True
    sent, t0 = 0, time.perf_counter()
    try:
        while sent < count and not conn.closed and not transport.is_closing():
            if rate is None:
                k = min(batch, count - sent)
            else:
                due = min(count, int((time.perf_counter() - t0) * rate) + 1)
                k = min(due - sent, 4096)
                if k <= 0:
                    await asyncio.sleep(0.0005)
                    continue
            transport.write(tpl.frames(sent, k, server.clock.time_ms()))
            sent += k
            server.firehose_frames += k
            if transport.get_write_buffer_size() > high:
                # aiohttp has no public drain for the raw transport: poll it down
                while (transport.get_write_buffer_size() > low  # noqa: ASYNC110
                       and not transport.is_closing()):
                    await asyncio.sleep(0.0005)
            elif rate is None and sent % (batch * 32) == 0:
                await asyncio.sleep(0)
    finally:
        conn.paused = False
    return FirehoseResult(sent, time.perf_counter() - t0)


def firehose_params(request: web.Request) -> tuple[int, float | None] | str | None:
    """``?firehose=N[&rate=M]`` on a WebSocket URL: the benchmark's saturation mode."""
    count, rate = request.query.get("firehose"), request.query.get("rate")
    if count is None:
        return None
    try:
        n, r = int(count), (float(rate) if rate else None)
    except ValueError:
        return f"bad firehose parameters: firehose={count!r} rate={rate!r}"
    if n < 0 or (r is not None and r <= 0):
        return f"bad firehose parameters: firehose={count!r} rate={rate!r}"
    return n, r
