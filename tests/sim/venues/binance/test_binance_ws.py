"""The simulator's WebSocket side over real sockets on 127.0.0.1: subscriptions and error frames,
raw vs combined, the legacy-URL cutover, limits, pings, lifetime and the x:true timing."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from candlekeeper.core.candle import Candle
from candlekeeper.sim import Simulator
from candlekeeper.venues.binance.endpoints import BINANCE_SPOT, BINANCE_USDM
from candlekeeper.venues.binance.stream import BinanceStreamCodec
from candlekeeper.venues.contract import Ack, ErrorReply

USDM, SPOT = "binance-usdm", "binance-spot"
FAST: dict[str, Any] = {"symbols": ["BTCUSDT", "ETHUSDT"], "history": 20,
                        "update_interval_s": 0.02, "close_delay_s": (0.02, 0.06)}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def next_text(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> Any:
    msg = await asyncio.wait_for(ws.receive(), timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def wait_closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> None:
    while True:
        msg = await asyncio.wait_for(ws.receive(), timeout)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.ERROR):
            return


async def test_subscribe_ack_error_and_combined_vs_raw(http: aiohttp.ClientSession) -> None:
    async with Simulator(venues=(USDM, SPOT), speed=10, **FAST) as sim:
        codec = BinanceStreamCodec(BINANCE_USDM)
        ws = await http.ws_connect(sim.ws_base(USDM) + "/stream")
        await ws.send_str(codec.subscribe(["btcusdt@kline_1m", "ethusdt@kline_5m"], 1))
        assert codec.decode(json.dumps(await next_text(ws))) == Ack(1, None)
        await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@kline_9m"],"id":2}')
        reply = codec.decode(json.dumps(await next_text(ws)))
        assert reply == ErrorReply(2, 2, "Invalid request: invalid stream")
        seen: set[str] = set()
        while seen != {"btcusdt@kline_1m", "ethusdt@kline_5m"}:
            frame = await next_text(ws)
            assert set(frame) == {"stream", "data"}  # combined: wrapped
            candle = codec.decode(json.dumps(frame))
            assert isinstance(candle, Candle) and candle.venue == USDM
            seen.add(frame["stream"])
        raw = await http.ws_connect(sim.ws_base(USDM) + "/ws/btcusdt@kline_1m")
        frame = await next_text(raw)
        assert frame["e"] == "kline" and frame["s"] == "BTCUSDT" and "stream" not in frame
        assert isinstance(codec.decode(json.dumps(frame)), Candle)
        # SET_PROPERTY combined switches the wrapper on a live connection
        await raw.send_str('{"method":"SET_PROPERTY","params":["combined",true],"id":7}')
        while (msg := await next_text(raw)).get("id") != 7:
            pass
        assert msg == {"result": None, "id": 7}
        assert set(await next_text(raw)) == {"stream", "data"}
        stats = sim.stats()[USDM]
        assert stats.connections_open == 2 and stats.subscriptions == 3
        assert stats.error_frames == 1
        await ws.close()
        await raw.close()


async def test_legacy_unrouted_path_accepts_but_pushes_no_klines(
        http: aiohttp.ClientSession) -> None:
    async with Simulator(venues=(USDM, SPOT), speed=10, **FAST) as sim:
        root = sim.rest_base(USDM).replace("http", "ws")
        legacy = await http.ws_connect(root + "/ws/btcusdt@kline_1m")
        legacy_stream = await http.ws_connect(root + "/stream")
        await legacy_stream.send_str('{"method":"SUBSCRIBE","params":["btcusdt@kline_1m"],"id":1}')
        assert await next_text(legacy_stream) == {"result": None, "id": 1}
        routed = await http.ws_connect(sim.ws_base(USDM) + "/ws/btcusdt@kline_1m")
        for _ in range(5):  # the routed connection gets frames meanwhile
            assert (await next_text(routed))["e"] == "kline"
        await legacy.send_str('{"method":"LIST_SUBSCRIPTIONS","id":2}')
        # the first thing the legacy connection ever received is the reply: no kline before it
        assert await next_text(legacy) == {"result": ["btcusdt@kline_1m"], "id": 2}
        await legacy_stream.send_str('{"method":"LIST_SUBSCRIPTIONS","id":3}')
        assert await next_text(legacy_stream) == {"result": ["btcusdt@kline_1m"], "id": 3}
    async with Simulator(venues=(USDM, SPOT), speed=10, legacy_routes_push_klines=True,
                         **FAST) as sim:
        root = sim.rest_base(USDM).replace("http", "ws")
        legacy = await http.ws_connect(root + "/ws/btcusdt@kline_1m")
        assert (await next_text(legacy))["e"] == "kline"


async def test_bad_names_in_the_url_are_ignored_not_refused(http: aiohttp.ClientSession) -> None:
    """The exchange accepts ``/ws/<anything>`` and takes SUBSCRIBE afterwards (ccxt numbers its
    connections ``/ws/0``, ``/ws/1``, ...): a name that is no servable stream subscribes nothing.
    Only a path that is no stream endpoint, or more streams than a connection may carry, refuse
    the handshake."""
    async with Simulator(venues=[SPOT], max_streams=1, **FAST) as sim:
        ws = await http.ws_connect(sim.ws_base(SPOT) + "/ws/nopeusdt@kline_1m")
        await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":1}')
        assert await next_text(ws) == {"result": [], "id": 1}  # nothing pushed before it
        await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@kline_1m"],"id":2}')
        assert await next_text(ws) == {"result": None, "id": 2}
        assert (await next_text(ws))["e"] == "kline"
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(sim.ws_base(SPOT) + "/stream?streams="
                                  "btcusdt@kline_1m/ethusdt@kline_1m")
        assert info.value.status == 400
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(sim.ws_base(SPOT) + "/elsewhere")
        assert info.value.status == 404


@pytest.mark.parametrize(("venue", "limit"), [(USDM, 10), (SPOT, 5)])
async def test_control_message_rate_limit_closes_the_connection(
        http: aiohttp.ClientSession, venue: str, limit: int) -> None:
    async with Simulator(venues=[venue], **FAST) as sim:
        ok = await http.ws_connect(sim.ws_base(venue) + "/stream")
        for i in range(limit):  # exactly at the limit: all answered
            await ok.send_str(f'{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}')
        for i in range(limit):
            assert await next_text(ok) == {"result": [], "id": i}
        await ok.close()
        bad = await http.ws_connect(sim.ws_base(venue) + "/stream")
        for i in range(limit + 1):
            await bad.send_str(f'{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}')
        await wait_closed(bad)
        assert bad.closed
        assert sim.stats()[venue].disconnects == {"rate_limit": 1}


async def test_stream_cap_is_an_error_frame(http: aiohttp.ClientSession) -> None:
    async with Simulator(venues=[USDM], max_streams=3, **FAST) as sim:
        ws = await http.ws_connect(sim.ws_base(USDM) + "/stream")
        await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@kline_1m","btcusdt@kline_5m"'
                          ',"btcusdt@kline_1h"],"id":1}')
        assert await next_text(ws) == {"result": None, "id": 1}
        await ws.send_str('{"method":"SUBSCRIBE","params":["ethusdt@kline_1m"],"id":2}')
        while "id" not in (msg := await next_text(ws)):
            pass
        assert msg == {"error": {"code": 2, "msg": "Invalid request: too many streams: at most "
                                 "3 per connection"}, "id": 2}
        assert not ws.closed


async def test_server_pings_and_pong_timeout(http: aiohttp.ClientSession) -> None:
    # pongs count toward the incoming-message rate: raise it with the shrunk ping period
    async with Simulator(venues=[SPOT], ping_interval_s=0.05, pong_timeout_s=0.25, control_rate=100,
                         **FAST) as sim:
        good = await http.ws_connect(sim.ws_base(SPOT) + "/stream", autoping=False)
        silent = await http.ws_connect(sim.ws_base(SPOT) + "/stream", autoping=False)
        pongs: list[bytes] = []
        got_pong = asyncio.Event()

        async def answer() -> None:  # echo every ping's payload, as the exchange requires
            async for msg in good:
                if msg.type is aiohttp.WSMsgType.PING:
                    await good.pong(msg.data)
                elif msg.type is aiohttp.WSMsgType.PONG:
                    pongs.append(bytes(msg.data))
                    got_pong.set()

        reader = asyncio.create_task(answer())
        msg = await asyncio.wait_for(silent.receive(), 2)
        assert msg.type is aiohttp.WSMsgType.PING and msg.data  # a payload the pong must echo
        await silent.pong(b"unsolicited")  # a pong with another payload does not count
        await wait_closed(silent)  # never answered: disconnected
        assert not good.closed  # the good one answered every ping meanwhile
        stats = sim.stats()[SPOT]
        assert stats.disconnects == {"pong_timeout": 1} and stats.pings_sent >= 8
        await good.ping(b"hello")  # client pings get a pong with the same payload
        await asyncio.wait_for(got_pong.wait(), 2)
        assert pongs == [b"hello"]
        reader.cancel()


async def test_connection_lifetime_in_venue_time(http: aiohttp.ClientSession) -> None:
    # 24 h of venue time at x100000 last 0.864 s
    async with Simulator(venues=[USDM], speed=100_000, **FAST) as sim:
        ws = await http.ws_connect(sim.ws_base(USDM) + "/stream")
        await wait_closed(ws)
        assert sim.stats()[USDM].disconnects == {"lifetime": 1}


async def test_closed_frame_exactly_once_per_candle_at_the_right_time(
        http: aiohttp.ClientSession) -> None:
    speed = 600.0  # one minute = 0.1 s wall
    lo, hi = 0.02, 0.06
    async with Simulator(venues=(USDM, SPOT), speed=speed, **FAST) as sim:
        for venue, spec in ((USDM, BINANCE_USDM), (SPOT, BINANCE_SPOT)):
            codec = BinanceStreamCodec(spec)
            ws = await http.ws_connect(sim.ws_base(venue) + "/stream?streams="
                                       "btcusdt@kline_1m/ethusdt@kline_1m/ethusdt@kline_5m")
            closes: dict[tuple[str, str], list[Candle]] = {}
            last_open: dict[tuple[str, str], int] = {}
            while len(closes.get(("BTCUSDT", "1m"), [])) < 12 or not closes.get(("ETHUSDT",
                                                                                   "5m")):
                c = codec.decode((await ws.receive()).data)
                assert isinstance(c, Candle)
                key = (c.symbol, c.interval)
                # per stream: open times never go back, and nothing of the next candle before
                # the x:true of the previous one
                assert c.open_time >= last_open.get(key, 0)
                if key in last_open and c.open_time > last_open[key]:
                    assert closes[key][-1].open_time == last_open[key]
                last_open[key] = c.open_time
                if c.closed:
                    assert c.event_time is not None
                    late_s = (c.event_time - c.close_time - 1) / 1000 / speed
                    assert lo - 0.01 <= late_s <= hi + 0.1, late_s
                    closes.setdefault(key, []).append(c)
            await ws.close()
            for (symbol, interval), got in closes.items():
                opens = [c.open_time for c in got]
                assert len(opens) == len(set(opens))  # exactly once
                truth = {c.open_time: c for c in sim.closed_candles(venue, symbol, interval)}
                for c in got:
                    assert c.same_values(truth[c.open_time])
                assert all(b - a == got[0].close_time - got[0].open_time + 1
                           for a, b in itertools.pairwise(opens))  # no gap
