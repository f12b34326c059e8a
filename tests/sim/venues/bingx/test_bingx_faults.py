"""Chaos-suite faults on BingX connections and REST, observed by a real client over
127.0.0.1 (and decoded by the client's own ``BingxStreamCodec``): what arrives, and what
``Simulator.fault_log`` says was applied."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from bingxkit import BINGX, TOPIC, BxClient, Frame, connect, pushes

from candlekeeper.core.candle import Candle
from candlekeeper.sim import Simulator
from candlekeeper.sim.faults import Fault, FaultPlan
from candlekeeper.venues.bingx.endpoints import BINGX_SWAP
from candlekeeper.venues.bingx.history import BingxHistoryCodec
from candlekeeper.venues.bingx.stream import BingxStreamCodec
from candlekeeper.venues.contract import Malformed

#: a 1m candle lasts 1 s of wall time; 20 pushes per candle
FAST: dict[str, Any] = {"venues": [BINGX], "symbols": ["BTCUSDT", "ETHUSDT"],
                        "intervals": ["1m"], "history": 5, "speed": 60.0,
                        "update_interval_s": 0.05, "ping_interval_s": 0.1,
                        "pong_timeout_s": 5.0}
STEP = 60_000


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def subscribed(sim: Simulator, http: aiohttp.ClientSession) -> BxClient:
    c = await connect(sim, http)
    await c.sub(TOPIC, "s")
    assert (await c.reply())["code"] == 0
    await c.until(lambda fs: len(fs) >= 2, keep=lambda f: f.is_push)
    return c


async def closed_by(c: BxClient, timeout: float = 5.0) -> list[Frame]:
    got: list[Frame] = []

    async def read() -> None:
        while True:
            got.append(await c.recv(timeout))

    with pytest.raises(ConnectionError):
        await read()
    return got


@pytest.mark.parametrize(("fault", "reason", "code"), [
    (Fault(kind="disconnect"), "fault_disconnect", None),
    (Fault(kind="close", params={"code": 1011}), "fault_close", 1011),
    (Fault(kind="lifetime"), "lifetime", 1008),
    (Fault(kind="server_shutdown", params={"delay_s": 0.2}), "server_shutdown", 1001),
])
async def test_connection_faults(http: aiohttp.ClientSession, fault: Fault, reason: str,
                                 code: int | None) -> None:
    async with Simulator(**FAST) as sim:
        c = await subscribed(sim, http)
        sim.inject(fault)
        before = await closed_by(c)
        assert all(f.is_ping or f.is_push for f in before)  # BingX sends no shutdown notice
        if code is not None:
            assert c.ws.close_code == code
        assert sim.stats()[BINGX].disconnects == {reason: 1}
        assert sim.fault_log[0].kind == fault.kind


async def test_stall_without_pings_then_resume(http: aiohttp.ClientSession) -> None:
    async with Simulator(**FAST) as sim:
        c = await subscribed(sim, http)
        t0 = time.monotonic()
        fid = sim.inject(Fault(kind="stall", duration_s=0.6, params={"pings": False}))
        first = await c.recv()
        while first.at - t0 < 0.01:  # frames already in flight
            first = await c.recv()
        assert first.at - t0 >= 0.55  # nothing at all for the stall's length
        await c.until(lambda fs: len(fs) >= 3, keep=lambda f: f.is_push)
        await c.until(lambda fs: len(fs) >= 1, keep=lambda f: f.is_ping)
        ended = await sim.wait_fault(lambda r: r.fault_id == fid and "ended" in r.detail)
        assert int(ended.detail.split(", ")[1].split()[0]) >= 8  # pushes withheld


async def test_drop_pings_keeps_pushes(http: aiohttp.ClientSession) -> None:
    async with Simulator(**FAST) as sim:
        c = await subscribed(sim, http)
        fid = sim.inject(Fault(kind="drop_pings", duration_s=0.6))
        t0 = time.monotonic()
        frames = await c.until(lambda fs: bool(fs) and fs[-1].at - t0 >= 0.5)
        assert not any(f.is_ping for f in frames if f.at - t0 > 0.02)
        assert len(pushes(frames)) >= 6
        await sim.wait_fault(lambda r: r.fault_id == fid and r.detail == "pings resumed")
        await c.until(lambda fs: len(fs) >= 1, keep=lambda f: f.is_ping)


async def test_duplicate_and_reorder(http: aiohttp.ClientSession) -> None:
    async with Simulator(**FAST) as sim:
        c = await subscribed(sim, http)
        sim.inject(Fault(kind="duplicate", count=2))
        frames = await c.until(lambda fs: len(fs) >= 8, keep=lambda f: f.is_push)
        raws = [f.raw for f in frames]
        assert sum(a == b for a, b in itertools.pairwise(raws)) == 2
        fid = sim.inject(Fault(kind="reorder", count=1))
        frames = await c.until(lambda fs: len(fs) >= 8, keep=lambda f: f.is_push)
        rec = await sim.wait_fault(lambda r: r.fault_id == fid and "sent after" in r.detail)
        ks = [(p["data"][0]["T"], float(p["data"][0]["v"])) for p in pushes(frames)]
        assert any(b < a for a, b in itertools.pairwise(ks))  # one went back in time
        assert rec.stream == TOPIC


async def test_malformed_and_truncated_are_malformed_to_the_codec(
        http: aiohttp.ClientSession) -> None:
    codec = BingxStreamCodec(BINGX_SWAP)
    async with Simulator(**FAST) as sim:
        ws = await http.ws_connect(sim.ws_base(BINGX))
        await ws.send_str('{"id":"1","reqType":"sub","dataType":"BTC-USDT@kline_1m"}')
        sim.inject(Fault(kind="truncated", count=1))
        await sim.wait_fault(lambda r: r.kind == "truncated")
        sim.inject(Fault(kind="malformed", count=12))
        bad = candles = 0
        async with asyncio.timeout(5):
            while candles < 5:
                msg = await ws.receive()
                data = msg.data if msg.type is aiohttp.WSMsgType.TEXT else bytes(msg.data)
                out = codec.decode(data)
                if isinstance(out, Malformed):
                    bad += 1
                elif isinstance(out, Candle) and bad:
                    candles += 1  # the connection carries on after the bad frames
        assert bad == 13
        assert sim.stats()[BINGX].faults == {"truncated": 1, "malformed": 12}
        cut = next(r for r in sim.fault_log if r.kind == "truncated")
        assert "cut to" in cut.detail and cut.stream == TOPIC
        await ws.close()


async def test_missing_close_drops_the_final_push(http: aiohttp.ClientSession) -> None:
    async with Simulator(**FAST, stale_last_push=False) as sim:
        c = await subscribed(sim, http)
        fid = sim.inject(Fault(kind="missing_close", count=1))
        rec = await sim.wait_fault(lambda r: r.fault_id == fid and r.open_time is not None)
        t0 = rec.open_time
        assert t0 is not None and rec.detail == "last push of a candle dropped"
        frames = await c.until(lambda fs: any(p["data"][0]["T"] >= t0 + 2 * STEP
                                              for p in pushes(fs)), keep=lambda f: f.is_push)
        truth = {x.open_time: x for x in sim.closed_candles(BINGX, "BTCUSDT", "1m")}
        final = {t: truth[t].volume_str for t in (t0, t0 + STEP)}
        seen = {t: [p["data"][0]["v"] for p in pushes(frames) if p["data"][0]["T"] == t]
                for t in final}
        assert final[t0] not in seen[t0]  # the hit candle's final values never arrived
        assert seen[t0 + STEP][-1] == final[t0 + STEP]  # the next one's did


async def test_missing_close_tail_drops_the_rest_of_the_candle(
        http: aiohttp.ClientSession) -> None:
    async with Simulator(**FAST) as sim:
        c = await subscribed(sim, http)
        fid = sim.inject(Fault(kind="missing_close", count=1, params={"tail": True}))
        rec = await sim.wait_fault(lambda r: r.fault_id == fid and r.open_time is not None)
        t0 = rec.open_time
        assert t0 is not None
        hit_at = time.monotonic() - (sim.wall_elapsed() - rec.wall_s)  # monotonic seconds
        assert rec.detail == "every frame of the candle dropped from here to its close"
        frames = await c.until(lambda fs: any(p["data"][0]["T"] > t0 for p in pushes(fs)),
                               keep=lambda f: f.is_push)
        of_t0 = [f for f in frames if f.obj["data"][0]["T"] == t0]
        assert all(f.at <= hit_at + 0.02 for f in of_t0)  # none after the hit
        later = [f for f in frames if f.obj["data"][0]["T"] == t0 + STEP]
        assert later  # the next candle flows again: the client infers t0's close from it


# -- REST ---------------------------------------------------------------------------------------
async def _get(http: aiohttp.ClientSession, sim: Simulator,
               symbol: str = "BTC-USDT") -> tuple[int, dict[str, str], bytes, float]:
    t = time.monotonic()
    async with http.get(sim.rest_base(BINGX) + "/openApi/swap/v3/quote/klines",
                        params={"symbol": symbol, "interval": "1m", "limit": "3"}) as r:
        return r.status, dict(r.headers), await r.read(), time.monotonic() - t


@pytest.mark.parametrize(("fault", "status", "code"), [
    (Fault(kind="rest_429"), 429, 100410),
    (Fault(kind="rest_418", duration_s=0.5), 418, 100410),
    (Fault(kind="rest_5xx", params={"status": 503}), 503, 80012),
    (Fault(kind="rest_5xx", params={"status": 500}), 500, 100500),
    (Fault(kind="rest_timeout", params={"hold_s": 0.2}), 504, 100500),
])
async def test_rest_faults(http: aiohttp.ClientSession, fault: Fault, status: int,
                           code: int) -> None:
    async with Simulator(**FAST) as sim:
        sim.inject(fault)
        got, headers, body, _ = await _get(http, sim)
        assert got == status and f'"code":{code}'.encode() in body
        assert "X-RateLimit-Requests-Remain" in headers and "X-RateLimit-Requests-Expire" in headers
        if fault.kind != "rest_418":
            got, _, body, _ = await _get(http, sim)  # one hit only
            assert got == 200 and body.startswith(b'{"code":0,')


async def test_rest_slow_and_symbol_target(http: aiohttp.ClientSession) -> None:
    async with Simulator(**FAST) as sim:
        sim.inject(Fault(kind="rest_slow", params={"delay_s": 0.3}, target="symbol:BTCUSDT"))
        status, _, body, took = await _get(http, sim, "ETH-USDT")
        assert status == 200 and took < 0.25  # another symbol: untouched
        status, _, body, took = await _get(http, sim, "BTC-USDT")
        assert status == 200 and took >= 0.3
        rows = BingxHistoryCodec(BINGX_SWAP).decode_klines(body, "BTCUSDT", "1m")
        truth = sim.closed_candles(BINGX, "BTCUSDT", "1m")
        assert [(r.open_time, r.close_str) for r in rows[:2]] == [
            (x.open_time, x.close_str) for x in truth[-2:]]


def test_gzip_helper_matches_the_codec() -> None:
    from candlekeeper.sim.framing import GzipFraming
    frame = GzipFraming().frame(b'{"code":0}')
    assert frame[0] == 0x82 and zlib.decompress(frame[2:], 31) == b'{"code":0}'


async def test_random_all_kinds_plan_leaves_the_truth_alone(http: aiohttp.ClientSession) -> None:
    plan = FaultPlan.random(3, kinds="all", count=24, window=(0.0, 1.5), venues=[BINGX],
                            symbols=["BTCUSDT"], durations=(0.1, 0.3), rest_delay_s=(0.05, 0.1),
                            timeout_hold_s=0.2)
    start = 1_795_000_000_000
    async with Simulator(**FAST, start_time_ms=start, faults=plan) as sim:
        c = await subscribed(sim, http)
        with contextlib.suppress(ConnectionError, TimeoutError):
            await c.until(lambda fs: False, timeout=2.0)
        for _ in range(3):
            async with http.get(sim.rest_base(BINGX) + "/openApi/swap/v3/quote/klines",
                                params={"symbol": "BTC-USDT", "interval": "1m"}) as r:
                await r.read()
        until = sim.clock.time_ms()
        faulted = sim.closed_candles(BINGX, "BTCUSDT", "1m", until_ms=until)
        kinds = {r.kind for r in sim.fault_log}
    async with Simulator(**FAST, start_time_ms=start) as clean:
        assert clean.closed_candles(BINGX, "BTCUSDT", "1m", until_ms=until) == faulted
    assert len(kinds) >= 8 and len(faulted) > 5
