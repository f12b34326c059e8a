"""WebSocket faults, one focused test per kind, observed by a real aiohttp client over
127.0.0.1: what arrives on the socket, and what ``Simulator.fault_log`` says was applied."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from candlekeeper.sim import Simulator
from candlekeeper.sim.faults import Fault, FaultPlan
from candlekeeper.venues.binance.endpoints import BINANCE_USDM
from candlekeeper.venues.binance.stream import BinanceStreamCodec
from candlekeeper.venues.contract import Malformed

USDM = "binance-usdm"
STREAM = "btcusdt@kline_1m"
#: 1m candles last 0.2 s of wall time; x:true 10-40 ms after the close
FAST: dict[str, Any] = {"venues": [USDM], "symbols": ["BTCUSDT", "ETHUSDT"],
                        "intervals": ["1m"], "history": 5, "speed": 300.0,
                        "update_interval_s": 0.01, "close_delay_s": (0.01, 0.04)}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(**FAST) as s:
        yield s


async def connect(sim: Simulator, http: aiohttp.ClientSession, streams: str = STREAM,
                  **kw: Any) -> aiohttp.ClientWebSocketResponse:
    ws: aiohttp.ClientWebSocketResponse = await http.ws_connect(
        f"{sim.ws_base(USDM)}/ws/{streams}", **kw)
    await sim.wait_connections(USDM, 1)
    return ws


async def frames(ws: aiohttp.ClientWebSocketResponse, until: Any,
                 timeout: float = 5.0) -> list[str]:
    """Text frames until ``until(frames_so_far)`` is true."""
    out: list[str] = []
    async with asyncio.timeout(timeout):
        while not until(out):
            msg = await ws.receive()
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            out.append(msg.data)
    return out


def klines(raw: list[str]) -> list[dict[str, Any]]:
    return [json.loads(f)["k"] for f in raw]


def closes(raw: list[str]) -> int:
    return sum('"x":true' in f for f in raw)


async def end_of(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    """The message that ends the connection (CLOSE, CLOSED or ERROR)."""
    async with asyncio.timeout(5):
        while True:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return msg


async def test_disconnect_is_a_reset_without_close_frame(sim: Simulator,
                                                         http: aiohttp.ClientSession) -> None:
    ws = await connect(sim, http)
    [cid] = await sim.wait_connections(USDM, 1)
    await frames(ws, lambda f: len(f) >= 2)
    sim.inject(Fault(kind="disconnect"))
    msg = await end_of(ws)
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)  # no CLOSE frame
    assert sim.stats()[USDM].disconnects == {"fault_disconnect": 1}
    [rec] = sim.fault_log
    assert (rec.kind, rec.connection, rec.detail) == ("disconnect", cid,
                                                      "TCP reset, no close frame")
    assert sim.server(USDM).pusher.shaping is False  # connection faults keep the plain path


async def test_disconnect_sends_tcp_reset(sim: Simulator) -> None:
    async def read_to_end() -> None:
        async with asyncio.timeout(5):
            while await reader.read(65536):
                pass

    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port(USDM))
    writer.write(b"GET /market/ws/btcusdt@kline_1m HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    await sim.wait_connections(USDM, 1)
    sim.inject(Fault(kind="disconnect"))
    with pytest.raises(ConnectionResetError):
        await read_to_end()
    writer.close()


@pytest.mark.parametrize(("code", "reason"), [(1001, "going away"), (1011, "fault")])
async def test_close_frame_with_code(sim: Simulator, http: aiohttp.ClientSession, code: int,
                                     reason: str) -> None:
    ws = await connect(sim, http)
    sim.inject(Fault(kind="close", params={"code": code}))
    msg = await end_of(ws)
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert (msg.data, msg.extra) == (code, reason)
    assert sim.stats()[USDM].disconnects == {"fault_close": 1}


async def test_stall_withholds_frames_then_resumes(sim: Simulator,
                                                   http: aiohttp.ClientSession) -> None:
    ws = await connect(sim, http)
    [cid] = await sim.wait_connections(USDM, 1)
    await frames(ws, lambda f: len(f) >= 2)
    arrivals = [time.monotonic()]
    fid = sim.inject(Fault(kind="stall", duration_s=0.5))
    got: list[str] = []
    async with asyncio.timeout(5):  # read through the stall until x:true frames flow again
        while not any(r.fault_id == fid and "ended" in r.detail for r in sim.fault_log) \
                or closes(got) < 1:
            msg = await ws.receive()
            arrivals.append(time.monotonic())
            got.append(msg.data)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) >= 0.45  # silence for the stall's duration, though candles kept closing
    [ended] = [r for r in sim.fault_log if r.fault_id == fid and "ended" in r.detail]
    withheld = int(ended.detail.split(", ")[1].split()[0])
    assert withheld >= 3 and ended.connection == cid
    assert sim.server(USDM).connections[cid].shaper is None  # detached once the stall ended
    assert sim.server(USDM).pusher.shaping is True


async def test_stall_without_duration_never_resumes_and_can_stop_pings(
        http: aiohttp.ClientSession) -> None:
    async with Simulator(**FAST, ping_interval_s=0.05) as sim:
        ws = await connect(sim, http, autoping=False)
        sim.inject(Fault(kind="stall", params={"pings": False}))

        async def anything_but_frames_in_flight() -> aiohttp.WSMessage:
            msg = await ws.receive()
            while msg.type is aiohttp.WSMsgType.TEXT:  # frames written before the stall
                msg = await ws.receive()
            return msg

        with pytest.raises(TimeoutError):  # no ping, no frame, no close: silence
            await asyncio.wait_for(anything_but_frames_in_flight(), 0.5)
        assert not ws.closed


async def test_drop_pings_pauses_server_pings(http: aiohttp.ClientSession) -> None:
    async with Simulator(**FAST, ping_interval_s=0.05) as sim:
        ws = await connect(sim, http, autoping=False)

        async def next_ping() -> float:
            while (await ws.receive()).type is not aiohttp.WSMsgType.PING:
                pass
            return time.monotonic()

        await asyncio.wait_for(next_ping(), 2)
        fid = sim.inject(Fault(kind="drop_pings", duration_s=0.6))
        t0 = time.monotonic()
        pinged = await asyncio.wait_for(next_ping(), 3)
        assert pinged - t0 >= 0.55
        await sim.wait_fault(lambda r: r.fault_id == fid and r.detail == "pings resumed")
        assert await asyncio.wait_for(next_ping(), 2) - pinged < 0.3  # every 50 ms again


async def test_duplicate_closes(sim: Simulator, http: aiohttp.ClientSession) -> None:
    ws = await connect(sim, http)
    fid = sim.inject(Fault(kind="duplicate", count=2, params={"closed": True}))
    got = await frames(ws, lambda f: closes(f) >= 4)
    closed = [f for f in got if '"x":true' in f]
    assert closed[0] == closed[1] and closed[2] == closed[3] and closed[1] != closed[2]
    recs = [r for r in sim.fault_log if r.fault_id == fid]
    assert [r.open_time for r in recs] == [json.loads(closed[0])["k"]["t"],
                                           json.loads(closed[2])["k"]["t"]]
    assert all(r.detail == "x:true frame sent twice" for r in recs)
    more = await frames(ws, lambda f: closes(f) >= 2)  # count spent: no more duplicates
    assert len({f for f in more if '"x":true' in f}) == 2


async def test_duplicate_update_frame(sim: Simulator, http: aiohttp.ClientSession) -> None:
    ws = await connect(sim, http)
    sim.inject(Fault(kind="duplicate"))
    # a frame already on its way when the fault is injected may come first: the duplicated
    # pair is the first two equal frames in a row, wherever they are
    got = await frames(ws, lambda f: any(a == b for a, b in itertools.pairwise(f)))
    assert sum(a == b for a, b in itertools.pairwise(got)) == 1
    assert sim.fault_log[0].detail in ("update sent twice", "x:true frame sent twice")


async def test_reorder_close_arrives_after_next_candles_update(
        sim: Simulator, http: aiohttp.ClientSession) -> None:
    ws = await connect(sim, http)
    fid = sim.inject(Fault(kind="reorder", params={"closed": True}))
    got = klines(await frames(ws, lambda f: closes(f) >= 1))
    late, before = got[-1], got[-2]
    assert late["x"] is True and before["x"] is False
    assert before["t"] > late["t"]  # the next candle's first update came first
    held = await sim.wait_fault(lambda r: r.fault_id == fid)
    assert held.open_time == late["t"] and "held back" in held.detail
    rec = await sim.wait_fault(lambda r: r.fault_id == fid and "sent after" in r.detail)
    assert rec.open_time == late["t"] and "sent after the next frame" in rec.detail


async def test_reorder_swaps_adjacent_updates(sim: Simulator,
                                              http: aiohttp.ClientSession) -> None:
    ws = await connect(sim, http)
    await frames(ws, lambda f: len(f) >= 1)
    fid = sim.inject(Fault(kind="reorder", count=1))
    # within a stream, frames go in (open time, x, event time) order; one swap = one inversion
    got = [(k["t"], k["x"], json.loads(f)["E"])
           for f in await frames(ws, lambda f: len(f) >= 6) for k in [json.loads(f)["k"]]]
    assert sum(a > b for a, b in itertools.pairwise(got)) == 1
    held, rec = [r for r in sim.fault_log if r.fault_id == fid]
    assert "held back" in held.detail and "sent after" in rec.detail
    assert rec.open_time == held.open_time and rec.open_time in [t for t, _, _ in got]


async def test_malformed_frames_are_injected(sim: Simulator,
                                             http: aiohttp.ClientSession) -> None:
    ws = await connect(sim, http)
    await frames(ws, lambda f: len(f) >= 1)
    fid = sim.inject(Fault(kind="malformed", count=3))
    codec = BinanceStreamCodec(BINANCE_USDM)
    got = await frames(ws, lambda f: sum(isinstance(codec.decode(x), Malformed)
                                         for x in f) >= 3)
    assert len([r for r in sim.fault_log if r.fault_id == fid]) == 3
    after = await frames(ws, lambda f: len(f) >= 3)  # the stream goes on, well-formed
    assert not any(isinstance(codec.decode(x), Malformed) for x in after)
    assert len(got) >= 3


async def test_truncated_frame_replaces_a_real_one(sim: Simulator,
                                                   http: aiohttp.ClientSession) -> None:
    ws = await connect(sim, http)
    fid = sim.inject(Fault(kind="truncated", params={"closed": True}))
    got = await frames(ws, lambda f: any(_bad_json(x) for x in f))
    cut = got[-1]
    rec = await sim.wait_fault(lambda r: r.fault_id == fid)
    assert rec.detail.startswith("x:true frame cut to")
    assert f'"t":{rec.open_time}' in cut or len(cut) < 40  # a prefix of that candle's frame
    nxt = klines(await frames(ws, lambda f: closes(f) >= 1))
    assert all(k["t"] != rec.open_time for k in nxt if k["x"])  # that x:true is lost


def _bad_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


async def test_missing_close(sim: Simulator, http: aiohttp.ClientSession) -> None:
    ws = await connect(sim, http)
    fid = sim.inject(Fault(kind="missing_close", target=f"stream:{STREAM}"))
    rec = await sim.wait_fault(lambda r: r.fault_id == fid)
    got = klines(await frames(ws, lambda f: closes(f) >= 2))
    closed = [k["t"] for k in got if k["x"]]
    assert rec.open_time is not None and rec.open_time not in closed
    assert rec.open_time + 60_000 in closed  # the next candle closes normally
    truth = sim.closed_candles(USDM, "BTCUSDT", "1m")
    assert rec.open_time in [c.open_time for c in truth]  # the market still has it


async def test_lifetime_ends_connection_early(sim: Simulator,
                                              http: aiohttp.ClientSession) -> None:
    ws = await connect(sim, http)
    sim.inject(Fault(kind="lifetime"))
    msg = await end_of(ws)
    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.extra == "lifetime"
    assert sim.stats()[USDM].disconnects == {"lifetime": 1}


async def test_server_shutdown_notice_then_close(sim: Simulator,
                                                 http: aiohttp.ClientSession) -> None:
    ws = await http.ws_connect(f"{sim.ws_base(USDM)}/stream?streams={STREAM}")
    await sim.wait_connections(USDM, 1)
    sim.inject(Fault(kind="server_shutdown", params={"delay_s": 0.2}))
    got = await frames(ws, lambda f: "serverShutdown" in "".join(f[-1:]))
    notice = json.loads(got[-1])
    assert notice["stream"] == "!serverShutdown" and notice["data"]["e"] == "serverShutdown"
    msg = await end_of(ws)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1001)


async def test_targets_one_connection_or_one_symbol(sim: Simulator,
                                                    http: aiohttp.ClientSession) -> None:
    a = await connect(sim, http)
    b = await http.ws_connect(f"{sim.ws_base(USDM)}/ws/ethusdt@kline_1m/{STREAM}")
    ids = await sim.wait_connections(USDM, 2)
    sim.inject(Fault(kind="close", target=f"conn:{min(ids)}"))
    assert (await end_of(a)).type is aiohttp.WSMsgType.CLOSE
    fid = sim.inject(Fault(kind="duplicate", target="symbol:ETHUSDT", count=2))
    got = await frames(b, lambda f: len([r for r in sim.fault_log if r.fault_id == fid]) >= 2
                       and len(f) >= 8)
    assert all(r.stream == "ethusdt@kline_1m" for r in sim.fault_log if r.fault_id == fid)
    eth = [f for f in got if '"s":"ETHUSDT"' in f]
    assert any(x == y for x, y in itertools.pairwise(eth))
    btc = [f for f in got if '"s":"BTCUSDT"' in f]
    assert not any(x == y for x, y in itertools.pairwise(btc))  # untouched symbol
    assert sim.stats()[USDM].disconnects == {"fault_close": 1}  # only the targeted one


async def test_no_matching_connection_is_logged(sim: Simulator) -> None:
    fid = sim.inject(Fault(kind="disconnect"))
    assert [(r.fault_id, r.detail) for r in sim.fault_log] == [(fid, "no matching connection")]


async def test_scheduled_plan_fires_at_its_wall_time(http: aiohttp.ClientSession) -> None:
    plan = FaultPlan.of([Fault(kind="close", at_s=0.4, params={"code": 1011})])
    async with Simulator(**FAST, faults=plan) as sim:
        ws = await connect(sim, http)
        msg = await end_of(ws)
        assert msg.data == 1011
        [rec] = sim.fault_log
        assert 0.4 <= rec.wall_s < 1.5
        assert rec.venue_ms >= sim.clock.start_ms + int(0.4 * 300 * 1000)


async def test_a_held_frame_lost_with_its_connection_is_logged(
        sim: Simulator, http: aiohttp.ClientSession) -> None:
    """A reorder fault holding a frame when its connection drops: the frame is gone with the
    connection, and the fault log says so (the chaos test counts what each fault did)."""
    ws = await connect(sim, http)
    await frames(ws, lambda f: len(f) >= 1)
    fid = sim.inject(Fault(kind="reorder", count=1))
    await sim.wait_fault(lambda r: r.fault_id == fid and "held back" in r.detail)
    sim.inject(Fault(kind="disconnect"))
    lost = await sim.wait_fault(lambda r: r.fault_id == fid and r.detail != "" and
                                "held back" not in r.detail)
    # the next frame may have come between the hold and the disconnect: either is honest
    assert "lost: the connection closed" in lost.detail or "sent after" in lost.detail
