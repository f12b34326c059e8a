"""Smoke test of the throughput/latency benchmark (``benchmarks/run.py``) with tiny counts.

It runs the real machinery -- the simulator in its own process, every client process, the
table -- and checks that every message was counted and the figures are sane. It asserts no
timing thresholds: those belong to ``make bench`` on a quiet machine, not to CI.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

from candlekeeper.venues.registry import get_spec

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def suite() -> ModuleType:
    return _load("bench_suite")


@pytest.fixture(scope="module")
def common() -> ModuleType:
    return _load("bench_common")


def test_benchmark_runs_end_to_end_and_counts_every_message(suite: ModuleType) -> None:
    opts = suite.Options(messages=400, decode_messages=300, repeat=1, rates=(4_000,),
                         rate_seconds=0.1, timeout_s=20.0)
    report = suite.run_all(opts)

    # A. no socket: every row timed over all 300 messages; the feed's handler saw each one
    labels = [m.label for m in report.decode]
    assert labels[-1] == "decode + CandleFeed stream sink + on_update handler"
    assert len(labels) == 6
    for m in report.decode:
        assert m.measured == 300
        assert m.cpu_s > 0 and m.wall_s > 0 and m.rate > 0
    assert report.decode[-1].received == 300 and report.decode[-1].dropped == 0

    # B. saturation: every client received all 400 frames, in order, none dropped
    assert [r.key for r in report.saturation] == \
        ["bare", "bare-orjson", "bare-struct", "feed", "feed-inline"]
    for row in report.saturation:
        (m,) = row.runs
        assert (m.expected, m.received) == (400, 400), row.label
        assert m.measured == 400 - 40  # the first 10% are warm-up
        assert m.dropped == 0 and m.out_of_order == 0
        assert m.cpu_s > 0 and m.wall_s > 0 and m.maxrss_kb > 10_000
        assert math.isfinite(m.cpu_per_100k)
        (sent,) = row.server
        assert sent.sent == 400 and not sent.error
    assert report.ratio() > 0

    # C. fixed rate: 400 stamped frames each, a latency per message, ordered percentiles
    assert [(r.rate, r.result.label) for r in report.rates] == \
        [(4_000, "bare loop (msgspec)"), (4_000, "candlekeeper"),
         (4_000, "candlekeeper inline")]
    for rr in report.rates:
        m = rr.result
        assert m.received == 400 and rr.server.sent == 400
        assert m.lat_us is not None and m.lat_e_ms is not None
        assert m.lat_us.n == 400 and m.lat_e_ms.n == 400
        assert 0 <= m.lat_us.p50 <= m.lat_us.p99 <= m.lat_us.max
        assert m.lat_e_ms.p50 <= m.lat_e_ms.p99 <= m.lat_e_ms.max

    table = suite.render(report)
    assert "candlekeeper: CandleFeed -> on_update handler" in table
    assert "MET" in table or "MISSED" in table
    assert "4,000/s" in table


def test_latency_percentiles_by_rank(common: ModuleType) -> None:
    lat = common.latency([float(x) for x in range(1, 101)])
    assert (lat.n, lat.p50, lat.p99, lat.max) == (100, 50.0, 99.0, 100.0)
    assert common.latency([]) is None


def test_close_delay_benchmark_runs_every_cell_and_finds_nothing_wrong() -> None:
    """``benchmarks/close_delay.py`` at x60: every (venue, policy, host clock) cell closes
    candles, none wrong or missing, fast cells on venues with a closed flag mostly via REST."""
    bench = _load("close_delay")
    # two venues (one with a closed flag, one without) keep the run light next to the other
    # tests; the full table is `benchmarks/close_delay.py` on a quiet machine
    venues = (next(v for v in bench.VENUES if get_spec(v).closed_flag),
              next(v for v in bench.VENUES if not get_spec(v).closed_flag))
    opts = bench.Options(venues=venues, symbols=2, minutes=4.0, speed=60.0, settle_s=60.0)
    cells = asyncio.run(bench.run(opts))
    assert len(cells) == len(opts.venues) * len(opts.conditions)
    for c in cells:
        label = (c.venue, c.condition.close_policy, c.condition.label)
        assert len(c.delays_s) >= 2 * 2, label
        assert c.wrong == 0 and c.missing == 0, (label, c.missing_at, c.rest, len(c.delays_s))
    table = bench.table(cells)
    assert table.count("\n") == len(cells) + 1 and "| fast |" in table


def test_rest_mode_benchmark_measures_both_modes() -> None:
    """``benchmarks/rest_mode.py`` for one venue, briefly: the feed in a child process, its CPU
    and REST requests counted, every close equal to the truth; REST mode polls once a close."""
    bench = _load("rest_mode")
    venue = bench.VENUES[0]
    symbols = tuple(bench.DEFAULT_SYMBOLS[:3])
    cells = [asyncio.run(bench.measure(venue, mode, symbols, 6.0, 60.0))
             for mode in bench.MODES]
    for c in cells:
        assert c.closes >= 3 * 4 and c.wrong == 0, c
        assert c.cpu_s > 0 and c.venue_h > 0
    ws, rest = cells
    assert rest.requests_per_stream_hour >= 50  # one poll per 1m close (60/h), give or take
    assert ws.requests_per_stream_hour < rest.requests_per_stream_hour
    assert "| rest |" in bench.table(cells)
