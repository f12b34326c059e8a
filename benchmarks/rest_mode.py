"""REST mode against WebSocket mode: the client's CPU and its REST requests per stream per hour,
per venue (issue 9).

    .venv/bin/python benchmarks/rest_mode.py                   # ~3 min: every venue, both modes
    .venv/bin/python benchmarks/rest_mode.py --symbols 20 --venue-minutes 30 --venues bingx-swap

Each (venue, mode) cell runs one :class:`~candlekeeper.CandleFeed` of ``--symbols`` 1m streams
in a **child process** against a simulator in this one, so the CPU measured
(``time.process_time()`` of the child over the timed window, after its warm-up) is the
client's alone. The simulator runs faster than real time, as fast as the venue's REST budget
allows for polling every close of every stream with half the budget to spare; CPU is reported
per hour of venue time, and as the share of one core that real time would cost. Both modes of
a venue run at the same speed, so they compare like with like.

* ``REST req/stream/h``: REST requests the feed sent in the window (polls, fills, server time)
  per stream per venue hour. Polling costs one request per close (60 for a 1m stream).
* ``closes``: closed candles the feed emitted in the window, and ``wrong``: those whose values
  differ from the simulator's truth (there must be none).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import queue
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from candlekeeper import Candle, CandleFeed, StreamKey
from candlekeeper.core.clock import ScaledClock
from candlekeeper.fallback import poll_budget
from candlekeeper.gapfill import GapFillOptions
from candlekeeper.sim import Simulator
from candlekeeper.sim.profiles import DEFAULT_SYMBOLS
from candlekeeper.venues.registry import VENUES, get_spec

INTERVAL = "1m"
#: this folder: a spawned child imports this module by name from it
HERE = str(Path(__file__).resolve().parent)
MODES = ("websocket", "rest")


@dataclass(frozen=True)
class Job:
    """What a child process runs: one feed, timed after ``warmup_s`` for ``window_s`` (wall)."""

    venue: str
    mode: str
    symbols: tuple[str, ...]
    ws_url: str
    rest_url: str
    start_ms: int
    speed: float
    origin: float
    warmup_s: float
    window_s: float


def child(job: Job, out: Any) -> None:
    """Run in the child process: the feed, and its own figures."""
    out.put(asyncio.run(_child(job)))


async def _child(job: Job) -> dict[str, Any]:
    clock = ScaledClock(job.start_ms, job.speed, monotonic_origin=job.origin)
    feed = CandleFeed(job.venue, list(job.symbols), [INTERVAL], ws_url=job.ws_url,
                      rest_url=job.rest_url, clock=clock, mode=job.mode,
                      gap_fill=GapFillOptions(history=5))
    closes: list[tuple[str, int, str, str]] = []
    timing = False

    def on_closed(c: Candle) -> None:
        if timing:
            closes.append((c.symbol, c.open_time, c.close_str, c.volume_str))

    feed.on_closed(on_closed, inline=True)
    async with feed:
        await asyncio.sleep(job.warmup_s)
        rest = feed._rest
        requests0 = rest.requests if rest is not None else 0
        cpu0, t0, venue0 = time.process_time(), time.monotonic(), clock.time_ms()
        timing = True
        await asyncio.sleep(job.window_s)
        timing = False
        cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
        venue_ms = clock.time_ms() - venue0
        requests = (rest.requests if rest is not None else 0) - requests0
    return {"cpu_s": cpu, "wall_s": wall, "venue_h": venue_ms / 3_600_000,
            "requests": requests, "closes": closes}


@dataclass
class Cell:
    venue: str
    mode: str
    speed: float
    streams: int
    cpu_s: float
    venue_h: float
    requests: int
    closes: int
    wrong: int

    @property
    def cpu_per_stream_hour_ms(self) -> float:
        return 1000 * self.cpu_s / self.venue_h / self.streams

    @property
    def core_share_real_time(self) -> float:
        """CPU seconds per venue second: the share of one core at real time."""
        return self.cpu_s / (self.venue_h * 3600)

    @property
    def requests_per_stream_hour(self) -> float:
        return self.requests / self.venue_h / self.streams


def speed_for(venue: str, symbols: tuple[str, ...], cap: float) -> float:
    """As fast as polling every stream takes at most half of the venue's REST budget."""
    keys = [StreamKey(venue, s, INTERVAL) for s in symbols]
    need, allowed, _ = poll_budget(get_spec(venue), keys)
    return max(1.0, min(cap, 0.5 * allowed / need))


async def measure(venue: str, mode: str, symbols: tuple[str, ...], venue_minutes: float,
                  cap: float) -> Cell:
    speed = speed_for(venue, symbols, cap)
    window_s = venue_minutes * 60 / speed
    async with Simulator(venues=(venue,), symbols=symbols, intervals=(INTERVAL,), speed=speed,
                         seed=3, history=20,
                         min_pushes_per_candle=4 if speed > 1 else None) as sim:
        job = Job(venue, mode, symbols, sim.ws_base(venue), sim.rest_base(venue),
                  sim.clock.start_ms, speed, sim.clock.monotonic_origin,
                  warmup_s=max(3.0, 90 / speed), window_s=window_s)
        # the child imports this module by name: its folder must be on the path it inherits
        if HERE not in sys.path:
            sys.path.insert(0, HERE)
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        proc = ctx.Process(target=child, args=(job, out), daemon=True)
        proc.start()
        try:
            got = await _result(proc, out, job.warmup_s + window_s + 120)
        finally:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        truth = {(s, c.open_time): c for s in symbols
                 for c in sim.closed_candles(venue, s, INTERVAL)}
    wrong = sum(1 for s, t, close, volume in got["closes"]
                if (tc := truth.get((s, t))) is None or tc.close_str != close
                or tc.volume_str != volume)
    return Cell(venue, mode, speed, len(symbols), got["cpu_s"], got["venue_h"],
                got["requests"], len(got["closes"]), wrong)


async def _result(proc: Any, out: Any, timeout_s: float) -> dict[str, Any]:
    """The child's figures, or a clear error as soon as it died without them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            got: dict[str, Any] = out.get_nowait()
            return got
        if not proc.is_alive() and proc.exitcode is not None:
            raise RuntimeError(f"the measured feed's process exited ({proc.exitcode}) "
                               "without its figures")
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no figures from the measured feed within {timeout_s:.0f} s")


def table(cells: list[Cell]) -> str:
    head = ("venue", "mode", "streams", "speed", "CPU ms/stream/h", "core at real time",
            "REST req/stream/h", "closes", "wrong")
    rows = [head, tuple("---" for _ in head)]
    for c in cells:
        rows.append((c.venue, c.mode, str(c.streams), f"x{c.speed:.1f}",
                     f"{c.cpu_per_stream_hour_ms:.1f}", f"{100 * c.core_share_real_time:.3f} %",
                     f"{c.requests_per_stream_hour:.1f}", str(c.closes), str(c.wrong)))
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--venues", default=",".join(VENUES), help="comma-separated venue ids")
    ap.add_argument("--symbols", type=int, default=20, help="1m streams per venue")
    ap.add_argument("--venue-minutes", type=float, default=30.0,
                    help="venue minutes in each cell's timed window")
    ap.add_argument("--max-speed", type=float, default=30.0,
                    help="cap on the simulator's speed (venue seconds per wall second)")
    args = ap.parse_args(argv)
    venues = tuple(v.strip() for v in args.venues.split(",") if v.strip())
    if [v for v in venues if v not in VENUES] or not venues \
            or not 1 <= args.symbols <= len(DEFAULT_SYMBOLS) \
            or args.venue_minutes <= 0 or args.max_speed < 1:
        print(f"error: venues must be among {', '.join(VENUES)}; 1 <= --symbols <= "
              f"{len(DEFAULT_SYMBOLS)}; --venue-minutes > 0; --max-speed >= 1", file=sys.stderr)
        return 2
    symbols = tuple(DEFAULT_SYMBOLS[:args.symbols])
    print(f"REST mode vs WebSocket: {len(venues)} venue(s), {len(symbols)} x {INTERVAL} streams, "
          f"{args.venue_minutes:g} venue minutes timed per cell (one cell at a time)", flush=True)
    started = time.monotonic()
    cells = [asyncio.run(measure(v, m, symbols, args.venue_minutes, args.max_speed))
             for v in venues for m in MODES]
    print(table(cells))
    print(f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
