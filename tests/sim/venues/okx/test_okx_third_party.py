"""Third-party client proof for the OKX personalities: ccxt (``ccxt.pro.okx``), unchanged apart
from its ``urls`` (the documented way to point ccxt at a testnet or proxy) and a shorter
keep-alive, loads the markets (five ``public/instruments`` calls, every body ``"code":"0"``),
fetches candles over REST (``fetch_ohlcv`` -> ``market/candles``, newest first, the forming one
first) and receives candles over ``/ws/v5/business`` (``watch_ohlcv``: one ack per arg, rows of
nine strings; its text ``ping`` answered ``pong``, or ccxt raises ``RequestTimeout``).
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

CASES = {"okx-swap": ("BTC/USDT:USDT", "BTC-USDT-SWAP"), "okx-spot": ("BTC/USDT", "BTC-USDT")}


@pytest.fixture(params=sorted(CASES))
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    # a 1m candle lasts 1 s of wall time; 10 pushes per candle
    async with Simulator(venues=[request.param], symbols=["BTCUSDT", "ETHUSDT"],
                         intervals=["1m"], history=50, speed=60.0,
                         update_interval_s=0.1) as s:
        yield s


@pytest.fixture
async def exchange(sim: Simulator) -> AsyncIterator[Any]:
    venue = sim.venues[0]
    ex = ccxt_pro.okx()
    ex.urls["api"] = {"rest": sim.rest_base(venue),
                      "ws": sim.ws_base(venue).removesuffix("/business")}
    ex.streaming["keepAlive"] = 300  # ms: ccxt pings this often, wants a pong within twice it
    try:
        yield ex
    finally:
        await ex.close()


async def test_ccxt_loads_markets_and_fetches_ohlcv(sim: Simulator, exchange: Any) -> None:
    venue = sim.venues[0]
    symbol, inst = CASES[venue]
    markets = await exchange.load_markets()
    assert markets[symbol]["id"] == inst
    assert markets[symbol]["swap" if venue == "okx-swap" else "spot"]
    assert sim.stats()[venue].rest.requests == 5  # SPOT, FUTURES, SWAP, OPTION x2
    rows = await exchange.fetch_ohlcv(symbol, "1m", limit=10)
    truth = {c.open_time: c for c in sim.closed_candles(venue, "BTCUSDT", "1m")}
    assert len(rows) == 10
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    # the newest two rows may be the forming candle and one that closed (or became final
    # over REST) while the answer was on its way: compare the others with the truth
    closed = [r for r in rows[:-2] if r[0] in truth]
    assert len(closed) >= 8
    for ts, o, h, low, c, v in closed:
        t = truth[ts]
        assert (Decimal(str(o)), Decimal(str(h)), Decimal(str(low)), Decimal(str(c))) == (
            t.open, t.high, t.low, t.close)
        # ccxt reads volCcy (base) on contracts and vol (base) on spot
        assert Decimal(str(v)) == t.volume
    # far back, ccxt switches to history-candles
    old = min(truth) + 60_000
    back = await exchange.fetch_ohlcv(symbol, "1m", since=old, limit=5)
    assert [r[0] for r in back] == [old + i * 60_000 for i in range(5)]
    assert sim.stats()[venue].rest.klines == 2


async def test_ccxt_watch_ohlcv_over_the_business_path(sim: Simulator,
                                                      exchange: Any) -> None:
    venue = sim.venues[0]
    symbol, _ = CASES[venue]
    seen: dict[int, list[Any]] = {}
    async with asyncio.timeout(15):
        while len(seen) < 4:  # the first candle is partial; two whole ones after it
            for row in await exchange.watch_ohlcv(symbol, "1m"):
                seen[row[0]] = row
    stats = sim.stats()[venue]
    assert stats.connections_total == 1 and stats.subscriptions == 1
    assert stats.control_messages >= 3  # the subscribe and ccxt's pings (answered: no timeout)
    assert stats.disconnects == {}
    truth = {c.open_time: c for c in sim.closed_candles(venue, "BTCUSDT", "1m")}
    ts = sorted(seen)
    assert all(b - a == 60_000 for a, b in itertools.pairwise(ts))  # ts = open time
    for t in ts[1:-1]:  # whole candles: the confirm push carries the final values
        _, o, h, low, c, v = seen[t]
        final = truth[t]
        assert (Decimal(str(o)), Decimal(str(h)), Decimal(str(low)), Decimal(str(c)),
                Decimal(str(v))) == (final.open, final.high, final.low, final.close,
                                     final.volume)
