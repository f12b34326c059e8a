"""Make-before-break rotation over real sockets against ``candlekeeper.sim.Simulator``.

The simulator cuts a connection after ``connection_lifetime_s`` of *venue* time; at ``SPEED``
that is ``LIFETIME_S / SPEED`` wall seconds, and ``rotate_after_s`` (wall time) is set below it,
as the options docstring tells a user to. Delivery must be continuous across every rotation:
each closed candle once and equal to the simulator's truth, no update twice, and no stream ever
reported DISCONNECTED (which would trigger a backfill).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.events import ConnectionState, StreamState, StreamStatus
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sim import Simulator
from candlekeeper.sim.framing import text_frame
from candlekeeper.transport.options import TransportOptions
from candlekeeper.transport.pool import ConnectionPool
from candlekeeper.transport.rotation import frame_key
from candlekeeper.venues.binance.endpoints import BINANCE_USDM
from candlekeeper.venues.binance.stream import BinanceStreamCodec

from .helpers import Recorder

VENUE = "binance-usdm"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
SPEED = 60.0  # a 1m candle every wall second
LIFETIME_S = 150.0  # venue seconds: the simulator cuts each connection after 2.5 wall seconds
SHUTDOWN = b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1700000000000}}'


async def run_pool(sim: Simulator, options: TransportOptions,
                   done: Callable[[Recorder, ConnectionPool], bool],
                   during: Callable[[Recorder], object] | None = None,
                   ) -> tuple[Recorder, list[StreamStatus]]:
    """Run a pool against ``sim`` until ``done``; returns the recorder and the stream statuses
    seen before stopping (stop itself reports every stream DISCONNECTED, as it should)."""
    rec = Recorder()
    keys = [StreamKey(VENUE, s, "1m") for s in SYMBOLS]
    pool = ConnectionPool(BinanceStreamCodec(BINANCE_USDM), keys, rec, ws_base=sim.ws_base(VENUE),
                          clock=sim.clock, options=options)
    task = asyncio.create_task(pool.run())
    try:
        await rec.until(lambda: rec.count(StreamState.LIVE) == len(SYMBOLS), timeout=10)
        if during is not None:
            during(rec)
        await rec.until(lambda: done(rec, pool), timeout=20)
        statuses = list(rec.streams)
    finally:
        await pool.stop()
        await asyncio.wait_for(task, 5)
    return rec, statuses


def check_delivery(sim: Simulator, rec: Recorder) -> int:
    """Every stream: closes contiguous, once each, equal to the truth; updates never repeated
    nor going back. Returns the number of closed candles checked."""
    checked = 0
    for symbol in SYMBOLS:
        frames = [c for c in rec.candles if c.symbol == symbol]
        updates = [frame_key(c) for c in frames if not c.closed]
        assert updates == sorted(set(updates)), f"{symbol}: an update repeated or went back"
        closes = [c for c in frames if c.closed]
        opens = [c.open_time for c in closes]
        assert opens == list(range(opens[0], opens[-1] + 60_000, 60_000)), \
            f"{symbol}: closed candles missing or repeated"
        truth = {c.open_time: c for c in sim.closed_candles(VENUE, symbol, "1m")}
        assert [_no_event_time(c) for c in closes] == [truth[t] for t in opens]
        checked += len(closes)
    return checked


def _no_event_time(c: Candle) -> Candle:
    return msgspec.structs.replace(c, event_time=None)


def no_break(rec: Recorder, statuses: list[StreamStatus]) -> None:
    assert [s for s in statuses if s.state is StreamState.DISCONNECTED] == []
    assert ConnectionState.RECONNECTING not in rec.conn_states()


async def test_rotations_before_the_lifetime_keep_delivery_continuous() -> None:
    async with Simulator(venues=(VENUE,), symbols=SYMBOLS, intervals=("1m",), speed=SPEED,
                         history=10, connection_lifetime_s=LIFETIME_S) as sim:
        opts = TransportOptions(rotate_after_s=0.8, watchdog_period_s=0.01,
                                backoff_initial_s=30.0)
        rec, statuses = await run_pool(
            sim, opts, lambda rec, pool: pool.stats()[0].rotations >= 3)
        stats = sim.stats()[VENUE]
    no_break(rec, statuses)
    rotated = [c.detail for c in rec.conns if c.detail.startswith("rotated")]
    assert len(rotated) >= 3
    assert all(f"{len(SYMBOLS)} of {len(SYMBOLS)} streams handed over" in d for d in rotated)
    assert "lifetime" not in stats.disconnects  # we always left before the venue cut us
    assert stats.connections_total >= 4
    assert check_delivery(sim, rec) >= 2 * len(SYMBOLS)


async def test_server_shutdown_notice_rotates_without_a_break() -> None:
    async with Simulator(venues=(VENUE,), symbols=SYMBOLS, intervals=("1m",), speed=SPEED,
                         history=10) as sim:
        server = sim.server(VENUE)

        def announce(rec: Recorder) -> None:
            (conn,) = server.connections.values()
            conn.write_now(text_frame(SHUTDOWN))

        def done(rec: Recorder, pool: ConnectionPool) -> bool:
            closes = sum(1 for c in rec.candles if c.closed)
            return (pool.stats()[0].rotations == 1 and len(server.connections) == 1
                    and closes >= 3 * len(SYMBOLS))

        opts = TransportOptions(rotate_after_s=None, watchdog_period_s=0.01,
                                backoff_initial_s=30.0)
        rec, statuses = await run_pool(sim, opts, done, during=announce)
        stats = sim.stats()[VENUE]
    no_break(rec, statuses)
    rotating = [c.detail for c in rec.conns if c.detail.startswith("rotat")]
    assert rotating[0] == "rotating: the venue announced it will close this connection"
    assert stats.connections_total == 2
    assert check_delivery(sim, rec) >= 3 * len(SYMBOLS)
