"""Bybit REST personality (§D.7-§D.10): klines newest first with the forming candle, the
``start``/``end`` window (both candles included, the newest ``limit`` when more match), limit
200 by default and 1000 at most, instruments-info per category with paging, server time, bad
parameters as HTTP 200 + retCode 10001, and the IP limit: the request over 600 / 5 s is answered
403 and the IP stays blocked for ``ban_s``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from candlekeeper.core.intervals import INTERVAL_MS, align
from candlekeeper.sim import Fault, Simulator
from candlekeeper.sim.venues.bybit.rest import IpLimiter

LINEAR, SPOT = "bybit-linear", "bybit-spot"
KLINE, INFO, TIME = "/v5/market/kline", "/v5/market/instruments-info", "/v5/market/time"
M = INTERVAL_MS["1m"]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(venues=[LINEAR, SPOT], symbols=["BTCUSDT", "ETHUSDT", "XRPUSDT"],
                         intervals=["1m", "1h"], history=1500) as s:
        yield s


async def get(http: aiohttp.ClientSession, sim: Simulator, venue: str, path: str,
              **params: Any) -> tuple[int, Any]:
    async with http.get(sim.rest_base(venue) + path,
                        params={k: str(v) for k, v in params.items()}) as r:
        if r.content_type != "application/json":
            return r.status, await r.text()
        return r.status, await r.json()


async def test_klines_newest_first_with_the_forming_candle(http: aiohttp.ClientSession,
                                                          sim: Simulator) -> None:
    status, body = await get(http, sim, LINEAR, KLINE, category="linear", symbol="BTCUSDT",
                             interval="1")
    assert status == 200 and body["retCode"] == 0 and body["retMsg"] == "OK"
    assert body["result"]["category"] == "linear" and body["result"]["symbol"] == "BTCUSDT"
    rows = body["result"]["list"]
    assert len(rows) == 200  # the default limit
    times = [int(r[0]) for r in rows]
    assert times == sorted(times, reverse=True)  # newest first
    assert times[0] == align(sim.clock.time_ms(), "1m")  # the forming candle comes first
    truth = {c.open_time: c for c in sim.closed_candles(LINEAR, "BTCUSDT", "1m")}
    for r in rows[1:]:
        c = truth[int(r[0])]
        assert r[1:6] == [c.open_str, c.high_str, c.low_str, c.close_str, c.volume_str]
        assert len(r) == 7 and float(r[6]) > 0  # turnover
    _, big = await get(http, sim, LINEAR, KLINE, symbol="BTCUSDT", interval="1", limit=5000)
    assert len(big["result"]["list"]) == 1000  # at most 1000; category defaults to linear


async def test_the_window_includes_both_ends_and_keeps_the_newest(
        http: aiohttp.ClientSession, sim: Simulator) -> None:
    end = align(sim.clock.time_ms(), "1m") - 10 * M
    start = end - 4 * M
    _, body = await get(http, sim, SPOT, KLINE, category="spot", symbol="ETHUSDT",
                        interval="1", start=start + 1, end=end)  # start inside a candle
    assert [int(r[0]) for r in body["result"]["list"]] == [end - i * M for i in range(5)]
    _, body = await get(http, sim, SPOT, KLINE, category="spot", symbol="ETHUSDT",
                        interval="1", start=start, end=end, limit=2)
    assert [int(r[0]) for r in body["result"]["list"]] == [end, end - M]
    _, body = await get(http, sim, SPOT, KLINE, category="spot", symbol="ETHUSDT",
                        interval="60", limit=3)
    assert int(body["result"]["list"][0][0]) == align(sim.clock.time_ms(), "1h")


async def test_bad_parameters_are_http_200_with_retcode_10001(http: aiohttp.ClientSession,
                                                              sim: Simulator) -> None:
    for params, msg in (({"symbol": "NOSUCHUSDT", "interval": "1"}, "Not supported symbols"),
                        ({"category": "spot", "symbol": "BTCUSDT", "interval": "1"},
                         "Not supported symbols"),  # a spot question to the linear venue
                        ({"symbol": "BTCUSDT", "interval": "2"}, "params error: interval"),
                        ({"symbol": "BTCUSDT", "interval": "1", "start": 2, "end": 1},
                         "params error: start")):
        status, body = await get(http, sim, LINEAR, KLINE, **params)
        assert status == 200 and body["retCode"] == 10001, params
        assert body["retMsg"].startswith(msg), body


async def test_instruments_per_category_with_paging(http: aiohttp.ClientSession,
                                                    sim: Simulator) -> None:
    seen: list[str] = []
    cursor = ""
    while True:
        _, body = await get(http, sim, LINEAR, INFO, category="linear", limit=2,
                            **({"cursor": cursor} if cursor else {}))
        items = body["result"]["list"]
        seen += [i["symbol"] for i in items]
        cursor = body["result"]["nextPageCursor"]
        if not cursor:
            break
    assert seen == ["BTCUSDT", "ETHUSDT", "XRPUSDT"]
    _, body = await get(http, sim, LINEAR, INFO, category="linear", symbol="BTCUSDT")
    btc = body["result"]["list"][0]
    assert btc["contractType"] == "LinearPerpetual" and btc["settleCoin"] == "USDT"
    assert btc["priceFilter"]["tickSize"] == "0.1" and btc["lotSizeFilter"]["qtyStep"] == "0.001"
    _, spot = await get(http, sim, SPOT, INFO, category="spot")
    assert [i["symbol"] for i in spot["result"]["list"]] == ["BTCUSDT", "ETHUSDT", "XRPUSDT"]
    assert spot["result"]["list"][0]["lotSizeFilter"]["basePrecision"] == "0.000001"
    for category in ("inverse", "option"):
        _, other = await get(http, sim, SPOT, INFO, category=category)
        assert other["retCode"] == 0 and other["result"]["list"] == []
    _, pre = await get(http, sim, LINEAR, INFO, category="linear", status="PreLaunch")
    assert pre["result"]["list"] == []
    _, bad = await get(http, sim, LINEAR, INFO)
    assert bad["retCode"] == 10001


async def test_server_time(http: aiohttp.ClientSession, sim: Simulator) -> None:
    _, body = await get(http, sim, LINEAR, TIME)
    now = sim.clock.time_ms()
    assert abs(body["time"] - now) < 60_000
    assert int(body["result"]["timeNano"]) // 1_000_000 == body["time"]
    assert int(body["result"]["timeSecond"]) == body["time"] // 1000


def test_the_ip_limit_answers_403_and_blocks() -> None:
    limiter = IpLimiter(3, 5.0, ban_s=600.0)
    assert [limiter.charge("a", 10.0).status for _ in range(3)] == [200] * 3
    assert limiter.charge("b", 10.0).status == 200  # per IP
    over = limiter.charge("a", 10.1)
    assert over.status == 403 and over.ban_left_s == 600
    assert limiter.charge("a", 16.0).status == 403  # a new window does not lift the ban
    assert limiter.charge("a", 609.0).status == 403
    assert limiter.charge("a", 610.2).status == 200


async def test_a_breach_over_http(http: aiohttp.ClientSession) -> None:
    async with Simulator(venues=[LINEAR], symbols=["BTCUSDT"], intervals=["1m"],
                         rest_weight_limit=3, rest_window_s=60.0, ban_s=30.0) as sim:
        statuses = [(await get(http, sim, LINEAR, TIME))[0] for _ in range(5)]
        assert statuses == [200, 200, 200, 403, 403]
        status, body = await get(http, sim, LINEAR, TIME)
        assert status == 403 and "access too frequent" in body


async def test_the_ban_fault_answers_bybits_403_not_binances_418(http: aiohttp.ClientSession,
                                                                  sim: Simulator) -> None:
    sim.inject(Fault(kind="rest_418", venue=LINEAR, duration_s=1.0))
    status, body = await get(http, sim, LINEAR, KLINE, category="linear", symbol="BTCUSDT",
                             interval="1")
    assert status == 403
    assert isinstance(body, str) and "403 Forbidden" in body
