"""Scale-out: three sharded service instances against one simulator split ``symbols: all``
between them — together they store every symbol's candles, and no symbol twice."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from candlekeeper.config import Config
from candlekeeper.service import Service
from candlekeeper.sim import Simulator

pytestmark = pytest.mark.integration

VENUE = "binance-usdm"


async def test_three_shards_cover_all_symbols_disjointly(tmp_path: Path) -> None:
    async with Simulator(venues=(VENUE,), intervals=("1m",), speed=300.0, seed=4) as sim:
        universe = sorted(sim.symbols)
        services = []
        for k in range(3):
            cfg = Config.from_dict({
                "feeds": [{"venue": VENUE, "symbols": "all", "intervals": ["1m"],
                           "ws_url": sim.ws_base(VENUE), "rest_url": sim.rest_base(VENUE)}],
                "sinks": {"sqlite": {"path": str(tmp_path / f"shard{k}.sqlite"),
                                     "flush_interval_s": 0.1}},
                "observability": {"http": {"enabled": False}, "dashboard": False},
                "gap_fill": {"history": 5},
                "shard": f"{k}/3",
            })
            services.append(Service(cfg, clock=sim.clock))
        stop = asyncio.Event()
        tasks = [asyncio.create_task(s.run(stop)) for s in services]
        async with asyncio.timeout(60):
            for s in services:
                await s.ready.wait()
            while not all(st.closed >= 3 for s in services for f in s.feeds
                          for st in f.stats()):
                await asyncio.sleep(0.1)
        snapshots = [s.snapshot() for s in services]
        stop.set()
        await asyncio.gather(*tasks)
    owned = []
    for k in range(3):
        with sqlite3.connect(tmp_path / f"shard{k}.sqlite") as conn:
            owned.append({r[0] for r in conn.execute("SELECT DISTINCT symbol FROM candles")})
    assert set().union(*owned) == set(universe)
    assert sum(len(o) for o in owned) == len(universe)  # disjoint
    assert all(owned)
    assert [snap.shard for snap in snapshots] == ["0/3", "1/3", "2/3"]
