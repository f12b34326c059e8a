"""Third-party client proof for the Hyperliquid personality: ccxt (``ccxt.pro.hyperliquid``),
unchanged apart from its ``urls`` (the documented way to point ccxt at a testnet or proxy) and,
in the WebSocket test, a shorter ``keepAlive`` (so its ``{"method":"ping"}`` heartbeat runs
several times in a few seconds), loads its markets with its default market types (spot, swap,
hip3: ``spotMeta``, ``spotMetaAndAssetCtxs``, ``metaAndAssetCtxs``, ``perpDexs``, §F.11),
fetches candles over REST (``candleSnapshot``), reads the server time (``exchangeStatus``) and
receives candles over the WebSocket (``watch_ohlcv``: a ``candle`` subscription on ``/ws``,
``data`` ONE object).

ccxt is a test-only dependency (``[project.optional-dependencies].dev``).
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

VENUE = "hyperliquid-perp"
#: the simulated coins are the simulator's symbols; ccxt names them COIN/USDC:USDC
SYMBOL = "BTCUSDT/USDC:USDC"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # a 1m candle lasts 1 s of wall time; 10 pushes per candle
    async with Simulator(venues=[VENUE], symbols=["BTCUSDT", "ETHUSDT"], intervals=["1m"],
                         history=50, speed=60.0, update_interval_s=0.1) as s:
        yield s


def client(sim: Simulator, keep_alive_ms: int | None = None) -> Any:
    ex = ccxt_pro.hyperliquid()
    rest = sim.rest_base(VENUE)
    ex.urls["api"] = {"public": rest, "private": rest, "ws": {"public": sim.ws_base(VENUE)}}
    if keep_alive_ms is not None:
        ex.streaming["keepAlive"] = keep_alive_ms
    return ex


def _values(row: list[Any]) -> tuple[Decimal, ...]:
    return tuple(Decimal(str(x)) for x in row[1:6])


async def test_ccxt_loads_markets_fetches_ohlcv_and_time(sim: Simulator) -> None:
    ex = client(sim)
    try:
        markets = await ex.load_markets()
        assert {SYMBOL, "ETHUSDT/USDC:USDC"} <= set(markets)
        market = markets[SYMBOL]
        assert market["type"] == "swap" and market["baseName"] == "BTCUSDT"
        before = sim.stats()[VENUE].rest.klines
        rows = await ex.fetch_ohlcv(SYMBOL, "1m", limit=10)
        assert sim.stats()[VENUE].rest.klines == before + 1
        truth = {c.open_time: c for c in sim.closed_candles(VENUE, "BTCUSDT", "1m")}
        assert len(rows) >= 10
        assert [r[0] for r in rows] == sorted(r[0] for r in rows)
        # the newest two rows may be the forming candle and one that closed (or became final
        # over REST) while the answer was on its way: compare the others with the truth
        closed = [r for r in rows[:-2] if r[0] in truth]
        assert len(closed) >= 8
        for r in closed:
            t = truth[r[0]]
            assert _values(r) == (t.open, t.high, t.low, t.close, t.volume)
        server_time = await ex.fetch_time()
        assert abs(server_time - sim.venue_clock(VENUE).time_ms()) < 60_000
    finally:
        await ex.close()


async def test_ccxt_watch_ohlcv_over_websocket(sim: Simulator) -> None:
    ex = client(sim, keep_alive_ms=250)  # ccxt gives up after 2 unanswered pings
    before = sim.stats()[VENUE]
    seen: dict[int, list[Any]] = {}
    try:
        await ex.load_markets()
        async with asyncio.timeout(20):
            while len(seen) < 5:  # the first candle is partial; three whole ones after it
                for row in await ex.watch_ohlcv(SYMBOL, "1m"):
                    seen[row[0]] = row
    finally:
        await ex.close()
    stats = sim.stats()[VENUE]
    assert stats.connections_total == before.connections_total + 1
    # a subscribe and ccxt's pings every 250 ms, each answered with a pong it recognised
    # (it would have closed the socket with RequestTimeout otherwise)
    assert stats.control_messages - before.control_messages >= 5
    assert stats.error_frames == before.error_frames
    ts = sorted(seen)
    assert all(b - a == 60_000 for a, b in itertools.pairwise(ts))  # t = open time
    truth = {c.open_time: c for c in sim.closed_candles(VENUE, "BTCUSDT", "1m")}
    for t in ts[1:-1]:
        # whole candles: no closed flag, and the last push may predate the close (stale), so
        # each is a real state of the candle: its open, and a high/low within the truth's
        _, o, h, low, _c, _v = seen[t]
        final = truth[t]
        assert Decimal(str(o)) == final.open
        assert final.low <= Decimal(str(low)) and Decimal(str(h)) <= final.high
