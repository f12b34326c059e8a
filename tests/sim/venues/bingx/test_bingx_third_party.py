"""Third-party client proof for the BingX personality: ccxt (``ccxt.pro.bingx``), unchanged
apart from its ``urls`` (the documented way to point ccxt at a testnet or proxy), loads the
swap markets, fetches klines over REST (``fetch_ohlcv`` -> ``/openApi/swap/v3/quote/klines``)
and receives klines over the gzip'd ``/swap-market`` WebSocket (``watch_ohlcv``: it answers
our ``Ping`` with ``Pong`` and reads ``T`` as the open time).

ccxt is a test-only dependency (``[project.optional-dependencies].dev``). Its
``load_markets`` also asks for spot symbols and coin-margined contracts; the simulator answers
those with empty lists (docs/simulator.md).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from candlekeeper.sim import Simulator

ccxt_pro = pytest.importorskip("ccxt.pro", reason="ccxt (dev dependency) not installed")

BINGX = "bingx-swap"
SYMBOL = "BTC/USDT:USDT"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # a 1m candle lasts 1 s of wall time; 10 pushes per candle
    async with Simulator(venues=[BINGX], symbols=["BTCUSDT", "ETHUSDT"], intervals=["1m"],
                         history=50, speed=60.0, update_interval_s=0.1,
                         ping_interval_s=0.5) as s:
        yield s


@pytest.fixture
async def exchange(sim: Simulator) -> AsyncIterator[Any]:
    ex = ccxt_pro.bingx()
    rest = sim.rest_base(BINGX) + "/openApi"
    api: dict[str, Any] = {k: rest for k in ex.urls["api"] if k != "ws"}
    api["ws"] = {"linear": sim.ws_base(BINGX)}
    ex.urls["api"] = api
    try:
        yield ex
    finally:
        await ex.close()


async def test_ccxt_fetch_ohlcv_over_rest(sim: Simulator, exchange: Any) -> None:
    markets = await exchange.load_markets()
    assert {"BTC/USDT:USDT", "ETH/USDT:USDT"} <= set(markets)
    assert markets[SYMBOL]["id"] == "BTC-USDT" and markets[SYMBOL]["swap"]
    rows = await exchange.fetch_ohlcv(SYMBOL, "1m", limit=10)
    truth = {c.open_time: c for c in sim.closed_candles(BINGX, "BTCUSDT", "1m")}
    assert len(rows) == 10
    # the newest two rows may be the forming candle and one that closed (or became final
    # over REST) while the answer was on its way: compare the others with the truth
    closed = [r for r in rows[:-2] if r[0] in truth]
    assert len(closed) >= 8
    for ts, o, h, low, c, v in closed:
        t = truth[ts]
        assert (Decimal(str(o)), Decimal(str(h)), Decimal(str(low)), Decimal(str(c)),
                Decimal(str(v))) == (t.open, t.high, t.low, t.close, t.volume)
    assert sim.stats()[BINGX].rest.klines == 1


async def test_ccxt_watch_ohlcv_over_websocket(sim: Simulator, exchange: Any) -> None:
    seen: dict[int, list[Any]] = {}
    async with asyncio.timeout(15):
        while len(seen) < 4:  # the first candle is partial; two whole ones after it
            for row in await exchange.watch_ohlcv(SYMBOL, "1m"):
                seen[row[0]] = row
    stats = sim.stats()[BINGX]
    assert stats.connections_total == 1 and stats.subscriptions == 1
    assert stats.pings_sent >= 1 and stats.disconnects == {}  # ccxt answered with Pong
    truth = {c.open_time: c for c in sim.closed_candles(BINGX, "BTCUSDT", "1m")}
    ts = sorted(seen)
    assert all(b - a == 60_000 for a, b in itertools.pairwise(ts))  # T = open time
    for t in ts[1:-1]:  # whole candles: ccxt's last values are those of the last push
        _, o, h, low, c, v = seen[t]
        final = truth[t]
        assert Decimal(str(o)) == final.open
        assert Decimal(str(v)) <= final.volume  # possibly stale, never ahead
        assert final.low <= Decimal(str(low)) and Decimal(str(h)) <= final.high
        assert final.low <= Decimal(str(c)) <= final.high
