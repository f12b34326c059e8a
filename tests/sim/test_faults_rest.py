"""REST faults over real HTTP on 127.0.0.1 (status codes, headers, bodies, delays), and the
invariant that faults never change the simulator's truth nor the candles REST does return."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from candlekeeper.sim import Simulator
from candlekeeper.sim.faults import Fault, FaultPlan
from candlekeeper.venues.binance.endpoints import BINANCE_SPOT, BINANCE_USDM
from candlekeeper.venues.binance.history import BinanceHistoryCodec

USDM, SPOT = "binance-usdm", "binance-spot"
FAST: dict[str, Any] = {"symbols": ["BTCUSDT", "ETHUSDT"], "intervals": ["1m"], "history": 30,
                        "speed": 300.0, "update_interval_s": 0.01,
                        "close_delay_s": (0.01, 0.04)}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(venues=(USDM, SPOT), **FAST) as s:
        yield s


def url(sim: Simulator, venue: str = USDM, symbol: str = "BTCUSDT") -> str:
    path = "/fapi/v1/klines" if venue == USDM else "/api/v3/klines"
    return f"{sim.rest_base(venue)}{path}?symbol={symbol}&interval=1m&limit=10"


async def get(http: aiohttp.ClientSession, u: str,
              timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    async with http.get(u, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
        return r.status, dict(r.headers), await r.read()


def assert_true_candles(sim: Simulator, body: bytes, venue: str = USDM,
                        symbol: str = "BTCUSDT") -> None:
    """The REST rows equal the simulator's truth for those open times, field by field.

    The newest row was the forming candle when the answer was built; at speed 300 it may have
    closed (with more trades) by the time the truth is read, so only the rows before it are
    compared.
    """
    spec = BINANCE_USDM if venue == USDM else BINANCE_SPOT
    rows = BinanceHistoryCodec(spec).decode_klines(body, symbol, "1m")
    truth = {c.open_time: c for c in sim.closed_candles(venue, symbol, "1m")}
    assert len(rows) >= 2
    for c in rows[:-1]:
        assert c.open_time in truth
        assert c.same_values(truth[c.open_time], trade_ids=False)


async def test_429_with_retry_after_then_normal(sim: Simulator,
                                                http: aiohttp.ClientSession) -> None:
    sim.inject(Fault(kind="rest_429", count=2, params={"retry_after_s": 3}))
    for _ in range(2):
        status, headers, body = await get(http, url(sim))
        assert status == 429 and headers["Retry-After"] == "3"
        assert "X-MBX-USED-WEIGHT-1M" in headers
        assert json.loads(body)["code"] == -1003
    status, headers, body = await get(http, url(sim))
    assert status == 200 and "Retry-After" not in headers
    assert_true_candles(sim, body)
    stats = sim.stats()[USDM]
    assert stats.faults == {"rest_429": 2} and stats.rest.rejected_429 == 0  # no escalation


async def test_418_ban_for_a_duration(sim: Simulator, http: aiohttp.ClientSession) -> None:
    t0 = time.monotonic()
    sim.inject(Fault(kind="rest_418", duration_s=0.4, venue=SPOT))
    status, headers, body = await get(http, url(sim, SPOT))
    assert status == 418 and headers["Retry-After"] == "1"
    assert "IP banned until" in json.loads(body)["msg"]
    assert (await get(http, url(sim)))[0] == 200  # only the spot venue is banned
    async with asyncio.timeout(5):
        while (reply := await get(http, url(sim, SPOT)))[0] == 418:
            await asyncio.sleep(0.05)  # a client polling through a ban
    assert time.monotonic() - t0 >= 0.4
    assert reply[0] == 200
    assert_true_candles(sim, reply[2], SPOT)


@pytest.mark.parametrize(("status", "marker"), [(500, b"-1000"), (502, b"Bad Gateway"),
                                                (503, b"-1008"), (504, b"-1007")])
async def test_5xx(sim: Simulator, http: aiohttp.ClientSession, status: int,
                   marker: bytes) -> None:
    sim.inject(Fault(kind="rest_5xx", params={"status": status}))
    got, _, body = await get(http, url(sim))
    assert got == status and marker in body
    assert (await get(http, url(sim)))[0] == 200  # count defaults to one request


async def test_timeout_holds_past_the_client_deadline(sim: Simulator,
                                                      http: aiohttp.ClientSession) -> None:
    fid = sim.inject(Fault(kind="rest_timeout", params={"hold_s": 30.0}))
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await get(http, url(sim), timeout=0.3)
    assert 0.25 <= time.monotonic() - t0 < 2.0
    rec = await sim.wait_fault(lambda r: r.fault_id == fid and "held" in r.detail)
    assert rec.stream == "BTCUSDT" and rec.detail.startswith("/fapi/v1/klines")
    status, _, body = await get(http, url(sim))
    assert status == 200
    assert_true_candles(sim, body)


async def test_timeout_answers_504_if_the_client_waits(sim: Simulator,
                                                       http: aiohttp.ClientSession) -> None:
    sim.inject(Fault(kind="rest_timeout", params={"hold_s": 0.2}))
    status, _, body = await get(http, url(sim))
    assert status == 504 and b"-1007" in body


async def test_slow_response_then_true_candles(sim: Simulator,
                                               http: aiohttp.ClientSession) -> None:
    sim.inject(Fault(kind="rest_slow", count=1, params={"delay_s": 0.3}))
    t0 = time.monotonic()
    status, headers, body = await get(http, url(sim))
    assert time.monotonic() - t0 >= 0.3
    assert status == 200 and int(headers["X-MBX-USED-WEIGHT-1M"]) >= 1
    assert_true_candles(sim, body)
    t0 = time.monotonic()
    await get(http, url(sim))
    assert time.monotonic() - t0 < 0.25


async def test_symbol_target_and_fraction_are_deterministic(http: aiohttp.ClientSession) -> None:
    patterns = []
    for _ in range(2):
        async with Simulator(venues=(USDM, SPOT), **FAST, seed=11) as sim:
            sim.inject(Fault(kind="rest_5xx", target="symbol:ETHUSDT", duration_s=30.0,
                             fraction=0.5, params={"status": 500}))
            pattern = []
            for _ in range(30):
                pattern.append((await get(http, url(sim, symbol="ETHUSDT")))[0])
                assert (await get(http, url(sim)))[0] == 200  # BTCUSDT untouched
            patterns.append(pattern)
    assert patterns[0] == patterns[1]
    assert 5 <= patterns[0].count(500) <= 25 and set(patterns[0]) == {200, 500}


async def test_faults_never_change_truth(http: aiohttp.ClientSession) -> None:
    """A client through every fault kind at once sees damaged delivery; the market (closed
    candles, and every REST answer that comes back) equals an unfaulted simulator's."""
    plan = FaultPlan.random(5, kinds="all", count=40, window=(0.0, 0.8),
                            symbols=["BTCUSDT"], durations=(0.1, 0.3), rest_delay_s=(0.05, 0.1),
                            timeout_hold_s=0.3)
    async with Simulator(venues=(USDM, SPOT), **FAST, seed=4, faults=plan) as faulty, \
            Simulator(venues=(USDM, SPOT), **FAST, seed=4,
                      start_time_ms=faulty.clock.start_ms) as clean:
        ws = await http.ws_connect(faulty.ws_base(USDM) + "/ws/btcusdt@kline_1m")
        received = answered = 0
        async with asyncio.timeout(10):
            while faulty.wall_elapsed() < 1.0:
                if ws.closed:  # disconnected by a fault: reconnect, as a client would
                    ws = await http.ws_connect(faulty.ws_base(USDM) + "/ws/btcusdt@kline_1m")
                received += await _one(ws)
                status, _, body = await _try_get(http, url(faulty))
                if status == 200:
                    answered += 1
                    assert_true_candles(faulty, body)
        await ws.close()
        until = faulty.clock.time_ms()
        for venue in (USDM, SPOT):
            for symbol in ("BTCUSDT", "ETHUSDT"):
                assert (faulty.closed_candles(venue, symbol, "1m", until_ms=until)
                        == clean.closed_candles(venue, symbol, "1m", until_ms=until))
        applied = {r.kind for r in faulty.fault_log if r.detail != "no matching connection"}
        assert applied >= {"rest_429", "rest_5xx", "rest_418", "rest_timeout", "rest_slow"}
        assert len(applied - {"rest_429", "rest_5xx", "rest_418", "rest_timeout",
                              "rest_slow"}) >= 5  # WebSocket faults hit the live connection
        assert received > 0 and answered > 0


async def _one(ws: aiohttp.ClientWebSocketResponse) -> int:
    try:
        msg = await asyncio.wait_for(ws.receive(), 0.05)
    except TimeoutError:
        return 0
    return int(msg.type is aiohttp.WSMsgType.TEXT)


async def _try_get(http: aiohttp.ClientSession, u: str) -> tuple[int, dict[str, str], bytes]:
    try:
        return await get(http, u, timeout=0.2)
    except TimeoutError:
        return 0, {}, b""
