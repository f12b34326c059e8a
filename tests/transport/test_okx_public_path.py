"""OKX's public WebSocket path connects but has no candle channels (§E.1: candles moved to
``/ws/v5/business`` in 2023): a candle subscribe there is answered ``60018``. A client pointed at
the old URL must say so per stream and not spin reconnecting."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from candlekeeper.core.events import StreamState
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sim import Simulator
from candlekeeper.transport.options import TransportOptions
from candlekeeper.transport.pool import ConnectionPool
from candlekeeper.venues.registry import get_spec, venue

from .helpers import Recorder

VENUE = "okx-swap"


async def test_a_candle_subscribe_on_the_public_path_is_refused_60018() -> None:
    async with Simulator(venues=(VENUE,), symbols=("BTCUSDT",), intervals=("1m",),
                         history=5) as sim:
        public = sim.ws_base(VENUE).replace("/business", "/public")
        async with aiohttp.ClientSession() as http, http.ws_connect(public) as ws:
            await ws.send_str("ping")
            assert await ws.receive_str(timeout=5) == "pong"
            await ws.send_str(json.dumps({"id": "1", "op": "subscribe", "args": [
                {"channel": "candle1m", "instId": "BTC-USDT-SWAP"}]}))
            reply = json.loads(await ws.receive_str(timeout=5))
        assert reply["event"] == "error"
        assert reply["code"] == "60018"
        assert reply["id"] == "1"
        assert "candle1m" in reply["msg"] and "BTC-USDT-SWAP" in reply["msg"]
        assert sim.stats()[VENUE].kline_frames_sent == 0


async def test_a_pool_on_the_public_path_reports_every_stream_rejected() -> None:
    symbols = ("BTCUSDT", "ETHUSDT")
    async with Simulator(venues=(VENUE,), symbols=symbols, intervals=("1m",),
                         history=5) as sim:
        spec = get_spec(VENUE)
        rec = Recorder()
        keys = [StreamKey(VENUE, s, "1m") for s in symbols]
        public = sim.ws_base(VENUE).replace("/business", "/public")
        pool = ConnectionPool(venue(VENUE).stream_codec(spec), keys, rec, ws_base=public,
                              clock=sim.clock, options=TransportOptions())
        task = asyncio.create_task(pool.run())
        try:
            await rec.until(lambda: rec.count(StreamState.REJECTED) == len(keys), timeout=15)
        finally:
            await pool.stop()
            await asyncio.wait_for(task, 5)
        stats = sim.stats()[VENUE]
    rejected = {s.key: s.detail for s in rec.streams if s.state is StreamState.REJECTED}
    assert set(rejected) == set(keys)
    for detail in rejected.values():
        assert "60018" in detail and "/ws/v5/business" in detail, detail
    assert stats.connections_total == 1  # rejected streams are not retried by reconnecting
