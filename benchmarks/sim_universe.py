"""The simulator serving a whole venue universe at real cadence (issue 12, simulator half).

One command: ``python benchmarks/sim_universe.py``. For each row it starts ``candlekeeper
simulate`` (binance-usdm, speed 1) in its own process, subscribes a plain WebSocket client to
every stream (``symbols x intervals``, 1024 streams per connection, subscriptions paced under
the venue's 10 messages/s), asks REST for kline pages at the venue's weight budget (limit 1000,
weight 5: 8 requests/s against 2400 weight/min) and then measures over a steady window:

* frames/s received (and closing frames), counted by the client;
* the simulator's CPU (user + system from ``/proc/<pid>/stat``) as % of one core, and its RSS;
* REST kline latency p50/p99 while the simulator is pushing.

Rows: ``after`` runs this checkout with ``--universe N`` (real-looking activity); ``flat``
runs this checkout with the same N symbols but the shared profile table (every symbol busy, the
load of the issue's measurement), so the cost of the pusher alone shows; ``--baseline-src DIR``
adds a ``before`` row running another checkout's ``src`` (e.g. a worktree of the commit before
this work) with that flat load. The simulator's process is measured alone; this process
(the client) is not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import msgspec

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(SRC))

from candlekeeper.core.intervals import INTERVAL_MS  # noqa: E402
from candlekeeper.sim.universe import universe_symbols  # noqa: E402
from candlekeeper.venues.binance.endpoints import BINANCE_USDM as USDM  # noqa: E402
from candlekeeper.venues.contract import klines_weight  # noqa: E402

VENUE = "binance-usdm"
INTERVALS = tuple(sorted(USDM.intervals, key=INTERVAL_MS.__getitem__))
PER_CONN = 1000  # streams per connection (the venue allows 1024)
PER_MSG = 100  # streams per SUBSCRIBE message
REST_LIMIT = 1000
TICKS = os.sysconf("SC_CLK_TCK")


class Row(msgspec.Struct):
    label: str
    symbols: int
    streams: int
    seconds: float
    frames_per_s: float
    closes_per_s: float
    cpu_pct: float
    rss_mb: float
    rest_n: int
    rest_p50_ms: float
    rest_p99_ms: float
    rest_errors: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_sim(src: Path, port: int, symbols: tuple[str, ...],
              universe: bool) -> subprocess.Popen[bytes]:
    prof = os.environ.get("SIM_PROFILE")  # a path: profile the simulator (cProfile) into it
    args = [sys.executable, *(["-m", "cProfile", "-o", prof] if prof else []),
            "-m", "candlekeeper", "simulate", "--venues", VENUE,
            "--port", f"{VENUE}={port}", "--intervals", ",".join(INTERVALS), "--history", "5000"]
    args += ["--universe", str(len(symbols))] if universe else ["--symbols", ",".join(symbols)]
    env = dict(os.environ, PYTHONPATH=str(src))
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


async def wait_up(rest: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(rest + "/fapi/v1/time") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise TimeoutError("the simulator did not come up")


class Counter:
    def __init__(self) -> None:
        self.frames = 0
        self.closes = 0
        self.acks = 0


async def ws_client(url: str, streams: list[str], counter: Counter, stop: asyncio.Event) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
        async def subscribe() -> None:
            for i in range(0, len(streams), PER_MSG):
                await ws.send_str(msgspec.json.encode({"method": "SUBSCRIBE", "id": i + 1,
                                                       "params": streams[i:i + PER_MSG]}).decode())
                await asyncio.sleep(0.25)  # well under the venue's 10 messages/s

        sub = asyncio.get_running_loop().create_task(subscribe())
        try:
            while not stop.is_set():
                try:
                    msg = await asyncio.wait_for(ws.receive(), 1.0)
                except TimeoutError:
                    continue
                if msg.type is aiohttp.WSMsgType.TEXT:
                    data: str = msg.data
                    if data.startswith('{"stream"'):
                        counter.frames += 1
                        if '"x":true' in data:
                            counter.closes += 1
                    else:
                        counter.acks += 1
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                  aiohttp.WSMsgType.ERROR):
                    raise RuntimeError(f"the simulator closed a connection: {msg}")
        finally:
            sub.cancel()


async def rest_load(rest: str, symbols: tuple[str, ...], lat: list[float], errors: list[int],
                    share: float, stop: asyncio.Event) -> None:
    """Kline pages at ``share`` of the venue's weight budget."""
    if share <= 0:
        return
    weight = klines_weight(USDM, REST_LIMIT)
    per_s = share * USDM.rest_limits[0].limit / USDM.rest_limits[0].seconds / weight
    i = 0
    async with aiohttp.ClientSession() as http:
        nxt = time.monotonic()
        while not stop.is_set():
            sym, iv = symbols[i % len(symbols)], INTERVALS[(i // len(symbols)) % len(INTERVALS)]
            i += 1
            t0 = time.perf_counter()
            try:
                async with http.get(rest + "/fapi/v1/klines", params={
                        "symbol": sym, "interval": iv, "limit": str(REST_LIMIT)}) as r:
                    await r.read()
                    if r.status != 200:
                        errors[0] += 1
                    else:
                        lat.append((time.perf_counter() - t0) * 1000)
            except (aiohttp.ClientError, OSError):
                errors[0] += 1
            nxt += 1 / per_s
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def measure(label: str, src: Path, n: int, universe: bool, settle: float,
                  seconds: float, rest_share: float) -> Row:
    symbols = universe_symbols(n)
    port = free_port()
    proc = start_sim(src, port, symbols, universe)
    try:
        rest = f"http://127.0.0.1:{port}"
        await wait_up(rest)
        names = [f"{s.lower()}@kline_{iv}" for s in symbols for iv in INTERVALS]
        stop = asyncio.Event()
        counter = Counter()
        url = f"ws://127.0.0.1:{port}/market/stream"
        clients = [asyncio.get_running_loop().create_task(
            ws_client(url, names[i:i + PER_CONN], counter, stop))
            for i in range(0, len(names), PER_CONN)]
        need_acks = (len(names) + PER_MSG - 1) // PER_MSG
        deadline = time.monotonic() + 120
        while counter.acks < need_acks and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        lat: list[float] = []
        errors = [0]
        rest_task = asyncio.get_running_loop().create_task(
            rest_load(rest, symbols, lat, errors, rest_share, stop))
        await asyncio.sleep(settle)
        f0, c0, cpu0, t0 = counter.frames, counter.closes, cpu_s(proc.pid), time.monotonic()
        lat.clear()
        errors[0] = 0
        await asyncio.sleep(seconds)
        f1, c1, cpu1, t1 = counter.frames, counter.closes, cpu_s(proc.pid), time.monotonic()
        rss = rss_mb(proc.pid)
        stop.set()
        await asyncio.gather(*clients, rest_task, return_exceptions=True)
        for c in clients:
            if c.done() and not c.cancelled() and c.exception() is not None:
                raise RuntimeError(f"{label}: a client failed: {c.exception()!r}")
        wall = t1 - t0
        return Row(label, n, len(names), round(wall, 1), (f1 - f0) / wall, (c1 - c0) / wall,
                   100 * (cpu1 - cpu0) / wall, rss, len(lat), pct(lat, 0.5), pct(lat, 0.99),
                   errors[0])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def table(rows: list[Row]) -> str:
    head = ("run", "symbols", "streams", "window s", "frames/s", "closes/s", "sim CPU % core",
            "sim RSS MB", "REST klines", "REST p50 ms", "REST p99 ms", "REST errors")
    lines = [head, tuple("---" for _ in head)]
    for r in rows:
        lines.append((r.label, str(r.symbols), str(r.streams), f"{r.seconds:.0f}",
                      f"{r.frames_per_s:,.0f}", f"{r.closes_per_s:.1f}", f"{r.cpu_pct:.1f}",
                      f"{r.rss_mb:.0f}", str(r.rest_n), f"{r.rest_p50_ms:.1f}",
                      f"{r.rest_p99_ms:.1f}", str(r.rest_errors)))
    return "\n".join("| " + " | ".join(x) + " |" for x in lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--symbols", type=int, default=500, help="symbols in the universe")
    ap.add_argument("--seconds", type=float, default=60.0, help="measured window, wall s")
    ap.add_argument("--settle", type=float, default=15.0,
                    help="wall seconds between the last subscription and the window")
    ap.add_argument("--rest-share", type=float, default=0.9,
                    help="REST kline pages at this share of the weight budget (0: none)")
    ap.add_argument("--rows", default="after,flat",
                    help="comma-separated: after (universe activity), flat (every symbol busy)")
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="another checkout's src/: adds a 'before' row (flat load) run from it")
    args = ap.parse_args(argv)
    if not 1 <= args.symbols <= 5000 or args.seconds <= 0 or args.settle < 0 \
            or not 0 <= args.rest_share <= 1:
        print("error: 1 <= --symbols <= 5000, --seconds > 0, --settle >= 0, "
              "0 <= --rest-share <= 1", file=sys.stderr)
        return 2
    wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    if any(r not in ("after", "flat") for r in wanted):
        print("error: --rows takes after and/or flat", file=sys.stderr)
        return 2
    if args.baseline_src is not None and not (args.baseline_src / "candlekeeper").is_dir():
        print(f"error: {args.baseline_src} has no candlekeeper package", file=sys.stderr)
        return 2
    plan: list[tuple[str, Path, bool]] = []
    if args.baseline_src is not None:
        plan.append(("before (flat)", args.baseline_src.resolve(), False))
    for r in wanted:
        plan.append((f"after ({'universe' if r == 'after' else 'flat'})", SRC, r == "after"))
    rows: list[Row] = []
    for label, src, uni in plan:
        print(f"# {label}: {args.symbols} symbols x {len(INTERVALS)} intervals ...",
              file=sys.stderr, flush=True)
        rows.append(asyncio.run(measure(label, src, args.symbols, uni, args.settle,
                                        args.seconds, args.rest_share)))
    print(f"simulator {VENUE}, speed 1, {time.strftime('%Y-%m-%d')}, host cores "
          f"{os.cpu_count()}; REST: limit {REST_LIMIT} pages at {100 * args.rest_share:.0f} % of "
          "the weight budget")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
