"""Archive benchmark: candles/s stored by ``backfill`` from the public archive vs over REST.

    .venv/bin/python benchmarks/archive.py [--venues binance-usdm,binance-spot] [--repeat 3]

One month of 1m candles of one symbol (January 2025: 44,640 candles), into a fresh SQLite file
each run, through the real engine of ``candlekeeper backfill`` (``Backfiller`` with an
``ArchiveFiller``, or with REST only) against the simulator, which runs in a child process so
the client's figures are its own. The timed part is the fill only (the clock sync and the
sink's open are not counted).

* **archive**: one monthly zip and its checksum file downloaded, SHA-256 verified, unzipped and
  parsed in memory, checked, written in one transaction. The simulator builds a month's file
  in ~2 s; it is built once before timing (the real archive serves static files), so the
  figure is the client's.
* **REST, budget lifted**: the same month over the klines endpoint with the weight limit set
  out of reach: the raw throughput of paging, decoding and storing over a local socket.
* **REST, real budget**: what the venue's published weight limit allows at most, sustained
  (limit x headroom per window, at the weight-optimal page size; computed, not measured). On a
  real network each page also costs a round trip (~50-300 ms), so real REST is slower still.

Prints a table (best of ``--repeat`` runs) and the machine it ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp

from candlekeeper.backfill.archive import ArchiveFiller
from candlekeeper.backfill.archive_plan import monthly
from candlekeeper.backfill.fetcher import KlineFetcher
from candlekeeper.backfill.http import RestClient
from candlekeeper.backfill.options import DEFAULT_HEADROOM, RestOptions
from candlekeeper.backfill.planner import optimal_limit, plan_cost
from candlekeeper.backfill.runner import Backfiller
from candlekeeper.clock_sync import ClockSync
from candlekeeper.core.clock import SystemClock
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.core.venue_clock import VenueClock
from candlekeeper.sinks.sqlite import SQLiteSink
from candlekeeper.venues.registry import archive_codec, get_spec, history_codec

SYMBOL, INTERVAL = "BTCUSDT", "1m"
START = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp()) * 1000
END = int(datetime(2025, 2, 1, tzinfo=UTC).timestamp()) * 1000
NOW = int(datetime(2025, 2, 3, tzinfo=UTC).timestamp()) * 1000
CANDLES = (END - START) // 60_000


def serve(venues: list[str], conn: Connection) -> None:
    """The simulator's process: start, report the ports, serve until told to stop."""
    from candlekeeper.sim import Simulator

    async def main() -> None:
        history = (NOW - START) // 60_000 + 60
        async with Simulator(venues=venues, symbols=[SYMBOL], intervals=(INTERVAL,),
                             start_time_ms=NOW, history=history) as sim:
            conn.send({v: sim.rest_base(v) for v in venues})
            await asyncio.to_thread(conn.recv)

    asyncio.run(main())


async def run_once(venue: str, base: str, path: str, db: Path) -> tuple[float, int, int]:
    """One fill of the month; (seconds, candles stored, requests or files)."""
    sink = SQLiteSink(db)
    await sink.open()
    client = RestClient(history_codec(venue), base, weight_limit=10**9,
                        options=RestOptions(shared_budget=False))
    codec = archive_codec(venue)
    assert codec is not None
    archive = ArchiveFiller(codec, base) if path == "archive" else None
    try:
        clock = VenueClock(SystemClock())
        await ClockSync(clock, venue, client, event_time=lambda: None).sample()
        fetcher = KlineFetcher(client.codec, client, clock=clock)
        engine = Backfiller(sink, {venue: fetcher},
                            archives={venue: archive} if archive is not None else None)
        t0 = time.perf_counter()
        result = await engine.fill(StreamKey(venue, SYMBOL, INTERVAL), START, END)
        elapsed = time.perf_counter() - t0
        assert result.error is None, result.error
        stored = len(sink.read(StreamKey(venue, SYMBOL, INTERVAL)))
        assert stored == CANDLES, (stored, CANDLES)
        work = archive.stats.files if archive is not None else fetcher.stats.requests
        return elapsed, stored, work
    finally:
        await client.close()
        if archive is not None:
            await archive.close()
        await sink.close()


async def warm(venue: str, base: str) -> None:
    """Have the simulator build the month's file once (the real archive serves static
    files)."""
    codec = archive_codec(venue)
    assert codec is not None
    url = base + codec.file_path(SYMBOL, INTERVAL, monthly(START))
    async with aiohttp.ClientSession() as session, session.get(url) as r:
        await r.read()


def budget_ceiling(venue: str) -> tuple[float, int]:
    """(candles/s the venue's weight budget allows sustained, weight of the month)."""
    spec = get_spec(venue)
    limit = optimal_limit(spec, CANDLES)
    weight, _ = plan_cost(spec, CANDLES, limit)
    window = spec.rest_limits[0]
    per_s = window.limit * DEFAULT_HEADROOM / window.seconds
    return CANDLES / weight * per_s, weight


async def bench(bases: dict[str, str], repeat: int, tmp: Path) -> list[list[str]]:
    rows: list[list[str]] = []
    for venue, base in bases.items():
        await warm(venue, base)
        for path in ("archive", "rest"):
            best: tuple[float, int, int] | None = None
            for i in range(repeat):
                db = tmp / f"{venue}-{path}-{i}.sqlite"
                got = await run_once(venue, base, path, db)
                best = got if best is None or got[0] < best[0] else best
            assert best is not None
            secs, stored, work = best
            label = "archive (1 monthly file)" if path == "archive" else "REST, budget lifted"
            unit = "files" if path == "archive" else "requests"
            rows.append([venue, label, f"{stored:,}", f"{secs:.2f}", f"{stored / secs:,.0f}",
                         f"{work} {unit}"])
        ceiling, weight = budget_ceiling(venue)
        spec = get_spec(venue)
        w = spec.rest_limits[0]
        rows.append([venue, "REST, real budget (computed)", f"{CANDLES:,}",
                     f">= {CANDLES / ceiling:.1f}", f"<= {ceiling:,.0f}",
                     f"weight {weight} of {w.limit}/{w.seconds:.0f}s"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--venues", default="binance-usdm,binance-spot")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    venues = [v.strip() for v in args.venues.split(",") if v.strip()]
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=serve, args=(venues, child), daemon=True)
    proc.start()
    try:
        bases: dict[str, str] = parent.recv()
        with tempfile.TemporaryDirectory() as tmp:
            rows = asyncio.run(bench(bases, args.repeat, Path(tmp)))
    finally:
        parent.send("stop")
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    head = ["venue", "path", "candles", "seconds", "candles/s", "work"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print(f"one month of {INTERVAL} {SYMBOL} (2025-01, {CANDLES:,} candles) into SQLite; "
          f"best of {args.repeat}; {datetime.now(UTC):%Y-%m-%d}, {platform.python_version()}, "
          f"{os.cpu_count()} CPUs")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
