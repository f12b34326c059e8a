"""Third-party client proof with ccxt: ``ccxt.pro.binanceusdm`` and ``ccxt.pro.binance`` (spot),
unchanged apart from their ``urls`` (the documented way to point ccxt at a testnet or a proxy:
every REST and WebSocket base keeps its path, only scheme, host and port change), load the
markets, ``fetch_ohlcv`` over REST and ``watch_ohlcv`` over WebSocket.

ccxt opens its kline sockets as ``<ws base>/<n>`` with a connection counter, e.g.
``/market/ws/0`` on USDⓈ-M (it rewrites its ``.../ws`` base to the routed ``/market/ws``), and
subscribes with SUBSCRIBE afterwards. The exchange accepts that; the simulator used to refuse
``0`` as an invalid stream with HTTP 400, so ccxt could not connect at all.

ccxt is a test-only dependency (``[project.optional-dependencies].dev``). The spot client is
told to load spot markets only (``options.fetchMarkets.types``), since this simulator serves
no margin or coin-margined markets.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest

from candlekeeper.sim import Simulator

ccxt_pro = pytest.importorskip("ccxt.pro", reason="ccxt (dev dependency) not installed")

USDM, SPOT = "binance-usdm", "binance-spot"
CLIENTS = {  # venue -> (ccxt class, its constructor config, unified symbol)
    USDM: ("binanceusdm", {}, "BTC/USDT:USDT"),
    SPOT: ("binance", {"options": {"fetchMarkets": {"types": ["spot"]}}}, "BTC/USDT"),
}


def repoint(url: str, root: str) -> str:
    """``https://fapi.binance.com/fapi/v1`` -> ``http://127.0.0.1:P/fapi/v1``."""
    return root + urlsplit(url).path


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # a 1m candle lasts 1 s of wall time; 20 pushes per candle, x:true 50-100 ms after it
    async with Simulator(venues=(USDM, SPOT), symbols=["BTCUSDT", "ETHUSDT"], intervals=["1m"],
                         history=50, speed=60.0, update_interval_s=0.05,
                         close_delay_s=(0.05, 0.1)) as s:
        yield s


async def client(sim: Simulator, venue: str) -> Any:
    name, config, _ = CLIENTS[venue]
    ex = getattr(ccxt_pro, name)(config)
    rest = sim.rest_base(venue)
    ws_root = rest.replace("http://", "ws://")
    api: dict[str, Any] = {}
    for key, value in ex.urls["api"].items():
        if key == "ws":
            api[key] = {k: repoint(v, ws_root) for k, v in value.items() if isinstance(v, str)}
        elif isinstance(value, str):
            api[key] = repoint(value, rest)
    ex.urls["api"] = api
    return ex


@pytest.mark.parametrize("venue", [USDM, SPOT])
async def test_ccxt_fetch_and_watch_ohlcv(sim: Simulator, venue: str) -> None:
    ex = await client(sim, venue)
    symbol = CLIENTS[venue][2]
    try:
        markets = await ex.load_markets()
        assert symbol in markets and markets[symbol]["id"] == "BTCUSDT"
        rows = await ex.fetch_ohlcv(symbol, "1m", limit=10)
        truth = {c.open_time: c for c in sim.closed_candles(venue, "BTCUSDT", "1m")}
        assert len(rows) == 10
        for ts, o, h, low, c, v in rows[:-1]:  # the last row is the forming candle
            t = truth[ts]
            assert (o, h, low, c, v) == tuple(float(x) for x in (
                t.open, t.high, t.low, t.close, t.volume))
        seen: dict[int, list[Any]] = {}
        async with asyncio.timeout(20):
            while len(seen) < 4:  # the first candle may have started before; two whole ones
                for row in await ex.watch_ohlcv(symbol, "1m"):
                    seen[row[0]] = row
    finally:
        await ex.close()
    stats = sim.stats()[venue]
    assert stats.connections_total == 1 and stats.error_frames == 0
    assert stats.closed_frames_sent >= 2
    truth = {c.open_time: c for c in sim.closed_candles(venue, "BTCUSDT", "1m")}
    ts = sorted(seen)
    assert all(b - a == 60_000 for a, b in itertools.pairwise(ts))
    for t in ts[:-1]:  # closed: ccxt's last values are those of the x:true frame
        _, o, h, low, c, v = seen[t]
        final = truth[t]
        assert (Decimal(str(o)), Decimal(str(h)), Decimal(str(low)), Decimal(str(c)),
                Decimal(str(v))) == (final.open, final.high, final.low, final.close,
                                     final.volume)
