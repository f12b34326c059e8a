"""An unknown coin gets no error frame from Hyperliquid: the server drops the socket, ending
every stream on it (§F.2). Over real sockets against the simulator: a feed that bypasses the
``meta`` check (a library user naming a coin the venue lacks) isolates the coin — REJECTED,
one warning — and its other streams go live and close candles equal to the truth; the
service's own start-up check refuses the coin up front with one clear line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from candlekeeper import Candle, CandleFeed, StreamState
from candlekeeper.config import Config
from candlekeeper.service import Service
from candlekeeper.sim import Simulator

VENUE = "hyperliquid-perp"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


async def test_a_feed_isolates_the_coin_that_makes_the_venue_drop_the_socket(
        caplog: pytest.LogCaptureFixture) -> None:
    async with Simulator(venues=(VENUE,), symbols=SYMBOLS, intervals=("1m",), speed=60.0,
                         seed=2, update_interval_s=0.05) as sim:
        feed = CandleFeed(VENUE, [*SYMBOLS, "NOSUCH"], ["1m"], ws_url=sim.ws_base(VENUE),
                          rest_url=sim.rest_base(VENUE), clock=sim.clock)
        closed: list[Candle] = []
        feed.on_closed(closed.append)
        with caplog.at_level(logging.WARNING, "candlekeeper.transport"):
            async with feed:
                async with asyncio.timeout(60):
                    while len({c.symbol for c in closed}) < 3 or any(
                            s.state not in (StreamState.LIVE, StreamState.REJECTED)
                            for s in feed.stats()):
                        await asyncio.sleep(0.05)
                states = {s.key.symbol: s.state for s in feed.stats()}
        assert states == {"BTCUSDT": StreamState.LIVE, "ETHUSDT": StreamState.LIVE,
                          "SOLUSDT": StreamState.LIVE, "NOSUCH": StreamState.REJECTED}
        assert sum(c.rejected for c in feed.connection_stats()) == 1
        assert sim.stats()[VENUE].disconnects.get("dropped_by_venue", 0) >= 2
        rejected = [r for r in caplog.records if "drops the connection" in r.getMessage()]
        assert len(rejected) == 1 and "candle:NOSUCH:1m" in rejected[0].getMessage()
        for c in closed:
            truth = {t.open_time: t for t in sim.closed_candles(VENUE, c.symbol, "1m")}
            assert c.same_values(truth[c.open_time], trade_ids=False)


async def test_the_service_refuses_an_unknown_coin_at_start(tmp_path: Path) -> None:
    async with Simulator(venues=(VENUE,), symbols=SYMBOLS[:2], intervals=("1m",), speed=60.0,
                         seed=3, update_interval_s=0.05) as sim:
        cfg = Config.from_dict({
            "feeds": [{"venue": VENUE, "symbols": ["BTCUSDT", "ETHUSDT/USDC:USDC", "NOSUCH"],
                       "intervals": ["1m"], "ws_url": sim.ws_base(VENUE),
                       "rest_url": sim.rest_base(VENUE)}],
            "sinks": {"sqlite": {"path": str(tmp_path / "c.sqlite"), "flush_interval_s": 0.1}},
            "observability": {"http": {"enabled": False}, "dashboard": False},
            "gap_fill": {"history": 5},
        })
        service = Service(cfg, clock=sim.clock)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        try:
            async with asyncio.timeout(30):
                await service.ready.wait()
                while not all(s.closed > 0 for f in service.feeds for s in f.stats()):
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            report = await asyncio.wait_for(task, 30)
    assert report.unknown_symbols == [f"{VENUE}:NOSUCH"]
    # ``ETHUSDT/USDC:USDC`` is the coin ``ETHUSDT`` (the simulated coins are named so)
    assert sorted(s.key.symbol for s in report.streams) == ["BTCUSDT", "ETHUSDT"]
    assert sim.stats()[VENUE].disconnects.get("dropped_by_venue", 0) == 0
