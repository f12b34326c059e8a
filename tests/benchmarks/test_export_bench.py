"""Smoke test of ``benchmarks/export.py`` with a tiny database: the real command line in child
processes for every format, the table printed. No timing threshold (that is the benchmark's
job on a quiet machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "export.py"


def test_export_benchmark_runs(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(BENCH), "--rows", "3000", "--streams", "3",
                          "--dir", str(tmp_path)], capture_output=True, text=True, timeout=120,
                         check=False, env={**os.environ})
    assert res.returncode == 0, res.stderr
    rows = [line for line in res.stdout.splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["csv", "jsonl", "parquet"]
    for row in rows[1:]:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[1] == "3,000" and float(cells[2]) > 0 and cells[4].endswith("MB")
