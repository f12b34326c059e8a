"""Third-party client proof for the Bybit personalities: ccxt (``ccxt.pro.bybit``), unchanged
apart from its ``urls`` (the documented way to point ccxt at a testnet or proxy) and, in the
WebSocket test, a shorter ``keepAlive`` (so its ``{"op":"ping"}`` heartbeat runs many times in
a few seconds), loads its markets with its default market types (spot, linear, inverse and
option, §D.11: every answer needs ``retCode`` 0), fetches klines over REST (``fetch_ohlcv``:
newest-first rows, ``category``, ``start``) and receives them over the WebSocket
(``watch_ohlcv``: ``kline.1.BTCUSDT`` on ``/v5/public/linear`` or ``/v5/public/spot`` — ccxt
tells spot from contracts by the substring ``spot`` in the URL).

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

LINEAR, SPOT = "bybit-linear", "bybit-spot"
#: venue -> (ccxt symbol, ccxt market type, WebSocket url key)
CASES = {LINEAR: ("BTC/USDT:USDT", "swap", "linear"), SPOT: ("BTC/USDT", "spot", "spot")}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # a 1m candle lasts 1 s of wall time; 10 pushes per candle
    async with Simulator(venues=[LINEAR, SPOT], symbols=["BTCUSDT", "ETHUSDT"],
                         intervals=["1m"], history=50, speed=60.0,
                         update_interval_s=0.1) as s:
        yield s


def client(sim: Simulator, venue: str, keep_alive_ms: int | None = None) -> Any:
    ex = ccxt_pro.bybit()
    rest = sim.rest_base(venue)
    api: dict[str, Any] = {k: rest for k in ex.urls["api"] if k != "ws"}
    ws = dict(ex.urls["api"]["ws"])
    ws["public"] = {CASES[venue][2]: sim.ws_base(venue)}
    api["ws"] = ws
    ex.urls["api"] = api
    if keep_alive_ms is not None:
        ex.streaming["keepAlive"] = keep_alive_ms
    return ex


@pytest.mark.parametrize("venue", [LINEAR, SPOT])
async def test_ccxt_loads_markets_and_fetches_ohlcv(sim: Simulator, venue: str) -> None:
    symbol, kind, _ = CASES[venue]
    ex = client(sim, venue)
    try:
        markets = await ex.load_markets()
        other = "ETH/USDT:USDT" if venue == LINEAR else "ETH/USDT"
        assert {symbol, other} <= set(markets)
        assert markets[symbol]["id"] == "BTCUSDT" and markets[symbol]["type"] == kind
        before = sim.stats()[venue].rest.klines
        rows = await ex.fetch_ohlcv(symbol, "1m", limit=10)
        assert sim.stats()[venue].rest.klines == before + 1
        truth = {c.open_time: c for c in sim.closed_candles(venue, "BTCUSDT", "1m")}
        assert len(rows) == 10
        assert [r[0] for r in rows] == sorted(r[0] for r in rows)  # ccxt sorted our rows
        # the newest two rows may be the forming candle and one that closed (or became final
        # over REST) while the answer was on its way: compare the others with the truth
        closed = [r for r in rows[:-2] if r[0] in truth]
        assert len(closed) == 8
        for ts, o, h, low, c, v in closed:
            t = truth[ts]
            assert (Decimal(str(o)), Decimal(str(h)), Decimal(str(low)), Decimal(str(c)),
                    Decimal(str(v))) == (t.open, t.high, t.low, t.close, t.volume)
        # ccxt's window: start=since, end=until, both candles included (§D.7)
        since = rows[2][0]
        window = await ex.fetch_ohlcv(symbol, "1m", since=since, limit=3,
                                      params={"until": since + 120_000})
        assert [r[0] for r in window] == [since, since + 60_000, since + 120_000]
        # start alone: the newest rows after it come back (ccxt#16551; ccxt filters by since)
        latest = await ex.fetch_ohlcv(symbol, "1m", since=since, limit=3)
        assert len(latest) == 3 and latest[0][0] >= since and latest[-1][0] >= rows[-1][0]
        server_time = await ex.fetch_time()
        assert abs(server_time - sim.venue_clock(venue).time_ms()) < 60_000
    finally:
        await ex.close()


@pytest.mark.parametrize("venue", [LINEAR, SPOT])
async def test_ccxt_watch_ohlcv_over_websocket(sim: Simulator, venue: str) -> None:
    symbol = CASES[venue][0]
    ex = client(sim, venue, keep_alive_ms=250)  # ccxt gives up after 2 unanswered pings
    before = sim.stats()[venue]
    seen: dict[int, list[Any]] = {}
    try:
        await ex.load_markets()
        async with asyncio.timeout(20):
            while len(seen) < 5:  # the first candle is partial; three whole ones after it
                for row in await ex.watch_ohlcv(symbol, "1m"):
                    seen[row[0]] = row
    finally:
        await ex.close()
    stats = sim.stats()[venue]
    assert stats.connections_total == before.connections_total + 1
    # a subscribe and ccxt's pings every 250 ms, each answered with a pong it recognised
    # (it would have closed the socket with RequestTimeout otherwise)
    assert stats.control_messages - before.control_messages >= 5
    assert stats.error_frames == before.error_frames
    truth = {c.open_time: c for c in sim.closed_candles(venue, "BTCUSDT", "1m")}
    ts = sorted(seen)
    assert all(b - a == 60_000 for a, b in itertools.pairwise(ts))  # start = open time
    for t in ts[1:-1]:  # whole candles: their last frame was the confirm:true one
        _, o, h, low, c, v = seen[t]
        final = truth[t]
        assert (Decimal(str(o)), Decimal(str(h)), Decimal(str(low)), Decimal(str(c)),
                Decimal(str(v))) == (final.open, final.high, final.low, final.close,
                                     final.volume)
