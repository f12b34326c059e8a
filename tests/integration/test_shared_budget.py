"""Three ``candlekeeper run --shard K/3`` processes on one host warm up against one simulated
venue: with the shared REST budget (the default) the venue refuses nothing; with it off, the
same start gets 429s, because each process believes it has the whole budget (issue 12).

The venue is one whose answers say nothing about the weight used (no header), so nothing but
the shared ledger can keep the processes in line; its REST windows are 2 s long, so a warm-up
that needs several windows takes seconds, not minutes."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest
import yaml

from candlekeeper.core.intervals import INTERVAL_MS
from candlekeeper.core.shard import Shard
from candlekeeper.sim import Simulator

pytestmark = pytest.mark.integration

VENUE = "okx-swap"
INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h")
HISTORY = 100  # one page per stream


def write_config(path: Path, sim: Simulator, db: Path, shared: bool) -> None:
    path.write_text(yaml.safe_dump({
        "feeds": [{"venue": VENUE, "symbols": "all", "intervals": list(INTERVALS),
                   "ws_url": sim.ws_base(VENUE), "rest_url": sim.rest_base(VENUE)}],
        "sinks": {"sqlite": {"path": str(db), "flush_interval_s": 0.1}},
        "gap_fill": {"history": HISTORY},
        "rest": {"shared_budget": shared},
        "observability": {"http": {"enabled": False}, "dashboard": False},
    }))


def stored(db: Path) -> dict[tuple[str, str], list[tuple[int, str, str]]]:
    """Every stored stream's (open time, close, volume), oldest first."""
    if not db.exists():
        return {}
    out: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            rows = conn.execute("SELECT symbol, interval, open_time, close, volume FROM candles "
                                "ORDER BY symbol, interval, open_time").fetchall()
        except sqlite3.OperationalError:  # the table is not created yet
            return {}
    for symbol, interval, t, close, volume in rows:
        out.setdefault((symbol, interval), []).append((t, close, volume))
    return out


def warmed(dbs: list[Path], owned: list[set[tuple[str, str]]]) -> bool:
    for db, streams in zip(dbs, owned, strict=True):
        got = stored(db)
        if any(len(got.get(s, ())) < HISTORY for s in streams):
            return False
    return True


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-process"])
async def test_three_shards_warm_up_within_one_budget(tmp_path: Path, shared: bool) -> None:
    async with Simulator(venues=(VENUE,), intervals=INTERVALS, seed=12) as sim:
        symbols = sorted(sim.symbols)
        owned = [{(s, i) for s in Shard(k, 3).select(symbols) for i in INTERVALS}
                 for k in range(3)]
        dbs = [tmp_path / f"shard{k}.sqlite" for k in range(3)]
        procs = []
        logs = []
        for k in range(3):
            cfg = tmp_path / f"shard{k}.yaml"
            write_config(cfg, sim, dbs[k], shared)
            log = (tmp_path / f"shard{k}.log").open("wb")
            logs.append(log)
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "candlekeeper", "run", "-c", str(cfg),
                "--shard", f"{k}/3", stdout=log, stderr=log))
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(180):
                while not warmed(dbs, owned):
                    assert all(p.returncode is None for p in procs), "a shard exited early"
                    await asyncio.sleep(0.2)
            warmup_s = time.monotonic() - t0
            for p in procs:
                p.send_signal(signal.SIGTERM)
            codes = [await asyncio.wait_for(p.wait(), 60) for p in procs]
        finally:
            for p in procs:
                if p.returncode is None:
                    p.kill()
                    await p.wait()
            for log in logs:
                log.close()
        rest = sim.stats()[VENUE].rest
        # the truth, read once every shard has stopped (nothing closes after this)
        truth = {(s, i): {c.open_time: (c.close_str, c.volume_str)
                          for c in sim.closed_candles(VENUE, s, i)}
                 for s in symbols for i in INTERVALS}
    text = "".join((tmp_path / f"shard{k}.log").read_text(errors="replace") for k in range(3))
    assert codes == [0, 0, 0], text[-3000:]
    assert "Traceback" not in text
    # every shard stored its own streams, whole and equal to the venue's candles
    for db, streams in zip(dbs, owned, strict=True):
        got = stored(db)
        assert set(got) == streams
        for (symbol, interval), rows in got.items():
            times = [t for t, _, _ in rows]
            assert len(times) >= HISTORY
            step = INTERVAL_MS[interval]
            assert all(b - a == step for a, b in itertools.pairwise(times))
            assert all(truth[symbol, interval].get(t) == (c, v) for t, c, v in rows)
    print(f"shared={shared}: warm-up of {sum(map(len, owned))} streams in {warmup_s:.1f}s, "
          f"{rest.requests} REST requests, {rest.rejected_429} x 429")
    if shared:
        assert rest.rejected_429 == 0 and rest.banned_418 == 0
        assert "rate limited" not in text
    else:  # the same start without the ledger: three times the budget, and the venue says so
        assert rest.rejected_429 > 0
