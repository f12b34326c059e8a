"""The chaos harness: an accelerated day of faults against the real service (in a child process,
so it can be ``kill -9``-ed) and a library consumer, compared with the simulator's truth.

Used by ``tests/integration/test_chaos.py`` (a CI-sized run) and ``benchmarks/soak.py`` (longer
soaks); usable by anyone who wants to see the guarantee hold on their own machine.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from candlekeeper import Candle, CandleFeed, StreamKey
from candlekeeper.backfill.options import RestOptions
from candlekeeper.core.intervals import next_open, nominal_ms
from candlekeeper.gapfill import GapFillOptions
from candlekeeper.sim import Simulator
from candlekeeper.sim.faults import ALL_KINDS, FaultPlan
from candlekeeper.transport import TransportOptions
from candlekeeper.venues.contract import klines_weight
from candlekeeper.venues.registry import VENUES, get_spec

#: the venue the harness runs against unless told otherwise: the first registered one
VENUE = VENUES[0]
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT",
           "AVAXUSDT", "LINKUSDT", "DOTUSDT")
INTERVALS = ("1m", "5m", "15m")
#: REST requests per wall minute one stream may need in an accelerated day (fills after every
#: break, the confirmation of every close of a venue without a closed flag, polling while the
#: WebSocket is down): a venue whose budget affords fewer streams runs fewer symbols
REQUESTS_PER_STREAM_MINUTE = 5


def affordable_symbols(venue: str, intervals: tuple[str, ...] = INTERVALS,
                       symbols: tuple[str, ...] = SYMBOLS) -> tuple[str, ...]:
    """The first symbols whose streams the venue's REST budget can keep whole at chaos speed:
    every one of :data:`SYMBOLS` on a venue counting cheap requests, fewer on one whose
    cheapest candle request weighs 20 of 1200 a minute (3 symbols, 9 streams)."""
    spec = get_spec(venue)
    per_minute = min(w.limit * 60.0 / w.seconds for w in spec.rest_limits)
    requests = per_minute / klines_weight(spec, 1)
    streams = int(requests // REQUESTS_PER_STREAM_MINUTE)
    return symbols[:max(1, min(len(symbols), streams // max(1, len(intervals))))]


@dataclass
class ChaosOptions:
    day_wall_s: float = 120.0  # one venue day lasts this long
    faults: int = 64
    seed: int = 7
    kill_at_s: float = 50.0  # kill -9 the service this long into the day ...
    restart_after_s: float = 3.0  # ... and start it again this much later
    settle_s: float = 60.0  # max wait for everything to catch up after the day
    #: None: as many of :data:`SYMBOLS` as the venue's REST budget affords
    symbols: tuple[str, ...] | None = None
    intervals: tuple[str, ...] = INTERVALS
    venue: str = VENUE
    #: the transport mode of the service and the consumer (``websocket``, ``rest``, ``auto``)
    mode: str = "auto"
    #: fault kinds of the random plan (``"all"``, or a tuple of kinds)
    kinds: str | tuple[str, ...] = "all"
    #: venue time per wall second; None: a venue day in ``day_wall_s``
    speed_x: float | None = None
    #: run the venue's clock this many venue seconds ahead (+) of or behind (-) the host's:
    #: the service and the consumer keep the simulator's unskewed clock, as a host clock off by
    #: this much would (issue 9). The truth is in the venue's own time.
    clock_skew_s: float = 0.0

    @property
    def stream_symbols(self) -> tuple[str, ...]:
        if self.symbols is not None:
            return self.symbols
        return affordable_symbols(self.venue, self.intervals)

    @property
    def speed(self) -> float:
        return self.speed_x if self.speed_x is not None else 86_400.0 / self.day_wall_s


@dataclass
class Consumer:
    """A library user: records every closed candle it is given."""

    seen: dict[StreamKey, list[Candle]] = field(default_factory=dict)

    def __call__(self, c: Candle) -> None:
        self.seen.setdefault(c.key, []).append(c)


@dataclass
class ChaosResult:
    keys: list[StreamKey]
    stored: dict[StreamKey, list[tuple[object, ...]]]
    truth: dict[StreamKey, list[Candle]]
    consumer: dict[StreamKey, list[Candle]]
    fault_kinds: Counter[str]
    faults_applied: int
    kill_returncode: int | None
    final_returncode: int | None
    service_logs: list[str]
    #: the consumer feed's state of every stream at the end (:func:`stream_state`)
    consumer_state: dict[StreamKey, str] = field(default_factory=dict)


def service_config(sim: Simulator, db: Path, opts: ChaosOptions) -> dict[str, object]:
    wall = 1.0  # seconds of silence before a stream counts as stalled
    venue = opts.venue
    return {
        "feeds": [{"venue": venue, "symbols": list(opts.stream_symbols),
                   "intervals": list(opts.intervals), "transport": opts.mode,
                   "ws_url": sim.ws_base(venue), "rest_url": sim.rest_base(venue)}],
        "sinks": {"sqlite": {"path": str(db), "flush_interval_s": 0.1}},
        "observability": {"http": {"enabled": False}, "dashboard": False},
        "transport": {"backoff_initial_s": 0.1, "backoff_max_s": 1.0, "healthy_after_s": 2.0,
                      "stall_grace_ms": max(0, int(wall * 1000 * opts.speed) - 60_000),
                      "ack_timeout_s": 5.0, "connect_timeout_s": 5.0},
        "gap_fill": {"history": 30},
        "clock": {"speed": opts.speed, "start_ms": sim.clock.start_ms,
                  "monotonic_origin": sim.clock.monotonic_origin},
        "shutdown": {"drain_timeout_s": 10},
    }


class ServiceProcess:
    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self._out = log.open("w")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}  # the whole stats table
        self.proc = subprocess.Popen([sys.executable, "-m", "candlekeeper", "run", "-c",
                                      str(config), "--no-dashboard"],
                                     stdout=self._out, stderr=subprocess.STDOUT, env=env)

    def kill9(self) -> int:
        self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(timeout=30)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def text(self) -> str:
        self._out.flush()
        return self.log.read_text()


def stored_rows(db: Path, key: StreamKey) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(
            "SELECT open_time, close_time, open, high, low, close, volume, quote_volume, trades,"
            " taker_buy_base_volume, taker_buy_quote_volume, first_trade_id, last_trade_id,"
            " source FROM candles WHERE venue=? AND symbol=? AND interval=? ORDER BY open_time",
            key).fetchall()


def last_stored(db: Path, key: StreamKey) -> int | None:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT MAX(open_time) FROM candles WHERE venue=? AND symbol=?"
                               " AND interval=?", key).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


async def run_chaos(tmp: Path, opts: ChaosOptions) -> ChaosResult:
    venue = opts.venue
    plan = FaultPlan.random(opts.seed, kinds=opts.kinds, count=opts.faults,
                            window=(3.0, opts.day_wall_s * 0.85), venues=(venue,),
                            symbols=opts.stream_symbols)
    keys = [StreamKey(venue, s, i) for s in opts.stream_symbols for i in opts.intervals]
    db = tmp / "chaos.sqlite"
    logs: list[str] = []
    spec = get_spec(venue)
    # Two clients (the service and the consumer) share the simulator's one IP, each with its
    # own REST budget of the venue's real limit (polling after a broken WebSocket, every close
    # of a venue without a closed flag, every close in REST mode): the server gets room for
    # both, and the consumer keeps its budget out of the host's shared ledger (which the
    # service and its restart after the kill do share, as they would on a real host). A venue
    # that bans at the first request over its limit would otherwise ban the test harness
    # itself, which no single real client of it would provoke.
    extra: dict[str, Any] = {"rest_weight_limit": {venue: int(2.4 * spec.rest_limits[0].limit)}}
    if not spec.closed_flag:
        # A venue without a closed flag pushes on a wall-clock cadence: at this speed it must
        # push faster.
        extra["min_pushes_per_candle"] = 4
    async with Simulator(venues=(venue,), symbols=opts.stream_symbols, intervals=opts.intervals,
                         speed=opts.speed, seed=opts.seed, history=1000,
                         clock_skew_s={venue: opts.clock_skew_s}, faults=plan, **extra) as sim:
        cfg = tmp / "service.yaml"
        cfg.write_text(json.dumps(service_config(sim, db, opts)))  # JSON is valid YAML
        consumer = Consumer()
        feed = CandleFeed(venue, opts.stream_symbols, opts.intervals, ws_url=sim.ws_base(venue),
                          rest_url=sim.rest_base(venue), clock=sim.clock,
                          transport=TransportOptions(
                              backoff_initial_s=0.1, backoff_max_s=1.0, healthy_after_s=2.0,
                              stall_grace_ms=max(0, int(1000 * opts.speed) - 60_000)),
                          gap_fill=GapFillOptions(history=30, retry_initial_s=0.2),
                          mode=opts.mode, rest=RestOptions(shared_budget=False))
        feed.on_closed(consumer)
        service = ServiceProcess(cfg, tmp / "service-1.log")
        kill_rc: int | None = None
        async with feed:
            await asyncio.sleep(opts.kill_at_s)
            kill_rc = await asyncio.to_thread(service.kill9)
            logs.append(service.text())
            await asyncio.sleep(opts.restart_after_s)
            service = ServiceProcess(cfg, tmp / "service-2.log")
            await asyncio.sleep(max(0.0, opts.day_wall_s - sim.wall_elapsed()))
            # the fault window is over: wait until storage and the consumer caught up
            deadline = time.monotonic() + opts.settle_s
            targets = {k: _last_closed(sim, k) for k in keys}
            while time.monotonic() < deadline:
                lagging = [k for k in keys
                           if (last_stored(db, k) or 0) < targets[k]
                           or not consumer.seen.get(k)
                           or consumer.seen[k][-1].open_time < targets[k]]
                if not lagging:
                    break
                await asyncio.sleep(0.25)
            final_rc = await asyncio.to_thread(service.terminate)
            logs.append(service.text())
            states = {k: stream_state(feed, k) for k in keys}
        truth = {k: sim.closed_candles(k.venue, k.symbol, k.interval) for k in keys}
        kinds = Counter(r.kind for r in sim.fault_log)
        applied = len({r.fault_id for r in sim.fault_log})
    stored = {k: stored_rows(db, k) for k in keys}
    return ChaosResult(keys, stored, truth, consumer.seen, kinds, applied, kill_rc, final_rc,
                       logs, states)


def stream_state(feed: CandleFeed, key: StreamKey) -> str:
    """One line on where a stream of ``feed`` stands and what its gap filler is doing: what a
    stream that stopped advancing needs said about it."""
    st = feed._by_key()[key]
    seq = st.seq
    held = sorted(seq.held)
    parts = [f"state {st.metrics.state}", f"last {seq.last}", f"held {len(held)} {held[:3]}",
             f"forming {st.forming.open_time if st.forming else None}",
             f"late {seq.late} dups {seq.duplicates} unfillable {seq.unfillable} "
             f"overflow {seq.overflow}", f"venue now {feed.clock.time_ms()}"]
    filler = feed.filler
    track = filler._tracks.get(key) if filler is not None else None
    if track is not None:
        running = track.task is not None and not track.task.done()
        parts.append(f"fill running {running} want_again {track.want_again} "
                     f"polled {track.polled} fast {track.fast} interrupted {track.interrupted} "
                     f"polled_through {track.polled_through} margin {track.margin_ms} "
                     f"backoff {track.backoff_s:.2f}s")
        if running and track.task is not None:
            frames = track.task.get_stack(limit=3)
            parts.append("fill at " + " > ".join(
                f"{f.f_code.co_name}:{f.f_lineno}" for f in frames))
    return "; ".join(parts)


def _last_closed(sim: Simulator, key: StreamKey) -> int:
    return sim.closed_candles(key.venue, key.symbol, key.interval)[-1].open_time


def row_of(c: Candle) -> tuple[object, ...]:
    return (c.open_time, c.close_time, c.open_str, c.high_str, c.low_str, c.close_str,
            c.volume_str, c.quote_volume_str, c.trades, c.taker_buy_base_volume_str,
            c.taker_buy_quote_volume_str)


def check(result: ChaosResult) -> list[str]:
    """Every violation of the guarantee, as readable lines (empty = perfect)."""
    problems: list[str] = []
    for key in result.keys:
        truth = {c.open_time: c for c in result.truth[key]}
        rows = result.stored[key]
        if not rows:
            problems.append(f"{key}: nothing stored")
            continue
        times = [int(r[0]) for r in rows]  # type: ignore[call-overload]
        want = [t for t in sorted(truth) if times[0] <= t <= times[-1]]
        if times != want:
            missing = sorted(set(want) - set(times))
            extra = sorted(set(times) - set(want))
            problems.append(f"{key}: storage differs: missing {missing[:5]} extra {extra[:5]}")
        for r, open_time in zip(rows, times, strict=True):
            t = truth.get(open_time)
            if t is None:
                continue
            if r[:11] != row_of(t):
                problems.append(f"{key} {r[0]}: stored {r[:11]} != truth {row_of(t)}")
            elif r[13] == "ws" and r[11:13] != (t.first_trade_id, t.last_trade_id):
                problems.append(f"{key} {r[0]}: trade ids differ")
        seen = result.consumer.get(key, [])
        if not seen:
            problems.append(f"{key}: the consumer saw nothing")
            continue
        for a, b in itertools.pairwise(seen):
            if b.open_time != next_open(a.open_time, key.interval):
                kind = "duplicate" if b.open_time == a.open_time else (
                    "out of order" if b.open_time < a.open_time else "hole")
                problems.append(f"{key}: consumer {kind} after {a.open_time} -> {b.open_time}")
        for c in seen:
            t = truth.get(c.open_time)
            if t is None or not c.same_values(t, trade_ids=c.source == "ws"):
                problems.append(f"{key} {c.open_time}: the consumer got {c} != truth {t}")
    return problems


def summary(result: ChaosResult) -> str:
    rows = sum(len(v) for v in result.stored.values())
    seen = sum(len(v) for v in result.consumer.values())
    per = ", ".join(f"{k}={n}" for k, n in sorted(result.fault_kinds.items()))
    minutes = max((len(v) for k, v in result.stored.items()
                   if nominal_ms(k.interval) == 60_000), default=0)
    return (f"{result.faults_applied} faults applied ({per}); {rows} candles stored, "
            f"{seen} seen by the consumer, {minutes} one-minute candles per 1m stream; "
            f"kill -9 rc={result.kill_returncode}, final rc={result.final_returncode}")


__all__ = ["ALL_KINDS", "ChaosOptions", "ChaosResult", "check", "run_chaos", "summary"]
