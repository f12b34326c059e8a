"""A healthy feed against an accelerated simulator looks healthy, and a real stall still shows.

Regression: ``make demo`` (speed 60) showed the spot 5m/15m streams as ``stalled`` for the whole
run with no fault at all: the venue pushes its forming candle every 2 s of *real* time, which is
longer than a 5m stream's stall threshold (65 s of venue time = 1.08 s of wall time at 60x).
Every registered venue is checked the way the demo runs it.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from candlekeeper import CandleFeed
from candlekeeper.core.events import StreamState, StreamStatus
from candlekeeper.sim import Simulator
from candlekeeper.sim.faults import Fault
from candlekeeper.venues.registry import VENUES

pytestmark = pytest.mark.integration

SPEED = 60.0
SYMBOLS = ("BTCUSDT", "ETHUSDT")
INTERVALS = ("1m", "5m", "15m")
HEALTHY_FOR_S = 10.0


@pytest.mark.parametrize("venue", VENUES)
async def test_no_false_stall_at_speed_60_and_a_real_stall_shows(venue: str) -> None:
    async with Simulator(venues=(venue,), symbols=SYMBOLS, intervals=INTERVALS,
                         speed=SPEED) as sim:
        seen: list[StreamStatus] = []
        async with CandleFeed(venue, SYMBOLS, INTERVALS, ws_url=sim.ws_base(venue),
                              rest_url=sim.rest_base(venue), clock=sim.clock) as feed:
            feed.on_status(seen.append)
            deadline = time.monotonic() + 20.0
            while not all(s.state is StreamState.LIVE for s in feed.stats()):
                assert time.monotonic() < deadline, "streams never all went live"
                await asyncio.sleep(0.05)
            live_at = len(seen)
            await asyncio.sleep(HEALTHY_FOR_S)
            false = [s for s in seen[live_at:]
                     if s.state in (StreamState.STALLED, StreamState.SILENT)]
            assert not false, f"healthy streams reported as {false[:3]}"
            assert all(s.state is StreamState.LIVE for s in feed.stats())
            # a real stall (the venue stops sending, the connection stays open) must show
            mark = len(seen)
            sim.inject(Fault(kind="stall", venue=venue, duration_s=30.0))
            deadline = time.monotonic() + 15.0
            while not any(s.state is StreamState.STALLED for s in seen[mark:]):
                assert time.monotonic() < deadline, "a real stall was never reported"
                await asyncio.sleep(0.05)
