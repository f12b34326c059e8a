"""The simulated OKX REST API over real sockets: candles vs history-candles depth, exclusive
cursors, newest-first rows with the forming one unconfirmed, instruments per type, and the
per-endpoint limits answered with 50011 / HTTP 429."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from candlekeeper.core.intervals import align
from candlekeeper.sim import Simulator

pytestmark = pytest.mark.integration

M = 60_000
T0 = 1_704_067_200_000


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(venues=["okx-swap"], symbols=["BTCUSDT"], intervals=["1m"],
                         start_time_ms=T0 + 30_000, history=2000) as s:
        yield s


async def _get(sim: Simulator, path: str, **params: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, \
            http.get(sim.rest_base("okx-swap") + path, params=params) as resp:
        return resp.status, await resp.json()


async def test_candles_reach_back_1440_rows_and_history_everything(sim: Simulator) -> None:
    now = sim.clock.time_ms()
    cur = align(now, "1m")
    status, body = await _get(sim, "/api/v5/market/candles", instId="BTC-USDT-SWAP", bar="1m")
    assert status == 200 and body["code"] == "0" and len(body["data"]) == 100  # the default
    first = body["data"][0]
    assert int(first[0]) == cur and first[8] == "0"  # the forming candle leads, unconfirmed
    assert all(r[8] == "1" for r in body["data"][1:])
    assert [int(r[0]) for r in body["data"]] == sorted((int(r[0]) for r in body["data"]),
                                                       reverse=True)
    old = cur - 1500 * M
    _, near = await _get(sim, "/api/v5/market/candles", instId="BTC-USDT-SWAP", bar="1m",
                         after=old + 1, limit=300)
    assert near["data"] == []  # beyond the latest 1,440 rows
    _, far = await _get(sim, "/api/v5/market/history-candles", instId="BTC-USDT-SWAP",
                        bar="1m", after=old + 1, before=old - 3 * M - 1)
    assert [int(r[0]) for r in far["data"]] == [old - i * M for i in range(4)]
    truth = {c.open_time: c for c in sim.closed_candles("okx-swap", "BTCUSDT", "1m")}
    row = far["data"][0]
    c = truth[old]
    assert row[1:5] == [c.open_str, c.high_str, c.low_str, c.close_str]
    assert row[6] == c.volume_str  # volCcy: base; vol counts 0.01 BTC contracts
    assert float(row[5]) == pytest.approx(float(c.volume_str) * 100)


async def test_errors_and_instruments(sim: Simulator) -> None:
    status, body = await _get(sim, "/api/v5/market/candles", instId="NOPE-USDT-SWAP")
    assert (status, body["code"]) == (200, "51001")
    status, body = await _get(sim, "/api/v5/market/candles", instId="BTC-USDT-SWAP",
                              bar="1D")  # a UTC+8 bar the venue does not serve here
    assert (status, body["code"]) == (400, "51000")
    _, swaps = await _get(sim, "/api/v5/public/instruments", instType="SWAP")
    item = swaps["data"][0]
    assert (item["instId"], item["uly"], item["settleCcy"], item["ctVal"], item["state"]) == (
        "BTC-USDT-SWAP", "BTC-USDT", "USDT", "0.01", "live")
    _, spots = await _get(sim, "/api/v5/public/instruments", instType="SPOT")
    assert spots == {"code": "0", "msg": "", "data": []}
    _, t = await _get(sim, "/api/v5/public/time")
    assert abs(int(t["data"][0]["ts"]) - sim.clock.time_ms()) < 5_000


async def test_history_candles_allow_20_requests_per_2_s_then_50011(sim: Simulator) -> None:
    statuses = []
    async with aiohttp.ClientSession() as http:
        for _ in range(21):
            async with http.get(sim.rest_base("okx-swap") + "/api/v5/market/history-candles",
                                params={"instId": "BTC-USDT-SWAP", "limit": "1"}) as resp:
                statuses.append((resp.status, (await resp.json())["code"]))
    assert statuses[:20] == [(200, "0")] * 20
    assert statuses[20] == (429, "50011")
    # another endpoint has its own budget
    status, _ = await _get(sim, "/api/v5/market/candles", instId="BTC-USDT-SWAP", limit=1)
    assert status == 200
