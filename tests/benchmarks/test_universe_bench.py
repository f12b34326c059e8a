"""The universe benchmarks (issue 12): the budget arithmetic of ``benchmarks/universe.py`` and a
short run of ``benchmarks/sim_universe.py`` (the simulator in its own process, a real client).
No timing thresholds: those belong to the benchmark on a quiet machine."""

from __future__ import annotations

import asyncio
import importlib
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

from candlekeeper.venues.contract import klines_weight
from candlekeeper.venues.registry import get_spec

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
SRC = Path(__file__).resolve().parents[2] / "src"
USDM = get_spec("binance-usdm")


def _load(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def universe() -> ModuleType:
    return _load("universe")


def test_least_weight_uses_the_cheap_tiers(universe: ModuleType) -> None:
    # USDⓈ-M: [1,100) 1, [100,500) 2, [500,1000] 5, >1000 10
    assert universe.min_weight(USDM, 0) == 0
    assert universe.min_weight(USDM, 99) == 1
    assert universe.min_weight(USDM, 100) == 2  # one page of 100, or 99 + 1: both 2
    assert universe.min_weight(USDM, 500) == 3  # 499 (2) + 1 (1), not one page of 500 (5)
    assert universe.min_weight(USDM, 1000) == 5
    for n in range(1, 3001, 37):  # never worse than one page size throughout
        naive = min(-(-n // size) * klines_weight(USDM, size) for size in (99, 499, 1000, 1500))
        assert universe.min_weight(USDM, n) <= naive


def test_budget_minimum_counts_whole_windows(universe: ModuleType) -> None:
    limit, window = USDM.rest_limits[0].limit, USDM.rest_limits[0].seconds
    assert universe.budget_minimum_s(USDM, limit, 10.0)[0] == 0.0  # one window's worth: now
    # three windows' worth from 20 s into a window: the rest of it, then one more window
    least, rate = universe.budget_minimum_s(USDM, 2 * limit + 1, 20.0)
    assert least == pytest.approx(window - 20.0 + window)
    assert rate == pytest.approx((2 * limit + 1) / limit * window)


def test_simulator_universe_benchmark_runs(tmp_path: Path) -> None:
    sim_universe = _load("sim_universe")
    row = asyncio.run(sim_universe.measure("after (universe)", SRC, 4, True, settle=1.0,
                                           seconds=3.0, rest_share=0.05))
    assert row.streams == 4 * 15
    assert row.frames_per_s > 0
    assert row.rest_n > 0 and row.rest_errors == 0
    assert math.isfinite(row.rest_p50_ms) and row.rss_mb > 0
    assert "after (universe)" in sim_universe.table([row])
