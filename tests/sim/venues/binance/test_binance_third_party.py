"""Third-party client proof: python-binance, unchanged apart from its base-URL attributes,
receives klines from the simulator over WebSocket and REST for both USDⓈ-M and spot.

python-binance is a test-only dependency (``[project.optional-dependencies].dev``). The only
things touched are the documented URL attributes a user would override for a testnet or a
proxy: ``AsyncClient.API_URL`` / ``FUTURES_URL`` and ``BinanceSocketManager.STREAM_URL`` /
``FSTREAM_URL``. Its futures multiplex socket uses the routed ``/market/stream`` path (the
post-2026-04-23 layout, protocols.md §A.1), its spot kline socket uses ``/ws/<stream>``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, cast

import pytest

from candlekeeper.sim import Simulator

binance = pytest.importorskip("binance", reason="python-binance (dev dependency) not installed")

USDM, SPOT = "binance-usdm", "binance-spot"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(venues=(USDM, SPOT), symbols=["BTCUSDT", "ETHUSDT"],
                         intervals=["1m", "5m"], history=50,
                         speed=30, update_interval_s=0.05, close_delay_s=(0.05, 0.1)) as s:
        yield s


async def make_client(sim: Simulator) -> Any:
    client = binance.AsyncClient()  # no network in the constructor
    client.API_URL = sim.rest_base(SPOT) + "/api"
    client.FUTURES_URL = sim.rest_base(USDM) + "/fapi"
    return client


async def test_python_binance_rest_klines_both_venues(sim: Simulator) -> None:
    client = await make_client(sim)
    try:
        assert await client.ping() == {}
        server_time = (await client.get_server_time())["serverTime"]
        assert abs(server_time - sim.clock.time_ms()) < 5_000
        # compared by open time, the truth read after the answer: a candle may close between
        # the two under load (a fixed slice of the truth was one candle off then)
        spot = await client.get_klines(symbol="BTCUSDT", interval="1m", limit=10)
        truth = {c.open_time: c for c in sim.closed_candles(SPOT, "BTCUSDT", "1m")}
        assert len(spot) == 10
        closed = [row for row in spot if row[0] in truth]
        assert len(closed) >= 9 and [r[0] for r in closed] == [r[0] for r in spot[:len(closed)]]
        for row in closed:
            c = truth[row[0]]
            assert Decimal(row[4]) == c.close
            assert row[1] == str(c.open) and len(row[1].split(".")[1]) == 8
        fut = await client.futures_klines(symbol="ETHUSDT", interval="5m", limit=20)
        ftruth = {c.open_time: c for c in sim.closed_candles(USDM, "ETHUSDT", "5m")}
        fclosed = [row for row in fut if row[0] in ftruth]
        assert len(fclosed) >= 19
        assert [r[5] for r in fclosed] == [str(ftruth[r[0]].volume) for r in fclosed]
        info = await client.futures_exchange_info()
        assert {s["symbol"] for s in info["symbols"]} == {"BTCUSDT", "ETHUSDT"}
        assert sim.stats()[USDM].rest.klines == 1 and sim.stats()[SPOT].rest.klines == 1
    finally:
        await client.close_connection()


async def _closed_kline(socket: Any, unwrap: bool) -> dict[str, Any]:
    """Read python-binance's messages until a closed kline arrives; return its event."""
    async with socket as s:
        while True:
            msg = await asyncio.wait_for(s.recv(), 10)
            event = msg["data"] if unwrap else msg
            assert event["e"] == "kline", msg
            if event["k"]["x"]:
                return cast(dict[str, Any], event)


async def test_python_binance_websockets_both_venues(sim: Simulator) -> None:
    client = await make_client(sim)
    try:
        bm = binance.BinanceSocketManager(client)
        bm.STREAM_URL = sim.rest_base(SPOT).replace("http", "ws") + "/"
        bm.FSTREAM_URL = sim.rest_base(USDM).replace("http", "ws") + "/"
        spot_event, fut_event = await asyncio.gather(
            _closed_kline(bm.kline_socket("BTCUSDT", interval="1m"), unwrap=False),
            _closed_kline(bm.futures_multiplex_socket(["ethusdt@kline_1m"]), unwrap=True))
        for venue, event, symbol in ((SPOT, spot_event, "BTCUSDT"), (USDM, fut_event,
                                                                      "ETHUSDT")):
            k = event["k"]
            assert event["s"] == symbol == k["s"] and k["i"] == "1m"
            truth = {c.open_time: c for c in sim.closed_candles(venue, symbol, "1m")}
            c = truth[k["t"]]
            assert (k["o"], k["h"], k["l"], k["c"], k["v"], k["n"], k["L"]) == (
                str(c.open), str(c.high), str(c.low), str(c.close), str(c.volume), c.trades,
                c.last_trade_id)
        assert sim.stats()[USDM].connections_total == 1
        assert sim.stats()[SPOT].connections_total == 1
    finally:
        await client.close_connection()
