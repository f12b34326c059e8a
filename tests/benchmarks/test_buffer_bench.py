"""Smoke test of ``benchmarks/buffer.py`` with tiny sizes: the real script, its child processes
and its table. No timing thresholds (those belong to a quiet machine); only what must hold
whatever the speed: both layouts measured, every figure positive, and the packed layout
smaller than the deque of objects."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_buffer_benchmark_prints_old_and_new(capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        bench = importlib.import_module("buffer")
    finally:
        sys.path.remove(str(BENCH))
    assert bench.main(["--buffers", "20", "--capacity", "40"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "| measure | old (deque) | new (packed) | new / old |"
    rows = {line.split(" | ")[0].lstrip("| "): [float(v.replace(",", "")) for v in
                                                  line.strip("| ").split(" | ")[1:]]
            for line in lines[3:]}
    assert list(rows) == ["bytes/candle (traced)", "bytes/candle (RSS)", "append µs/candle",
                          "latest() µs", "latest() first read µs", "latest(20) µs",
                          "latest(20) cold µs", "last() µs", "latest_df() µs"]
    assert all(v > 0 for name, values in rows.items() for v in values if "RSS" not in name)
    old, new, _ratio = rows["bytes/candle (traced)"]
    assert new < old / 3
