"""BingX WebSocket personality over real sockets (protocols.md §C.2, §C.3): gzip'd binary
frames, the in-band Ping and the disconnect when Pongs stop, acks echoing string ids, error
frames, the 200-topic limit, the 1 s push of the current candle with T = open time and no
closed flag, and a last push that may be stale while the truth and REST hold the final candle."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from statistics import mean
from typing import Any

import aiohttp
import pytest
from bingxkit import BINGX, TOPIC, connect, pushes

from candlekeeper.core.intervals import INTERVAL_MS
from candlekeeper.sim import Simulator

ACK_KEYS = ["id", "code", "msg", "dataType", "data"]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def bx(**kw: Any) -> Simulator:
    args: dict[str, Any] = {"venues": [BINGX], "symbols": ["BTCUSDT", "ETHUSDT"],
                            "intervals": ["1m", "5m"], "history": 20}
    args.update(kw)
    return Simulator(**args)


async def test_default_cadence_gzip_frames_ack_and_push_shape(
        http: aiohttp.ClientSession) -> None:
    async with bx() as sim:
        assert sim.ws_base(BINGX).endswith("/swap-market")
        c = await connect(sim, http)
        rid = "e745cd6d-d0f6-4a70-8d5a-043e4c741b40"
        await c.sub(TOPIC, rid)
        ack = await c.reply()
        assert list(ack) == ACK_KEYS
        assert ack == {"id": rid, "code": 0, "msg": "", "dataType": "", "data": None}
        frames = await c.until(lambda fs: len(fs) >= 4, timeout=6.0,
                               keep=lambda f: f.is_push)
        gaps = [b.at - a.at for a, b in itertools.pairwise(frames)]
        assert 0.9 <= mean(gaps) <= 1.1, gaps  # one push per second (wall)
        for f in frames:
            p = f.obj
            assert list(p) == ["code", "dataType", "s", "data"]
            assert (p["code"], p["dataType"], p["s"]) == (0, TOPIC, "BTC-USDT")
            [k] = p["data"]
            assert list(k) == ["c", "o", "h", "l", "v", "T"]  # no closed flag, no trade count
            assert k["T"] % INTERVAL_MS["1m"] == 0  # T is the open time
            assert len(k["c"].split(".")[1]) == 1 and len(k["v"].split(".")[1]) == 4
        assert c.gzip_frames >= 5  # the ack and 4 pushes, each checked binary + gzip


async def test_ping_cadence_and_pong_keeps_the_connection(http: aiohttp.ClientSession) -> None:
    async with bx(ping_interval_s=0.2, pong_timeout_s=0.6) as sim:
        c = await connect(sim, http, pong=True)
        pings = await c.until(lambda fs: len(fs) >= 6, keep=lambda f: f.is_ping)
        gaps = [b.at - a.at for a, b in itertools.pairwise(pings)]
        assert all(0.1 <= g <= 0.45 for g in gaps), gaps
        assert sim.stats()[BINGX].disconnects == {}  # 1.2 s > pong_timeout: Pongs counted
        assert sim.stats()[BINGX].pings_sent >= 6


async def test_missed_pongs_disconnect(http: aiohttp.ClientSession) -> None:
    async with bx(ping_interval_s=0.2, pong_timeout_s=0.6) as sim:
        c = await connect(sim, http, pong=False)
        pings: list[float] = []

        async def read_until_closed() -> None:
            while True:
                f = await c.recv(timeout=3.0)
                if f.is_ping:
                    pings.append(f.at)

        with pytest.raises(ConnectionError):
            await read_until_closed()
        # closed once the first unanswered Ping was 0.6 s old: 3 Pings, the 4th never sent
        assert 3 <= len(pings) <= 4, pings
        assert sim.stats()[BINGX].disconnects == {"pong_timeout": 1}


async def test_sub_unsub_acks_echo_any_string_id(http: aiohttp.ClientSession) -> None:
    async with bx(update_interval_s=0.05) as sim:
        c = await connect(sim, http)
        for rid, topic in (("|1|", TOPIC), ("17", "ETH-USDT@kline_5m")):
            await c.sub(topic, rid)
            assert await c.reply() == {"id": rid, "code": 0, "msg": "", "dataType": "",
                                       "data": None}
        seen = await c.until(lambda fs: {p["dataType"] for p in pushes(fs)} == {
            TOPIC, "ETH-USDT@kline_5m"}, keep=lambda f: f.is_push)
        assert seen
        await c.sub(TOPIC, "uuid-2", req="unsub")
        assert (await c.reply())["id"] == "uuid-2"
        after = await c.until(lambda fs: len(fs) >= 10, keep=lambda f: f.is_push)
        assert {p["dataType"] for p in pushes(after)} == {"ETH-USDT@kline_5m"}
        assert sim.stats()[BINGX].subscriptions == 1


@pytest.mark.parametrize(("request_", "rid"), [
    ("not json", None),
    ('["sub"]', None),
    ({"id": 5, "reqType": "sub", "dataType": TOPIC}, None),
    ({"id": "a", "reqType": "subscribe", "dataType": TOPIC}, "a"),
    ({"id": "b", "reqType": "sub", "dataType": "FOO-USDT@kline_1m"}, "b"),
    ({"id": "c", "reqType": "sub", "dataType": "BTC-USDT@kline_7m"}, "c"),
    ({"id": "d", "reqType": "sub", "dataType": "BTC-USDT@kline_1h"}, "d"),  # not simulated
    ({"id": "e", "reqType": "sub", "dataType": "BTC-USDT@trade"}, "e"),
    ({"id": "f", "reqType": "sub", "dataType": "BTCUSDT@kline_1m"}, "f"),  # no hyphen
    ({"id": "g", "reqType": "sub", "dataType": "btc-usdt@kline_1m"}, "g"),  # lowercase
    ({"id": "h", "reqType": "sub"}, "h"),
])
async def test_bad_requests_get_100400_echoing_the_id(http: aiohttp.ClientSession,
                                                      request_: Any, rid: str | None) -> None:
    async with bx() as sim:
        c = await connect(sim, http)
        await c.send(request_)
        err = await c.reply()
        assert err["code"] == 100400 and err["msg"]
        assert err.get("id") == rid
        assert abs(err["timestamp"] - sim.clock.time_ms()) < 5_000
        await c.sub(TOPIC, "ok")  # the connection survives a bad request
        assert (await c.reply())["code"] == 0
        assert sim.stats()[BINGX].error_frames == 1


async def test_topic_limit_80403(http: aiohttp.ClientSession) -> None:
    symbols = [f"S{i}USDT" for i in range(101)]  # 202 topics exist; 200 fit one connection
    async with bx(symbols=symbols, update_interval_s=30.0) as sim:
        assert sim.server(BINGX).opts.max_streams == 200
        c = await connect(sim, http)
        topics = [f"S{i}-USDT@kline_{iv}" for i in range(101) for iv in ("1m", "5m")]
        for n, topic in enumerate(topics[:200]):
            await c.sub(topic, str(n))
            assert await c.reply() == {"id": str(n), "code": 0, "msg": "", "dataType": "",
                                       "data": None}
        await c.sub(topics[200], "over")
        err = await c.reply()
        assert (err["code"], err["id"]) == (80403, "over")
        await c.sub(topics[0], "again")  # an already subscribed topic is fine
        assert (await c.reply())["code"] == 0
        await c.sub(topics[0], "u", req="unsub")
        assert (await c.reply())["code"] == 0
        await c.sub(topics[200], "now")  # room again after an unsub
        assert (await c.reply())["code"] == 0
        assert sim.stats()[BINGX].subscriptions == 200


async def _candle_pushes(sim: Simulator, http: aiohttp.ClientSession,
                         candles: int) -> dict[int, list[dict[str, str]]]:
    """Push data by open time until ``candles`` whole candles were seen (the first, partial
    one excluded) and the next one started."""
    c = await connect(sim, http)
    await c.sub(TOPIC, "x")
    frames = await c.until(
        lambda fs: len({p["data"][0]["T"] for p in pushes(fs)}) >= candles + 2,
        timeout=10.0, keep=lambda f: f.is_push)
    by_t: dict[int, list[dict[str, str]]] = {}
    for p in pushes(frames):
        by_t.setdefault(p["data"][0]["T"], []).append(p["data"][0])
    order = [p["data"][0]["T"] for p in pushes(frames)]
    assert order == sorted(order)  # candles follow each other; a later T closes the earlier
    ts = sorted(by_t)
    return {t: by_t[t] for t in ts[1:-1]}


async def test_last_push_is_stale_but_truth_and_rest_are_final(
        http: aiohttp.ClientSession) -> None:
    # a 1m candle lasts 1 s of wall time; 8 pushes per candle at 0.125 s
    async with bx(speed=60.0, update_interval_s=0.125) as sim:
        by_t = await _candle_pushes(sim, http, 2)
        truth = {c.open_time: c for c in sim.closed_candles(BINGX, "BTCUSDT", "1m")}
        async with http.get(sim.rest_base(BINGX) + "/openApi/swap/v3/quote/klines",
                            params={"symbol": "BTC-USDT", "interval": "1m", "limit": "10"}) as r:
            rest = {row["time"]: row for row in (await r.json())["data"]}
        for t, ks in by_t.items():
            final, last = truth[t], ks[-1]
            assert 6 <= len(ks) <= 10
            assert all(k["o"] == final.open_str for k in ks)
            assert last["v"] != final.volume_str  # the last push predates the close
            assert float(last["v"]) < float(final.volume_str)
            assert (rest[t]["open"], rest[t]["high"], rest[t]["low"], rest[t]["close"],
                    rest[t]["volume"]) == (final.open_str, final.high_str, final.low_str,
                                           final.close_str, final.volume_str)
            assert final.trades is None and final.quote_volume_str is None


async def test_final_push_option_makes_the_websocket_exact(http: aiohttp.ClientSession) -> None:
    async with bx(speed=60.0, update_interval_s=0.125, stale_last_push=False) as sim:
        by_t = await _candle_pushes(sim, http, 2)
        truth = {c.open_time: c for c in sim.closed_candles(BINGX, "BTCUSDT", "1m")}
        for t, ks in by_t.items():
            final, last = truth[t], ks[-1]
            assert (last["o"], last["h"], last["l"], last["c"], last["v"]) == (
                final.open_str, final.high_str, final.low_str, final.close_str,
                final.volume_str)
        assert sim.stats()[BINGX].closed_frames_sent >= 2
