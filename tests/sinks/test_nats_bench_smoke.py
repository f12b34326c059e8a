"""Smoke test of the NATS part of the storage benchmark (``benchmarks/storage_nats.py``) with tiny
counts against the test server: every case runs and counts every message. No timing thresholds."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from servers import NatsServer

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


async def test_every_case_runs_and_counts_every_message(nats: NatsServer) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        storage = importlib.import_module("storage")
        storage_nats = importlib.import_module("storage_nats")
    finally:
        sys.path.remove(str(BENCH))
    candles = storage.make_candles(300, 20)
    results = await storage_nats.run_nats(nats.url, candles, small=40)
    assert [(name.split(" (")[0], n) for name, n, _ in results] == [
        ("NATS publish, batch 1", 40), ("NATS publish, batch 100", 300),
        ("NATS publish, batch 10,000", 300),
        ("NATS re-publish identical", 300), ("NATS BatchingWriter submit+drain", 300)]
    assert all(elapsed > 0 for _, _, elapsed in results)
