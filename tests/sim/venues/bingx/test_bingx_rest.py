"""BingX REST personality (protocols.md §C.4): v3 klines (time = open time, ascending, the
forming candle last, limit 500 by default and at most 1440), the v2 single-object quirk,
contracts, bad parameters as HTTP 200 + code 80014, and the rate limits: 500 / 10 s and
1000 / min per IP with ``X-RateLimit-Requests-Remain`` / ``-Expire``, 429 + 100410, then 418."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from bingxkit import BINGX

from candlekeeper.core.intervals import INTERVAL_MS, align
from candlekeeper.sim import Simulator
from candlekeeper.sim.venues.bingx.rest import RequestLimiter

V3 = "/openApi/swap/v3/quote/klines"
V2 = "/openApi/swap/v2/quote/klines"
M = INTERVAL_MS["1m"]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(venues=[BINGX], symbols=["BTCUSDT", "ETHUSDT", "XRPUSDT"],
                         intervals=["1m", "5m"], history=2000) as s:
        yield s


async def get(http: aiohttp.ClientSession, sim: Simulator, path: str,
              **params: Any) -> tuple[int, dict[str, str], Any]:
    async with http.get(sim.rest_base(BINGX) + path,
                        params={k: str(v) for k, v in params.items()}) as r:
        return r.status, dict(r.headers), await r.json(content_type=None)


async def test_v3_klines_rows_equal_the_truth(http: aiohttp.ClientSession,
                                              sim: Simulator) -> None:
    status, headers, body = await get(http, sim, V3, symbol="BTC-USDT", interval="1m")
    assert status == 200 and body["code"] == 0 and body["msg"] == ""
    rows = body["data"]
    assert len(rows) == 500  # the default limit
    assert list(rows[0]) == ["open", "close", "high", "low", "volume", "time"]
    times = [r["time"] for r in rows]
    now = sim.clock.time_ms()
    assert times == sorted(times) and times[-1] == align(now, "1m")  # forming candle last
    truth = {c.open_time: c for c in sim.closed_candles(BINGX, "BTCUSDT", "1m")}
    for r in rows[:-1]:
        c = truth[r["time"]]
        assert (r["open"], r["close"], r["high"], r["low"], r["volume"]) == (
            c.open_str, c.close_str, c.high_str, c.low_str, c.volume_str)
    assert {"X-RateLimit-Requests-Remain", "X-RateLimit-Requests-Expire"} <= set(headers)


async def test_v3_range_limit_and_clamp(http: aiohttp.ClientSession, sim: Simulator) -> None:
    truth = sim.closed_candles(BINGX, "ETHUSDT", "5m")
    start, end = truth[-30].open_time, truth[-21].open_time
    _, _, body = await get(http, sim, V3, symbol="ETH-USDT", interval="5m", startTime=start,
                           endTime=end, limit=1440)
    assert [r["time"] for r in body["data"]] == [c.open_time for c in truth[-30:-20]]
    _, _, body = await get(http, sim, V3, symbol="ETH-USDT", interval="5m", startTime=start + 1,
                           limit=3)
    assert [r["time"] for r in body["data"]] == [c.open_time for c in truth[-29:-26]]
    _, _, body = await get(http, sim, V3, symbol="BTC-USDT", interval="1m", limit=5000)
    assert len(body["data"]) == 1440  # clamped to the maximum


async def test_v2_without_range_returns_one_object(http: aiohttp.ClientSession,
                                                   sim: Simulator) -> None:
    _, _, body = await get(http, sim, V2, symbol="BTC-USDT", interval="1m")
    assert isinstance(body["data"], dict)
    assert body["data"]["time"] == align(sim.clock.time_ms(), "1m")
    start = sim.closed_candles(BINGX, "BTCUSDT", "1m")[-3].open_time
    _, _, body = await get(http, sim, V2, symbol="BTC-USDT", interval="1m", startTime=start)
    assert [r["time"] for r in body["data"]][:2] == [start, start + M]


async def test_contracts(http: aiohttp.ClientSession, sim: Simulator) -> None:
    _, _, body = await get(http, sim, "/openApi/swap/v2/quote/contracts")
    assert body["code"] == 0
    by = {c["symbol"]: c for c in body["data"]}
    assert set(by) == {"BTC-USDT", "ETH-USDT", "XRP-USDT"}
    btc = by["BTC-USDT"]
    assert (btc["status"], btc["asset"], btc["currency"]) == (1, "BTC", "USDT")
    assert (btc["pricePrecision"], btc["quantityPrecision"]) == (1, 4)  # BingX's own
    _, _, body = await get(http, sim, "/openApi/swap/v2/server/time")
    assert abs(body["data"]["serverTime"] - sim.clock.time_ms()) < 5_000


@pytest.mark.parametrize(("params", "fragment"), [
    ({"interval": "1m"}, "symbol"),
    ({"symbol": "BTC-USDT"}, "interval"),
    ({"symbol": "BTCUSDT", "interval": "1m"}, "BTCUSDT"),
    ({"symbol": "FOO-USDT", "interval": "1m"}, "FOO-USDT"),
    ({"symbol": "BTC-USDT", "interval": "1h"}, "interval"),
    ({"symbol": "BTC-USDT", "interval": "1m", "limit": "0"}, "limit"),
    ({"symbol": "BTC-USDT", "interval": "1m", "limit": "ten"}, "limit"),
    ({"symbol": "BTC-USDT", "interval": "1m", "startTime": "9", "endTime": "5"}, "startTime"),
])
async def test_bad_params_are_http_200_with_80014(http: aiohttp.ClientSession, sim: Simulator,
                                                  params: dict[str, str],
                                                  fragment: str) -> None:
    status, _, body = await get(http, sim, V3, **params)
    assert status == 200 and body["code"] == 80014 and fragment in body["msg"]
    assert sim.stats()[BINGX].rest.errors_400 == 1


async def test_headers_429_100410_then_418(http: aiohttp.ClientSession) -> None:
    # 20 requests / min and so 10 / 10 s: the shape of 1000 / min and 500 / 10 s, smaller
    async with Simulator(venues=[BINGX], symbols=["BTCUSDT"], intervals=["1m"], history=5,
                         rest_weight_limit=20, ban_s=2.0) as sim:
        remains, expires = [], []
        for _ in range(10):
            status, h, _ = await get(http, sim, V3, symbol="BTC-USDT", interval="1m", limit=2)
            assert status == 200
            remains.append(int(h["X-RateLimit-Requests-Remain"]))
            expires.append(int(h["X-RateLimit-Requests-Expire"]))
        assert remains == list(range(9, -1, -1))
        assert expires[0] <= 10_000 and expires == sorted(expires, reverse=True)
        status, h, body = await get(http, sim, V3, symbol="BTC-USDT", interval="1m")
        assert (status, body["code"], h["X-RateLimit-Requests-Remain"]) == (429, 100410, "0")
        status, _, body = await get(http, sim, "/openApi/swap/v2/quote/contracts")
        assert (status, body["code"]) == (418, 100410) and "banned" in body["msg"]
        stats = sim.stats()[BINGX].rest
        assert (stats.rejected_429, stats.banned_418, stats.klines) == (1, 1, 10)


def test_limiter_windows_and_ban() -> None:
    lim = RequestLimiter(((10.0, 3), (60.0, 5)), ban_s=30.0)
    assert [lim.charge("a", t).status for t in (0.0, 1.0, 2.0)] == [200, 200, 200]
    v = lim.charge("a", 3.0)
    assert (v.status, v.remain, v.expire_ms) == (429, 0, 7000)
    assert lim.charge("b", 3.0).status == 200  # per IP
    assert lim.charge("a", 10.5).status == 200  # the 10 s window restarted
    assert lim.charge("a", 11.0).status == 200  # 5 in the minute now
    assert lim.charge("a", 12.0).status == 429  # the minute window is full
    assert lim.charge("a", 12.5).status == 418  # kept going: banned
    assert lim.charge("a", 42.0).status == 418
    assert lim.charge("a", 43.0).status == 429  # ban over, the minute (from 0 s) still full
    assert lim.charge("a", 60.5).status == 200
    first = lim.charge("c", 100.0)
    assert (first.remain, first.expire_ms) == (2, 10_000)
