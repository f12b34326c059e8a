"""Saturation and fixed-rate modes for the benchmark: valid kline frames, in order, none lost."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from candlekeeper.core.candle import Candle
from candlekeeper.sim import Simulator
from candlekeeper.venues.binance.endpoints import BINANCE_USDM
from candlekeeper.venues.binance.stream import BinanceStreamCodec

USDM = "binance-usdm"
QUIET: dict[str, Any] = {"symbols": ["BTCUSDT"], "history": 5, "update_interval_s": 3600.0,
                         "close_delay_s": (0.0, 0.0)}


async def read_updates(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[Candle]:
    codec = BinanceStreamCodec(BINANCE_USDM)
    out: list[Candle] = []
    while len(out) < count:
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type is aiohttp.WSMsgType.TEXT
        c = codec.decode(msg.data)
        assert isinstance(c, Candle)  # every frame is a valid kline frame
        if not c.closed:  # a regular close frame may precede the firehose
            out.append(c)
    return out


async def test_saturation_mode_sends_n_ordered_valid_frames() -> None:
    n = 20_000
    async with Simulator(venues=(USDM,), **QUIET) as sim, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(sim.ws_base(USDM) + "/stream?streams=btcusdt@kline_1m")
        t0 = time.perf_counter()
        result, got = await asyncio.gather(sim.firehose(USDM, n), read_updates(ws, n))
        elapsed = time.perf_counter() - t0
        assert result.sent == n
        assert [c.trades for c in got] == list(range(1, n + 1))  # in order, none lost
        ids = [c.last_trade_id or 0 for c in got]
        assert ids == list(range(ids[0], ids[0] + n))
        times = [c.event_time or 0 for c in got]
        assert times == sorted(times)  # E never goes back
        assert sim.stats()[USDM].kline_frames_sent >= n
        print(f"firehose {n / elapsed:,.0f} msg/s (sender + aiohttp reader in one process)")
        await ws.close()


async def test_fixed_rate_mode_paces_and_url_trigger() -> None:
    async with Simulator(venues=(USDM,), **QUIET) as sim, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(sim.ws_base(USDM) + "/ws/btcusdt@kline_1m")
        t0 = time.perf_counter()
        result, got = await asyncio.gather(sim.firehose(USDM, 300, rate=1500),
                                           read_updates(ws, 300))
        assert result.sent == 300 and 0.15 <= time.perf_counter() - t0 < 2.0
        assert got[-1].trades == 300
        # an external client (a benchmark subprocess) can ask for it in the URL
        url = sim.ws_base(USDM) + "/stream?streams=btcusdt@kline_1m&firehose=1000"
        ws2 = await http.ws_connect(url)
        assert [c.trades for c in await read_updates(ws2, 1000)] == list(range(1, 1001))
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(url + "&rate=fast")
        assert info.value.status == 400
