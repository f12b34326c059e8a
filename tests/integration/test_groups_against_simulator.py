"""Per-symbol interval groups, end to end: the service runs one feed per venue and stores
exactly the configured (symbol, interval) streams, equal to what the simulator closed; shards
still split by symbol; ``backfill`` and ``gaps`` act on the groups' streams."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from candlekeeper.config import Config
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.service import Service
from candlekeeper.sim import Simulator
from integration.test_service_against_simulator import (
    assert_storage_equals_truth,
    closed_total,
    run_until,
)

pytestmark = pytest.mark.integration

VENUE = "binance-usdm"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")
GROUPS = [{"symbols": ["BTCUSDT"], "intervals": ["1m", "3m"]},
          {"symbols": "all", "intervals": ["5m"]}]
EXPECTED = {StreamKey(VENUE, "BTCUSDT", "1m"), StreamKey(VENUE, "BTCUSDT", "3m"),
            *(StreamKey(VENUE, s, "5m") for s in SYMBOLS)}


def config(sim: Simulator, db: Path, shard: str | None = None) -> Config:
    return Config.from_dict({
        "feeds": [{"venue": VENUE, "groups": GROUPS, "ws_url": sim.ws_base(VENUE),
                   "rest_url": sim.rest_base(VENUE)}],
        "sinks": {"sqlite": {"path": str(db), "flush_interval_s": 0.1}},
        "observability": {"http": {"enabled": False}, "dashboard": False},
        "gap_fill": {"history": 3},
        "shard": shard,
    })


def stored_keys(db: Path) -> set[StreamKey]:
    with sqlite3.connect(db) as conn:
        return {StreamKey(*row) for row in
                conn.execute("SELECT DISTINCT venue, symbol, interval FROM candles")}


async def test_groups_store_exactly_the_configured_streams(tmp_path: Path) -> None:
    db = tmp_path / "candles.sqlite"
    async with Simulator(venues=(VENUE,), symbols=SYMBOLS, intervals=("1m", "3m", "5m"),
                         speed=300.0, seed=8) as sim:
        service = Service(config(sim, db), clock=sim.clock)
        report = await run_until(service, lambda: closed_total(service) >= 30, timeout=90)
    assert len(service.feeds) == 1  # one feed (one connection pool) for the venue
    assert {s.key for s in report.streams} == EXPECTED
    assert stored_keys(db) == EXPECTED
    await assert_storage_equals_truth(sim, db, sorted(EXPECTED))


async def test_shards_split_groups_by_symbol(tmp_path: Path) -> None:
    async with Simulator(venues=(VENUE,), symbols=SYMBOLS, intervals=("1m", "3m", "5m"),
                         speed=300.0, seed=9) as sim:
        services = [Service(config(sim, tmp_path / f"s{k}.sqlite", f"{k}/2"), clock=sim.clock)
                    for k in range(2)]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(s.run(stop)) for s in services]
        try:
            async with asyncio.timeout(90):
                while not all(s.ready.is_set() and closed_total(s) >= 4 for s in services):
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    owned = [stored_keys(tmp_path / f"s{k}.sqlite") for k in range(2)]
    assert owned[0] | owned[1] == EXPECTED
    symbols = [{k.symbol for k in keys} for keys in owned]
    assert not symbols[0] & symbols[1] and all(symbols)  # a symbol's streams stay together


async def cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "candlekeeper", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_backfill_and_gaps_follow_the_groups(tmp_path: Path) -> None:
    db = tmp_path / "candles.sqlite"
    cfg = tmp_path / "c.yaml"
    async with Simulator(venues=(VENUE,), symbols=SYMBOLS, intervals=("1m", "3m", "5m"),
                         history=300) as sim:
        groups: Any = "\n".join(
            f"      - {{symbols: {g['symbols']}, intervals: {g['intervals']}}}" for g in GROUPS)
        cfg.write_text(f"feeds:\n  - venue: {VENUE}\n    rest_url: {sim.rest_base(VENUE)}\n"
                       f"    groups:\n{groups}\nsinks:\n  sqlite:\n    path: {db}\n")
        start = sim.clock.time_ms() - 60 * 60_000
        code, out = await cli("backfill", "-c", str(cfg), "--start", str(start))
        assert code == 0, out
        assert stored_keys(db) == EXPECTED
        assert "backfill: 6 stream(s)" in out
        code, out = await cli("gaps", "-c", str(cfg))
        assert code == 0, out
        assert "gaps: 6 stream(s) audited, 0 with gaps, 0 empty" in out
        code, out = await cli("backfill", "-c", str(cfg), "--start", str(start),
                              "--symbols", "ETHUSDT")
        assert code == 0, out
        assert "backfill: 1 stream(s)" in out  # ETHUSDT is configured on 5m only
