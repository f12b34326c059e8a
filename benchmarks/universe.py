"""The service against a whole venue universe at real cadence (issue 12).

One command: ``python benchmarks/universe.py`` (``--symbols 500`` is the full USDⓈ-M size;
the default, 100, runs in a few minutes). It starts the simulator in this process (binance-usdm,
``--universe N``: a few busy symbols, a long quiet tail; speed 1), then ``candlekeeper run`` in
its own process with ``symbols: all`` x every USDⓈ-M interval (15), the SQLite sink and
default 500-candle buffers, and measures:

* **warm-up**: from the service's start to its last REST klines request before the steady
  window (the simulator counts the requests; the warm-up is judged over once every stream is
  live, no request came for ``--rest-quiet`` s, and none in the first 5 s of a new weight
  window, when a throttled warm-up would resume, and every stream has rows in storage;
  requests after that are reported; "not done" after ``--max-warmup``), against
  the **budget's minimum**: the least weight that fetches every stream's history (the venue's
  weight tiers, ``VenueSpec``), spent a whole fixed window at a time from the start (and, in
  brackets, at the budget's steady rate: weight / limit x window);
* **429 / 418**: answered by the simulator (the venue's view: what the IP was charged);
* **first live close**: per stream whose first candle boundary after the start falls inside
  the run, wall seconds from that boundary to the first ``CandleClosed`` the service reports
  (``/health``, polled every ``--poll`` s, so the figure is that coarse) — max and p99 —, and
  how many such streams had none;
* **steady state** (after the warm-up, every stream ``live``): msgs/s (``/health`` message
  counters), the service's CPU % of one core (``/proc``), RSS, and RSS per buffered candle
  (RSS / (streams x buffered candles): an all-in upper bound, the process's base included);
* **stop**: wall seconds from SIGINT to the process's exit (the slowest process);
* **restart** (``--restart S``): the service is started again after ``S`` s down, from the same
  storage: the klines requests it makes to resume (only the missed candles: about one request
  per stream whose interval closed while it was down) and the seconds until every stream is
  live and caught up (no klines request for ``--rest-quiet`` s);
* ``--profile FILE``: py-spy samples the service through the steady window (collapsed stacks,
  for ``benchmarks/README.md``'s "where the time goes");
* **storage spot-check** after the (last) stop: for a sample of streams, the stored rows have no
  hole, no duplicate, and equal the simulator's truth — across the restart's downtime too.

With ``--shards N`` the processes share the venue's REST budget through the host's ledger
(``rest.shared_budget``, the default; ``backfill/ledger.py``); ``--no-shared-budget`` runs them
each on its own budget, as before issue 12, to compare.

``--src DIR`` runs the service from another checkout's ``src`` (e.g. the commit before a
change), so before and after are measured with the same simulator and the same command. The
simulator's own cost is ``benchmarks/sim_universe.py``; here it shares this process, and its
CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(SRC))

from candlekeeper.core.intervals import INTERVAL_MS, align, next_open, open_times  # noqa: E402
from candlekeeper.sim import Simulator  # noqa: E402
from candlekeeper.venues.contract import VenueSpec, klines_weight  # noqa: E402
from candlekeeper.venues.registry import get_spec  # noqa: E402

VENUE = "binance-usdm"
SPEC = get_spec(VENUE)
INTERVALS = tuple(sorted(SPEC.intervals, key=INTERVAL_MS.__getitem__))
BUFFER = 500
CLOSE_MARGIN_S = 2.0  # the service's default close_margin_ms
TICKS = os.sysconf("SC_CLK_TCK")


def min_weight(spec: VenueSpec, candles: int) -> int:
    """The least REST weight that fetches ``candles`` klines, pages of any size (weight tiers
    make two small pages cheaper than one big one at some sizes)."""
    if candles <= 0:
        return 0
    best = [0] + [1 << 60] * candles
    sizes = sorted({1, spec.rest_max_limit, *(min(spec.rest_max_limit, max(1, upper - 1))
                                              for upper, _ in spec.rest_klines_weights)})
    for n in range(1, candles + 1):
        for size in sizes:
            prev = best[max(0, n - size)] + klines_weight(spec, size)
            if prev < best[n]:
                best[n] = prev
    return best[candles]


def budget_minimum_s(spec: VenueSpec, weight: int, start_s: float) -> tuple[float, float]:
    """How long the venue's headline REST window makes fetching ``weight`` take: (the least
    time, spending each fixed window's whole budget at once from ``start_s``, wall seconds
    since the epoch; the time at the budget's steady rate, weight / limit x window)."""
    window = spec.rest_limits[0]
    rate_s = weight / window.limit * window.seconds
    windows = -(-weight // window.limit)  # ceil
    if windows <= 1:
        return 0.0, rate_s
    left_in_first = window.seconds - start_s % window.seconds
    return left_in_first + (windows - 2) * window.seconds, rate_s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def mem_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


class Result(msgspec.Struct, kw_only=True):
    code: str
    symbols: int
    streams: int
    processes: int
    history: int
    run_s: float
    warmup_s: float | None
    budget_weight: int
    budget_min_s: float
    budget_rate_s: float
    rest_klines: int
    steady_klines: int  # klines requests after the warm-up (0: it really was over)
    rejected_429: int
    banned_418: int
    live: int
    steady_s: float
    msgs_per_s: float
    cpu_pct: float
    rss_mb: float
    peak_rss_mb: float
    bytes_per_candle: float
    first_close_due: int
    first_close_missing: int
    first_close_max_s: float
    first_close_p99_s: float
    checked_streams: int
    checked_rows: int
    holes: int
    duplicates: int
    wrong: int
    streams_stored: int  # streams with at least one row in storage at the end
    exit_codes: list[int | None]
    stop_s: float  # SIGINT to exit, the slowest process
    restart_down_s: float | None = None  # --restart: wall s the service was down
    restart_klines: int | None = None  # klines requests made to resume
    restart_resume_s: float | None = None  # start to the last of those requests
    shared_budget: bool = True


async def health(http: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=30)) as r:
            got: dict[str, Any] = await r.json(content_type=None)
            return got
    return None


def write_config(path: Path, sim: Simulator, db: Path, port: int, history: int,
                 shared_budget: bool = True) -> None:
    import yaml

    # ``rest:`` only when it differs from the default: a --src checkout from before it exists
    # refuses the unknown key
    rest: dict[str, Any] = {} if shared_budget else {"rest": {"shared_budget": False}}
    path.write_text(yaml.safe_dump({
        **rest,
        "feeds": [{"venue": VENUE, "symbols": "all", "intervals": list(INTERVALS),
                   "ws_url": sim.ws_base(VENUE), "rest_url": sim.rest_base(VENUE)}],
        "buffer_size": BUFFER,
        "sinks": {"sqlite": {"path": str(db)}},
        "gap_fill": {"history": history},
        "observability": {"http": {"enabled": True, "port": port}, "dashboard": False},
    }))


def stored_streams(dbs: list[Path]) -> int:
    """How many streams have at least one row stored (over every shard's database)."""
    total = 0
    for db in dbs:
        if not db.exists():
            continue
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            total += conn.execute("SELECT COUNT(*) FROM (SELECT DISTINCT venue, symbol, interval "
                                  "FROM candles)").fetchone()[0]
    return total


def spot_check(dbs: list[Path], sim: Simulator, keys: list[tuple[str, str]],
               end_ms: int) -> tuple[int, int, int, int]:
    """(rows, holes, duplicates, wrong) over ``keys``: stored rows (from whichever database
    holds the stream: one per shard) against the truth."""
    rows = holes = dups = wrong = 0
    conns = [sqlite3.connect(f"file:{db}?mode=ro", uri=True) for db in dbs if db.exists()]
    try:
        for sym, iv in keys:
            got: list[tuple[Any, ...]] = []
            for conn in conns:
                got += conn.execute("SELECT open_time, open, high, low, close, volume FROM "
                                    "candles WHERE venue=? AND symbol=? AND interval=?",
                                    (VENUE, sym, iv)).fetchall()
            if not got:
                continue
            got.sort()
            rows += len(got)
            times = [r[0] for r in got]
            dups += len(times) - len(set(times))
            span = open_times(times[0], next_open(times[-1], iv), iv)
            holes += len(set(span) - set(times))
            truth = {c.open_time: c for c in sim.closed_candles(VENUE, sym, iv, until_ms=end_ms)}
            for t, o, h, lo, c, v in got:
                tc = truth.get(t)
                if tc is None or (tc.open_str, tc.high_str, tc.low_str, tc.close_str,
                                  tc.volume_str) != (o, h, lo, c, v):
                    wrong += 1
    finally:
        for conn in conns:
            conn.close()
    return rows, holes, dups, wrong


def start_service(cfg: Path, env: dict[str, str], log_path: Path,
                  shard: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log_file:
        return subprocess.Popen([sys.executable, "-m", "candlekeeper", "run", "-c", str(cfg),
                                 "--no-dashboard", "--report", "summary", *shard],
                                env=env, stdout=log_file, stderr=subprocess.STDOUT)


def start_profiler(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy (installed with the dev extra) sampling ``pid`` for ``seconds`` into ``out``."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
         "--duration", str(int(seconds)), "--rate", "100", "--nonblocking", "--format", "raw",
         "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Instance:
    """One service process (one shard when ``--shards`` > 1), and how to start it again."""

    def __init__(self, cfg: Path, env: dict[str, str], log: Path, shard: tuple[str, ...],
                 port: int, db: Path) -> None:
        self.cfg, self.env, self.log, self.shard, self.db = cfg, env, log, shard, db
        self.proc = start_service(cfg, env, log, shard)
        self.health = f"http://127.0.0.1:{port}/health"


async def run(args: argparse.Namespace) -> Result:
    src: Path = args.src.resolve()
    async with Simulator(venues=(VENUE,), universe=args.symbols, intervals=INTERVALS, speed=1,
                         history=args.sim_history, seed=args.seed) as sim, \
            aiohttp.ClientSession() as http:
        market = sim.market(VENUE)
        now = sim.clock.time_ms()
        history = {iv: min(args.history, len(open_times(market.listing_time(sim.symbols[0], iv),
                                                         align(now, iv), iv)))
                   for iv in INTERVALS}
        weight = sum(min_weight(SPEC, n) for n in history.values()) * len(sim.symbols)
        streams = len(sim.symbols) * len(INTERVALS)
        tmp = Path(tempfile.mkdtemp(prefix="ck-universe-"))
        env = dict(os.environ, PYTHONPATH=str(src))
        print(f"# {streams} streams, {args.shards} process(es); service from {src}; logs in "
              f"{tmp}", file=sys.stderr)
        t_start = time.monotonic()
        t_wall = time.time()
        instances: list[Instance] = []
        try:
            for k in range(args.shards):
                db, port, cfg = tmp / f"candles-{k}.sqlite", free_port(), tmp / f"config-{k}.yaml"
                write_config(cfg, sim, db, port, args.history, not args.no_shared_budget)
                shard = ("--shard", f"{k}/{args.shards}") if args.shards > 1 else ()
                instances.append(Instance(cfg, env, tmp / f"service-{k}.log", shard, port, db))
            return await _observe(args, sim, http, instances, t_start, t_wall, streams,
                                  weight, src)
        finally:
            for inst in instances:
                if inst.proc.poll() is None:
                    inst.proc.send_signal(signal.SIGINT)
            for inst in instances:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    inst.proc.wait(60)
                if inst.proc.poll() is None:
                    inst.proc.kill()
                    inst.proc.wait()


async def all_rows(http: aiohttp.ClientSession, instances: list[Instance]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for inst in instances:
        got = await health(http, inst.health)
        rows += (got or {}).get("streams", [])
    return rows


def _exited(instances: list[Instance], when: str) -> None:
    for inst in instances:
        if inst.proc.poll() is not None:
            raise RuntimeError(f"a service process exited ({inst.proc.returncode}) {when}")


async def _observe(args: argparse.Namespace, sim: Simulator, http: aiohttp.ClientSession,
                   instances: list[Instance], t_start: float, t_wall: float, streams: int,
                   weight: int, src: Path) -> Result:
    clock = sim.clock
    start_ms = clock.time_ms()
    first_boundary = {iv: next_open(align(start_ms, iv), iv) for iv in INTERVALS}
    first_seen: dict[tuple[str, str], float] = {}

    def note_closes(rows: list[dict[str, Any]], at: float) -> None:
        for r in rows:
            key = (r["symbol"], r["interval"])
            if r.get("closed", 0) > 0 and key not in first_seen:
                first_seen[key] = at

    last_klines, last_change, last_change_wall = 0, t_start, t_wall
    deadline = t_start + args.max_warmup
    warm_done: float | None = None
    next_poll = 0.0
    window_s = SPEC.rest_limits[0].seconds
    while time.monotonic() < deadline:
        _exited(instances, "during the warm-up")
        klines = sim.stats()[VENUE].rest.klines
        if klines != last_klines:
            last_klines, last_change, last_change_wall = klines, time.monotonic(), time.time()
        if time.monotonic() >= next_poll:
            next_poll = time.monotonic() + args.poll
            rows = await all_rows(http, instances)
            note_closes(rows, time.monotonic())
            live = sum(1 for r in rows if r.get("state") == "live")
            # over: every stream live, no klines request for a while, and none either in the
            # first seconds of a new weight window (a throttled warm-up resumes right then)
            now_wall = time.time()
            new_window = (now_wall // window_s > last_change_wall // window_s
                          and now_wall % window_s >= 5.0)
            if (last_klines and time.monotonic() - last_change >= args.rest_quiet and new_window
                    and live == streams and len(rows) == streams
                    and await asyncio.to_thread(stored_streams, [i.db for i in instances])
                    == streams):
                warm_done = last_change
                break
        await asyncio.sleep(0.5)
    klines_at_steady = sim.stats()[VENUE].rest.klines
    warmup_s = None if warm_done is None else warm_done - t_start
    # the steady window: /health only at its ends and every 15 s (its rendering costs CPU)
    rows0 = await all_rows(http, instances)
    note_closes(rows0, time.monotonic())
    msgs0 = sum(r.get("messages", 0) for r in rows0)
    c0, t0 = sum(cpu_s(i.proc.pid) for i in instances), time.monotonic()
    end = t0 + args.steady
    spy = None if args.profile is None else \
        start_profiler(instances[0].proc.pid, args.steady, args.profile)
    next_poll = t0 + 15.0
    while time.monotonic() < end:
        _exited(instances, "in the steady window")
        if time.monotonic() >= next_poll:
            next_poll = time.monotonic() + 15.0
            note_closes(await all_rows(http, instances), time.monotonic())
        await asyncio.sleep(1.0)
    c1, t1 = sum(cpu_s(i.proc.pid) for i in instances), time.monotonic()
    if spy is not None:
        await asyncio.to_thread(spy.wait, 60)
    rss = sum(mem_mb(i.proc.pid) for i in instances)
    peak = sum(mem_mb(i.proc.pid, "VmHWM") for i in instances)
    rows1 = await all_rows(http, instances)
    seen_at = time.monotonic()
    note_closes(rows1, seen_at)
    msgs1 = sum(r.get("messages", 0) for r in rows1)
    live = sum(1 for r in rows1 if r.get("state") == "live")
    # first live closes: streams whose first boundary (plus the margin and a poll) has passed
    lat: list[float] = []
    due = missing = 0
    for sym in sim.symbols:
        for iv in INTERVALS:
            boundary = clock.wall_deadline(first_boundary[iv])
            if boundary + CLOSE_MARGIN_S + 2 * args.poll > seen_at:
                continue
            due += 1
            got_at = first_seen.get((sym, iv))
            if got_at is None:
                missing += 1
            else:
                lat.append(max(0.0, got_at - boundary))
    codes, stop_s = await stop_all(instances)
    steady_klines = sim.stats()[VENUE].rest.klines - klines_at_steady  # not the restart's
    restart: tuple[float, int, float] | None = None
    if args.restart is not None:
        restart = await restart_and_resume(args, sim, http, instances, streams)
        codes, _ = await stop_all(instances)
    end_ms = clock.time_ms()
    stats = sim.stats()[VENUE].rest
    rnd = random.Random(7)
    sample = [(s, iv) for s in sim.symbols[:3] for iv in INTERVALS[:4]]
    sample += rnd.sample([(s, iv) for s in sim.symbols for iv in INTERVALS], args.check)
    checked_rows, holes, dups, wrong = await asyncio.to_thread(
        spot_check, [i.db for i in instances], sim, sample, end_ms)
    with_rows = await asyncio.to_thread(stored_streams, [i.db for i in instances])
    minimum_s, rate_s = budget_minimum_s(SPEC, weight, t_wall)
    buffered = streams * BUFFER
    return Result(
        code=str(src), symbols=len(sim.symbols), streams=streams, processes=len(instances),
        history=args.history, run_s=round(time.monotonic() - t_start, 1), warmup_s=warmup_s,
        budget_weight=weight, budget_min_s=minimum_s, budget_rate_s=rate_s,
        rest_klines=stats.klines, steady_klines=steady_klines,
        rejected_429=stats.rejected_429, banned_418=stats.banned_418,
        live=live, steady_s=round(t1 - t0, 1), msgs_per_s=(msgs1 - msgs0) / (t1 - t0),
        cpu_pct=100 * (c1 - c0) / (t1 - t0), rss_mb=rss, peak_rss_mb=peak,
        bytes_per_candle=rss * 1024 * 1024 / buffered, first_close_due=due,
        first_close_missing=missing, first_close_max_s=max(lat) if lat else float("nan"),
        first_close_p99_s=pct(lat, 0.99), checked_streams=len(sample),
        checked_rows=checked_rows, holes=holes, duplicates=dups, wrong=wrong,
        streams_stored=with_rows, exit_codes=codes, stop_s=stop_s,
        restart_down_s=None if restart is None else restart[0],
        restart_klines=None if restart is None else restart[1],
        restart_resume_s=None if restart is None else restart[2],
        shared_budget=not args.no_shared_budget)


async def stop_all(instances: list[Instance]) -> tuple[list[int | None], float]:
    """SIGINT every process; their exit codes and the slowest one's stop time."""
    t0 = time.monotonic()
    for inst in instances:
        inst.proc.send_signal(signal.SIGINT)
    codes: list[int | None] = []
    for inst in instances:
        try:
            codes.append(await asyncio.to_thread(inst.proc.wait, 120))
        except subprocess.TimeoutExpired:
            codes.append(None)
    return codes, time.monotonic() - t0


async def restart_and_resume(args: argparse.Namespace, sim: Simulator,
                             http: aiohttp.ClientSession, instances: list[Instance],
                             streams: int) -> tuple[float, int, float]:
    """Down for ``--restart`` s, then the same processes on the same storage: (down s, klines
    requests to resume, start to the last of them)."""
    down_at = time.monotonic()
    await asyncio.sleep(args.restart)
    before = sim.stats()[VENUE].rest.klines
    t_start = time.monotonic()
    for inst in instances:
        inst.proc = start_service(inst.cfg, inst.env, inst.log.with_suffix(".restart.log"),
                                  inst.shard)
    down_s = time.monotonic() - down_at
    last_klines, last_change = before, t_start
    deadline = t_start + args.max_warmup
    while time.monotonic() < deadline:
        _exited(instances, "after the restart")
        klines = sim.stats()[VENUE].rest.klines
        if klines != last_klines:
            last_klines, last_change = klines, time.monotonic()
        rows = await all_rows(http, instances)
        live = sum(1 for r in rows if r.get("state") == "live")
        if live == streams and last_klines > before \
                and time.monotonic() - last_change >= args.rest_quiet:
            break
        await asyncio.sleep(args.poll)
    return down_s, last_klines - before, last_change - t_start


def table(rows: list[Result]) -> str:
    head = ("code", "processes", "streams", "warm-up s", "budget min s (at its rate)",
            "429/418", "live", "msgs/s",
            "CPU % core", "RSS MB", "B/buffered candle", "1st close max/p99 s (missing/due)",
            "streams stored", "spot-check rows / holes / dups / wrong", "stop s",
            "restart: down s / klines / resume s")
    out = [head, tuple("---" for _ in head)]
    for r in rows:
        warm = "not done" if r.warmup_s is None else f"{r.warmup_s:.0f}"
        if r.steady_klines:
            warm += f" (+{r.steady_klines} klines later)"
        procs = str(r.processes) if r.processes == 1 else \
            f"{r.processes} ({'shared' if r.shared_budget else 'own'} budget)"
        out.append((Path(r.code).parent.name or r.code, procs, str(r.streams), warm,
                    f"{r.budget_min_s:.0f} ({r.budget_rate_s:.0f})",
                    f"{r.rejected_429}/{r.banned_418}",
                    f"{r.live}/{r.streams}", f"{r.msgs_per_s:,.0f}", f"{r.cpu_pct:.1f}",
                    f"{r.rss_mb:.0f}", f"{r.bytes_per_candle:.0f}",
                    f"{r.first_close_max_s:.1f} / {r.first_close_p99_s:.1f} "
                    f"({r.first_close_missing}/{r.first_close_due})",
                    f"{r.streams_stored}/{r.streams}",
                    f"{r.checked_rows} / {r.holes} / {r.duplicates} / {r.wrong}",
                    f"{r.stop_s:.1f}",
                    "-" if r.restart_down_s is None else
                    f"{r.restart_down_s:.0f} / {r.restart_klines} / "
                    f"{r.restart_resume_s:.0f}"))
    return "\n".join("| " + " | ".join(x) + " |" for x in out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--symbols", type=int, default=100, help="universe size (500: USDⓈ-M)")
    ap.add_argument("--history", type=int, default=BUFFER,
                    help="warm-up candles per stream (gap_fill.history)")
    ap.add_argument("--sim-history", type=int, default=2000,
                    help="candles the simulator serves before its start")
    ap.add_argument("--steady", type=float, default=120.0, help="steady window, wall s")
    ap.add_argument("--max-warmup", type=float, default=1800.0,
                    help="give up waiting for the warm-up after this many wall s")
    ap.add_argument("--rest-quiet", type=float, default=20.0,
                    help="the warm-up is over once no klines request came for this long")
    ap.add_argument("--poll", type=float, default=3.0, help="/health poll period, s")
    ap.add_argument("--check", type=int, default=60, help="random streams spot-checked")
    ap.add_argument("--shards", type=int, default=1,
                    help="service processes on this host, each `--shard K/N` (one IP)")
    ap.add_argument("--no-shared-budget", action="store_true",
                    help="each process on its own REST budget (rest.shared_budget: false)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--src", type=Path, default=SRC,
                    help="the checkout's src/ the service runs from (default: this one)")
    ap.add_argument("--restart", type=float, default=None, metavar="S",
                    help="after the run, stop for S s and start again on the same storage: "
                         "measure the resume")
    ap.add_argument("--profile", type=Path, default=None, metavar="FILE",
                    help="py-spy the (first) service process through the steady window into "
                         "FILE (collapsed stacks; --nonblocking, 100 Hz)")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = ap.parse_args(argv)
    if not 1 <= args.symbols <= 5000 or args.steady <= 0 or args.poll <= 0 \
            or not 1 <= args.shards <= 16 \
            or not 0 <= args.history <= 100_000 or args.sim_history < args.history:
        print("error: 1 <= --symbols <= 5000, --steady > 0, --poll > 0, 1 <= --shards <= 16, "
              "0 <= --history <= 100000, --sim-history >= --history", file=sys.stderr)
        return 2
    if not (args.src / "candlekeeper").is_dir():
        print(f"error: {args.src} has no candlekeeper package", file=sys.stderr)
        return 2
    if args.check > args.symbols * len(INTERVALS):
        args.check = args.symbols * len(INTERVALS)
    result = asyncio.run(run(args))
    print(f"{VENUE} universe, speed 1, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} "
          f"cores; symbols: all x {len(INTERVALS)} intervals, buffers {BUFFER}, history "
          f"{args.history}; budget: {result.budget_weight} weight at "
          f"{SPEC.rest_limits[0].limit}/{SPEC.rest_limits[0].seconds:g} s; steady window "
          f"{result.steady_s:.0f} s")
    print(table([result]))
    if args.json is not None:
        args.json.write_bytes(msgspec.json.encode(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
