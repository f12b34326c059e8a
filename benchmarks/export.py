"""Export benchmark: rows/s and peak memory of ``candlekeeper export`` in every format.

    .venv/bin/python benchmarks/export.py [--rows 1000000] [--streams 10] [--dir /tmp]

Fills a SQLite file through the real ``SQLiteSink`` (``--streams`` one-minute streams, Binance-like
decimal text, every optional field set), then runs the real command line in a child process for
each format and reads the child's wall time and peak RSS (``wait4``). The same export is also run
on a tenth of the rows: the export streams page by page, so its memory must not grow with the
number of rows (the two RSS columns stay close); what does grow is only the output file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from candlekeeper.core.candle import Candle
from candlekeeper.sinks.sqlite import SQLiteSink

T0 = 1_600_000_020_000 - 1_600_000_020_000 % 60_000
FORMATS = ("csv", "jsonl", "parquet")


def candles(stream: int, n: int, first: int = 0) -> list[Candle]:
    out = []
    for i in range(first, first + n):
        t = T0 + i * 60_000
        p = 2_000_000 + (i * 7919 + stream * 31) % 100_000
        out.append(Candle("binance-usdm", f"SYM{stream:03d}USDT", "1m", t, t + 59_999,
                          f"{p // 100}.{p % 100:02d}", f"{p // 100 + 5}.10",
                          f"{p // 100 - 5}.00", f"{p // 100}.{(p + 3) % 100:02d}",
                          f"{i % 997}.{i % 1000:03d}", f"{i * 13}.123456", 100 + i % 50,
                          f"{i % 500}.500", f"{i * 6}.654321", 10 * i, 10 * i + 99, True,
                          t + 60_000, "ws"))
    return out


async def fill(path: Path, rows: int, streams: int) -> None:
    sink = SQLiteSink(path)
    await sink.open()
    per = rows // streams
    for s in range(streams):
        for first in range(0, per, 10_000):
            await sink.write(candles(s, min(10_000, per - first), first))
    await sink.close()


def run_export(db: Path, fmt: str, out: Path, symbols: int | None) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of one ``candlekeeper export`` child process."""
    cmd = [sys.executable, "-m", "candlekeeper", "export", "--db", str(db), "--format", fmt,
           "-o", str(out)]
    if symbols is not None:
        cmd += ["--symbol", ",".join(f"SYM{s:03d}USDT" for s in range(symbols))]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        assert proc.stderr is not None
        raise SystemExit(f"export failed: {proc.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss // 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        db = Path(tmp) / "bench.db"
        t0 = time.perf_counter()
        asyncio.run(fill(db, args.rows, args.streams))
        print(f"filled {args.rows:,} rows in {time.perf_counter() - t0:.1f}s "
              f"({db.stat().st_size / 1e6:.0f} MB)")
        small = max(1, args.streams // 10)
        print(f"| format | rows | seconds | rows/s | peak RSS | peak RSS, {small} stream(s) "
              "| file |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for fmt in FORMATS:
            out = Path(tmp) / f"out.{fmt}"
            seconds, rss = run_export(db, fmt, out, None)
            size = out.stat().st_size / 1e6
            _, rss_small = run_export(db, fmt, Path(tmp) / f"small.{fmt}", small)
            print(f"| {fmt} | {args.rows:,} | {seconds:.1f} | {args.rows / seconds:,.0f} | "
                  f"{rss} MB | {rss_small} MB | {size:.0f} MB |")


if __name__ == "__main__":
    main()
