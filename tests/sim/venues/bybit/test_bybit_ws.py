"""Bybit WebSocket personality (§D.2-§D.5) over a real socket: the acks and pongs of each
market's docs tab, refusals as ``success: false``, spot's 10 args per request, and the pushes:
``confirm: true`` exactly once per candle, sometimes together with the next candle in one
``data`` array."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from candlekeeper.core.intervals import MINUTE
from candlekeeper.sim import Simulator

LINEAR, SPOT = "bybit-linear", "bybit-spot"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(venues=[LINEAR, SPOT], symbols=["BTCUSDT", "ETHUSDT"],
                         intervals=["1m"], speed=120.0, update_interval_s=0.05) as s:
        yield s


def pairs_next(open_time: int) -> bool:
    """The personality pairs the closing frame of every other candle with the next."""
    return (open_time // MINUTE) % 2 == 0


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> Any:
    msg = await ws.receive(timeout=timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def reply(ws: aiohttp.ClientWebSocketResponse) -> Any:
    """The next frame that is no push."""
    while True:
        obj = await recv(ws)
        if "topic" not in obj:
            return obj


@pytest.mark.parametrize("venue", [LINEAR, SPOT])
async def test_acks_pongs_and_refusals_per_market(sim: Simulator, venue: str) -> None:
    spot = venue == SPOT
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_base(venue)) as ws:
        assert sim.ws_base(venue).endswith("/v5/public/spot" if spot else "/v5/public/linear")
        await ws.send_str(json.dumps({"op": "subscribe", "req_id": "s1",
                                      "args": ["kline.1.BTCUSDT"]}))
        ack = await reply(ws)
        assert ack["success"] is True and ack["op"] == "subscribe" and ack["req_id"] == "s1"
        assert ack["ret_msg"] == ("subscribe" if spot else "") and ack["conn_id"]
        await ws.send_str(json.dumps({"req_id": 7, "op": "ping"}))  # ccxt's numeric id
        pong = await reply(ws)
        assert pong["ret_msg"] == "pong" and pong["op"] == "ping" and pong["success"] is True
        assert ("req_id" not in pong) if spot else pong["req_id"] == "7"
        await ws.send_str(json.dumps({"op": "subscribe", "req_id": "s2",
                                      "args": ["kline.1.ETHUSDT", "kline.1.NOSUCHUSDT"]}))
        err = await reply(ws)
        assert err["success"] is False and err["req_id"] == "s2"
        assert err["ret_msg"] == "Invalid topic: kline.1.NOSUCHUSDT"
        await ws.send_str(json.dumps({"op": "subscribe", "req_id": "s3",
                                      "args": ["kline.1.ETHUSDT"] * 11}))
        many = await reply(ws)
        assert many["success"] is (not spot)  # 11 args: too many on spot only
        if spot:
            assert many["ret_msg"] == "args size >10"
        await ws.send_str('{"op":"dance"}')
        assert (await reply(ws))["ret_msg"] == "error:invalid op"
        await ws.send_str(json.dumps({"op": "unsubscribe", "req_id": "u1",
                                      "args": ["kline.1.BTCUSDT"]}))
        unsub = await reply(ws)
        assert unsub["success"] is True and unsub["op"] == "unsubscribe"
    stats = sim.stats()[venue]
    assert stats.disconnects == {} or set(stats.disconnects) <= {"client"}


@pytest.mark.parametrize("venue", [LINEAR, SPOT])
async def test_each_candle_closes_once_and_arrays_carry_the_next(sim: Simulator,
                                                                 venue: str) -> None:
    closes: dict[int, int] = {}
    paired_at: list[int] = []
    last_start = 0
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_base(venue)) as ws:
        await ws.send_str(json.dumps({"op": "subscribe", "args": ["kline.1.BTCUSDT"]}))
        assert (await reply(ws))["req_id"] == ""  # no id sent: "" echoed
        deadline = time.monotonic() + 20
        while len(closes) < 6:
            assert time.monotonic() < deadline, closes
            obj = await recv(ws)
            if "topic" not in obj:
                continue
            assert obj["topic"] == "kline.1.BTCUSDT" and obj["type"] == "snapshot"
            data = obj["data"]
            assert 1 <= len(data) <= 2
            if len(data) == 2:  # the closing bar and the newly opened one
                assert data[0]["confirm"] is True and data[1]["confirm"] is False
                assert data[1]["start"] == data[0]["end"] + 1
                paired_at.append(data[0]["start"])
            for k in data:
                assert k["interval"] == "1" and k["end"] == k["start"] + 59_999
                assert k["start"] >= last_start  # never an older candle after a newer one
                last_start = k["start"]
                if k["confirm"]:
                    closes[k["start"]] = closes.get(k["start"], 0) + 1
    assert set(closes.values()) == {1}
    # every other close carries the next candle too (when it has traded by then)
    assert all(pairs_next(t) for t in paired_at) and paired_at
    assert len(paired_at) < len(closes)
    truth = {c.open_time: c for c in sim.closed_candles(venue, "BTCUSDT", "1m")}
    assert set(closes) <= set(truth)
