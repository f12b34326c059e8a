"""The per-stream candle buffer: memory per buffered candle and read/append speed, the old
``deque[Candle]`` layout (``DequeRingBuffer``, the baseline, copied here) against today's packed
``RingBuffer`` (issue 12).

    .venv/bin/python benchmarks/buffer.py                  # ~10 min, prints one table
    .venv/bin/python benchmarks/buffer.py --buffers 200    # ~1 min, the same within a few %

* **bytes/candle (traced)**: ``tracemalloc`` bytes still allocated after filling ``--buffers``
  buffers with ``2 x capacity`` realistic candles each (so every buffer has slid), divided by
  the candles they hold. Each implementation runs in its own fresh process.
* **bytes/candle (RSS)**: the same fill without tracemalloc, RSS after minus RSS before.
* Candles are what the feed buffers: decoded (``msgspec``) from Binance-like JSON, so every
  candle has its own strings, with Binance's decimal text (``"67123.40000000"``) and price
  magnitudes from 0.00001234 to 67,000.
* **append**: per candle, into a full buffer (steady state: every append evicts one).
* **latest() / latest(20) / last() / latest_df()**: per call on a full buffer, best of 5 runs;
  ``latest(20) cold`` / ``latest() first read`` are the first such read of a buffer (the
  packed buffer decodes the rows there; later reads find them kept as objects).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from candlekeeper.core.buffers import RingBuffer
from candlekeeper.core.candle import Candle

MINUTE = 60_000
T0 = 1_767_225_600_000  # 2026-01-01


class DequeRingBuffer:
    """BASELINE ONLY: ``RingBuffer`` as it was before issue 12 (a ``deque[Candle]``), kept here
    so that the benchmark measures old and new in one run. Not used by the library."""

    def __init__(self, capacity: int = 500) -> None:
        self.capacity = capacity
        self._items: deque[Candle] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def append(self, candle: Candle) -> bool:
        with self._lock:
            if self._items and candle.open_time <= self._items[-1].open_time:
                return False
            self._items.append(candle)
            return True

    def latest(self, n: int | None = None) -> list[Candle]:
        with self._lock:
            items = list(self._items)
        if n is None or n >= len(items):
            return items
        return items[-n:] if n > 0 else []

    def last(self) -> Candle | None:
        with self._lock:
            return self._items[-1] if self._items else None

    def latest_df(self, n: int | None = None) -> Any:
        return old_to_dataframe(self.latest(n))


def old_to_dataframe(candles: list[Candle]) -> Any:
    """BASELINE ONLY: ``to_dataframe`` as it was (one dict per candle)."""
    import pandas as pd

    frame = pd.DataFrame([
        {"open_time": c.open_time, "open": c.open, "high": c.high, "low": c.low,
         "close": c.close, "volume": c.volume, "close_time": c.close_time,
         "quote_volume": c.quote_volume, "trades": c.trades,
         "taker_buy_base_volume": c.taker_buy_base_volume,
         "taker_buy_quote_volume": c.taker_buy_quote_volume}
        for c in candles])
    if not frame.empty:
        frame.index = pd.to_datetime(frame["open_time"], unit="ms", utc=True)
        frame.index.name = "time"
    return frame


class Buffer(Protocol):
    def append(self, candle: Candle) -> bool: ...
    def latest(self, n: int | None = None) -> list[Candle]: ...
    def last(self) -> Candle | None: ...
    def latest_df(self, n: int | None = None) -> Any: ...


IMPLS: dict[str, Callable[[int], Buffer]] = {"old (deque)": DequeRingBuffer,
                                             "new (packed)": RingBuffer}
_DECODER = msgspec.json.Decoder(list[Candle])


def candles(symbol: int, n: int, start: int = 0) -> list[Candle]:
    """``n`` closed 1m candles of a Binance-spot-like symbol, decoded from JSON like the feed's."""
    rng = random.Random(symbol)
    scale = 10 ** rng.randint(-5, 4)
    price = rng.uniform(1, 9) * scale
    rows = []
    for i in range(start, start + n):
        o = price
        price *= 1 + rng.uniform(-0.002, 0.002)
        h, lo = max(o, price) * 1.0005, min(o, price) * 0.9995
        vol = rng.uniform(1, 5000) / scale
        t = T0 + i * MINUTE
        first = 5_000_000_000 + i * 3000
        trades = rng.randint(10, 2999)
        rows.append({
            "venue": "binance-spot", "symbol": f"SYM{symbol}USDT", "interval": "1m",
            "open_time": t, "close_time": t + MINUTE - 1,
            "open_str": f"{o:.8f}", "high_str": f"{h:.8f}", "low_str": f"{lo:.8f}",
            "close_str": f"{price:.8f}", "volume_str": f"{vol:.8f}",
            "quote_volume_str": f"{vol * price:.8f}", "trades": trades,
            "taker_buy_base_volume_str": f"{vol / 2:.8f}",
            "taker_buy_quote_volume_str": f"{vol * price / 2:.8f}",
            "first_trade_id": first, "last_trade_id": first + trades - 1, "closed": True,
            "event_time": t + MINUTE + 7, "source": "ws"})
    return _DECODER.decode(json.dumps(rows).encode())


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(impl: str, buffers: int, capacity: int, traced: bool) -> float:
    """Bytes per buffered candle of ``buffers`` full buffers (run in a fresh process)."""
    factory = IMPLS[impl]
    if traced:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if traced else _rss()
    kept = []
    for s in range(buffers):
        buf = factory(capacity)
        for c in candles(s, 2 * capacity):
            buf.append(c)
        kept.append(buf)
    after = tracemalloc.get_traced_memory()[0] if traced else _rss()
    return (after - before) / (buffers * capacity)


def memory(impl: str, buffers: int, capacity: int, traced: bool) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", impl, "--buffers", str(buffers),
         "--capacity", str(capacity)] + (["--traced"] if traced else []),
        check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def per_call(fn: Callable[[], object], calls: int) -> float:
    """Best of 5 runs of ``calls`` calls, µs per call."""
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, time.perf_counter() - t)
    return best / calls * 1e6


def speeds(impl: str, capacity: int) -> dict[str, float]:
    factory = IMPLS[impl]
    stream = candles(1, 12 * capacity)
    full = factory(capacity)
    for c in stream[:capacity]:
        full.append(c)
    rest = stream[capacity:]
    bufs = [factory(capacity) for _ in range(10)]
    t = time.perf_counter()
    for buf in bufs:
        for c in rest:
            buf.append(c)
    append = (time.perf_counter() - t) / (len(rest) * len(bufs)) * 1e6
    cold = [factory(capacity) for _ in range(200)]
    for buf in cold:
        for c in stream[:capacity]:
            buf.append(c)
    t = time.perf_counter()
    for buf in cold:
        buf.latest(20)
    cold_us = (time.perf_counter() - t) / len(cold) * 1e6
    t = time.perf_counter()
    for buf in cold:
        buf.latest()
    cold_all_us = (time.perf_counter() - t) / len(cold) * 1e6
    assert full.latest() == stream[:capacity]
    return {
        "append µs/candle": append,
        "latest() µs": per_call(full.latest, 200),
        "latest() first read µs": cold_all_us,
        "latest(20) µs": per_call(lambda: full.latest(20), 2000),
        "latest(20) cold µs": cold_us,
        "last() µs": per_call(full.last, 2000),
        "latest_df() µs": per_call(full.latest_df, 20),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--buffers", type=int, default=2000, help="buffers for the memory rows")
    ap.add_argument("--capacity", type=int, default=500)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(memory_child(args.child, args.buffers, args.capacity, args.traced))
        return 0
    results: dict[str, dict[str, float]] = {}
    for impl in IMPLS:
        row = {"bytes/candle (traced)": memory(impl, args.buffers, args.capacity, True),
               "bytes/candle (RSS)": memory(impl, args.buffers, args.capacity, False)}
        row.update(speeds(impl, args.capacity))
        results[impl] = row
    print(f"{args.buffers} buffers x {args.capacity} candles; Python {platform.python_version()}"
          f" on {platform.machine()}, {os.cpu_count()} cores")
    names = list(IMPLS)
    print("| measure | " + " | ".join(names) + " | new / old |")
    print("| --- | " + " | ".join("---" for _ in names) + " | --- |")
    for measure in results[names[0]]:
        vals = [results[n][measure] for n in names]
        print(f"| {measure} | " + " | ".join(f"{v:,.1f}" for v in vals)
              + f" | {vals[-1] / vals[0]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
