"""The transport over real sockets (picows) against a small aiohttp venue on 127.0.0.1:0.

The venue speaks just enough of Binance's market-stream protocol: ``/market/stream`` acks
SUBSCRIBE and pushes one kline per subscribed stream; the unrouted legacy ``/stream`` acks and
then stays silent, as the real one does since the 2026-04-23 cutover.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web

from candlekeeper.core.clock import ScaledClock
from candlekeeper.core.events import ConnectionState, StreamState
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.transport.base import ConnectError
from candlekeeper.transport.options import TransportOptions
from candlekeeper.transport.pool import ConnectionPool
from candlekeeper.transport.websocket import PicowsConnector
from candlekeeper.venues.binance.endpoints import BINANCE_USDM
from candlekeeper.venues.binance.stream import BinanceStreamCodec

from .helpers import Recorder, keys, kline_frame

FAST = TransportOptions(backoff_initial_s=0.02, backoff_max_s=0.1, backoff_jitter=0.0,
                        watchdog_period_s=0.01, connect_timeout_s=2.0)


class Venue:
    """A minimal Binance-like market-stream server."""

    def __init__(self) -> None:
        self.sockets: list[web.WebSocketResponse] = []
        self.subscribed: list[list[str]] = []  # per connection, in order received
        self.pongs: list[bytes] = []
        self.connected = asyncio.Event()
        self.ponged = asyncio.Event()
        self.port = 0

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        routed = request.path.startswith("/market")
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        self.sockets.append(ws)
        streams: list[str] = []
        self.subscribed.append(streams)
        self.connected.set()
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.PONG:
                self.pongs.append(msg.data)
                self.ponged.set()
                continue
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            req = json.loads(msg.data)
            if req.get("method") != "SUBSCRIBE":
                continue
            streams.extend(req["params"])
            await ws.send_str(json.dumps({"result": None, "id": req["id"]}))
            if routed:
                for name in req["params"]:
                    symbol, _, interval = name.partition("@kline_")
                    await ws.send_str(kline_frame(
                        StreamKey("binance-usdm", symbol.upper(), interval), close="7.6170"))
        return ws

    def url(self, path: str = "/market") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    v = Venue()
    app = web.Application()
    app.router.add_get("/market/stream", v.handle)
    app.router.add_get("/stream", v.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    v.port = server.sockets[0].getsockname()[1]
    yield v
    await runner.cleanup()


async def run_pool(pool: ConnectionPool) -> asyncio.Task[None]:
    return asyncio.create_task(pool.run())


async def stop_pool(pool: ConnectionPool, task: asyncio.Task[None]) -> None:
    await pool.stop()
    await asyncio.wait_for(task, 3)


async def test_reconnects_after_the_server_drops_and_resubscribes(venue: Venue) -> None:
    ks = keys(3)
    rec = Recorder()
    pool = ConnectionPool(BinanceStreamCodec(BINANCE_USDM), ks, rec, ws_base=venue.url(),
                          options=FAST)
    task = await run_pool(pool)
    try:
        await rec.until(lambda: rec.count(StreamState.LIVE) == 3)
        assert {c.close for c in rec.candles} == {Decimal("7.6170")}
        assert sorted(venue.subscribed[0]) == [f"s000{i}usdt@kline_1m" for i in range(3)]
        await venue.sockets[0].close(code=1001, message=b"going away")
        await rec.until(lambda: len(venue.subscribed) == 2 and rec.count(StreamState.LIVE) == 3
                        and len(rec.candles) == 6)
        assert sorted(venue.subscribed[1]) == sorted(venue.subscribed[0])
        assert rec.conn_states() == [ConnectionState.CONNECTING, ConnectionState.CONNECTED,
                                     ConnectionState.RECONNECTING, ConnectionState.CONNECTED]
        assert "code 1001" in rec.conns[2].detail
        assert rec.conns[2].reconnects == 1
        assert rec.states(ks[0]) == [
            StreamState.SUBSCRIBING, StreamState.SUBSCRIBED, StreamState.LIVE,
            StreamState.DISCONNECTED,
            StreamState.SUBSCRIBING, StreamState.SUBSCRIBED, StreamState.LIVE,
        ]
        stats = pool.stats()[0]
        assert (stats.reconnects, stats.state) == (1, ConnectionState.CONNECTED)
        assert stats.url == venue.url() + "/stream"
    finally:
        await stop_pool(pool, task)
    assert rec.conn_states()[-1] is ConnectionState.CLOSED
    assert rec.state_of(ks[0]) is StreamState.DISCONNECTED


async def test_unreachable_url_retries_with_backoff_one_line_per_attempt(
        caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rec = Recorder()
    pool = ConnectionPool(BinanceStreamCodec(BINANCE_USDM), keys(1), rec,
                          ws_base=f"ws://127.0.0.1:{port}/market", options=FAST)
    with caplog.at_level(logging.INFO):
        task = await run_pool(pool)
        try:
            await rec.until(lambda: rec.conn_states().count(ConnectionState.RECONNECTING) >= 4)
        finally:
            await stop_pool(pool, task)
    lines = [r for r in caplog.records if r.name == "candlekeeper.transport"]
    assert len(lines) == rec.conn_states().count(ConnectionState.RECONNECTING)
    delays = []
    for record in lines:
        text = record.getMessage()
        assert record.levelno == logging.WARNING
        assert record.exc_info is None
        assert "\n" not in text
        assert text.startswith(f"binance-usdm#0: cannot connect to ws://127.0.0.1:{port}/market"
                               "/stream: ")
        delays.append(float(text.rsplit("reconnecting in ", 1)[1].removesuffix(" s")))
    assert delays[:4] == [0.02, 0.04, 0.08, 0.1]
    assert not [r for r in caplog.records if r.exc_info]
    assert pool.stats()[0].last_error.startswith("cannot connect to")
    assert rec.conn_states()[-1] is ConnectionState.CLOSED


async def test_shards_2500_streams_over_three_connections(venue: Venue) -> None:
    ks = keys(2500)
    rec = Recorder()
    pool = ConnectionPool(BinanceStreamCodec(BINANCE_USDM), ks, rec, ws_base=venue.url(),
                          options=FAST)
    task = await run_pool(pool)
    try:
        await rec.until(lambda: rec.count(StreamState.LIVE) == 2500, timeout=10)
        assert len(venue.subscribed) == 3
        assert sorted(len(s) for s in venue.subscribed) == [833, 833, 834]
        every = [name for conn in venue.subscribed for name in conn]
        assert len(every) == len(set(every)) == 2500
        stats = pool.stats()
        assert [s.name for s in stats] == ["binance-usdm#0", "binance-usdm#1", "binance-usdm#2"]
        assert sum(s.streams for s in stats) == 2500
        assert all(s.streams <= BINANCE_USDM.max_streams_per_connection for s in stats)
        assert len(rec.candles) == 2500
    finally:
        await stop_pool(pool, task)


async def test_server_ping_gets_a_pong_with_the_same_payload(venue: Venue) -> None:
    rec = Recorder()
    pool = ConnectionPool(BinanceStreamCodec(BINANCE_USDM), keys(1), rec, ws_base=venue.url(),
                          options=FAST)
    task = await run_pool(pool)
    try:
        await rec.until(lambda: rec.count(StreamState.LIVE) == 1)
        await venue.sockets[0].ping(b"1626992760203")
        await asyncio.wait_for(venue.ponged.wait(), 2)
        assert venue.pongs == [b"1626992760203"]
        assert pool.stats()[0].pings == 1
    finally:
        await stop_pool(pool, task)


async def test_legacy_unrouted_url_is_flagged_silent(venue: Venue) -> None:
    ks = keys(2)
    rec = Recorder()
    pool = ConnectionPool(BinanceStreamCodec(BINANCE_USDM), ks, rec, ws_base=venue.url(""),
                          clock=ScaledClock(speed=1000), options=FAST)
    task = await run_pool(pool)
    try:
        await rec.until(lambda: rec.count(StreamState.SILENT) == 2)
        assert venue.subscribed == [[f"s000{i}usdt@kline_1m" for i in range(2)]]
        assert rec.candles == []
        assert rec.states(ks[0]) == [StreamState.SUBSCRIBING, StreamState.SUBSCRIBED,
                                     StreamState.SILENT]
    finally:
        await stop_pool(pool, task)


async def test_connector_maps_a_refused_upgrade_to_connect_error(venue: Venue) -> None:
    with pytest.raises(ConnectError, match="HTTP 404") as info:
        await PicowsConnector().connect(venue.url("/nowhere"), Recorder())  # type: ignore[arg-type]
    assert info.value.status == 404
