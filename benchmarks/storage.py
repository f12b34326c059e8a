"""Storage benchmark: rows/s into SQLite through the real ``SQLiteSink`` (and ``BatchingWriter``).

    .venv/bin/python benchmarks/storage.py [--rows 200000] [--streams 100] [--dir /tmp]

Candles arrive the way closes do in production: every stream closes the same minute, so each batch
touches many series (inserts spread over the primary key, not one append-only tail). Every write
is a real transaction on a WAL file with ``synchronous=NORMAL``, run on the sink's thread and
awaited from the event loop, so the figures include the thread hop and the Decimal -> TEXT
conversion. Candle construction is done before timing.

PostgreSQL (``benchmarks/storage_postgres.py``: a private durable cluster started by the benchmark,
the same cases through ``PostgresSink``; ``--pg-rows 0`` skips it) and NATS JetStream
(``benchmarks/storage_nats.py``) follow the SQLite table.

Rows measured:

* ``insert, batch B``: new rows, ``sink.write`` called with B candles at a time (B = 1, 100,
  10,000); batch 1 is one transaction per candle, the worst case a writer without batching has.
* ``re-write identical``: the same 10,000-row batches again — duplicates, which must be no-ops.
* ``re-write changed``: the same keys with a different close — REST corrections replacing rows.
* ``BatchingWriter``: ``submit`` every candle then ``stop()`` with default settings (batch 500),
  the path the feed uses.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.sinks import BatchingWriter, Sink
from candlekeeper.sinks.sqlite import SQLiteSink

T0 = 1_626_992_700_000
MINUTE = 60_000


def make_candles(n: int, streams: int, close: str = "7.6170") -> list[Candle]:
    out: list[Candle] = []
    minute = 0
    while len(out) < n:
        open_time = T0 + minute * MINUTE
        for s in range(min(streams, n - len(out))):
            out.append(Candle.of(
                "binance-usdm", f"SYM{s:04d}USDT", "1m", open_time, open_time + MINUTE - 1,
                Decimal("7.6080"), Decimal("7.6180"), Decimal("7.6070"), Decimal(close),
                Decimal("3005"), Decimal("22875.8590"), 113, Decimal("1900"),
                Decimal("14464.6960"), 126902874 + minute, 126902986 + minute, True,
                open_time + MINUTE + 203, "ws"))
        minute += 1
    return out


async def timed_writes(sink: Sink, candles: Sequence[Candle], batch: int) -> float:
    """Seconds to write ``candles`` through ``sink`` in batches of ``batch`` (any backend)."""
    start = time.perf_counter()
    for i in range(0, len(candles), batch):
        await sink.write(candles[i:i + batch])
    return time.perf_counter() - start


async def run(rows: int, streams: int, folder: Path) -> list[tuple[str, int, float]]:
    results: list[tuple[str, int, float]] = []
    small = max(streams, min(rows, 5_000))  # batch 1 is a transaction per row: keep it short
    for batch, n in ((1, small), (100, rows), (10_000, rows)):
        path = folder / f"bench-{batch}.db"
        sink = SQLiteSink(path)
        await sink.open()
        candles = make_candles(n, streams)
        elapsed = await timed_writes(sink, candles, batch)
        assert sink.count() == n
        results.append((f"insert, batch {batch:,}", n, elapsed))
        if batch == 10_000:
            elapsed = await timed_writes(sink, candles, batch)
            assert sink.count() == n
            results.append(("re-write identical (duplicates), batch 10,000", n, elapsed))
            changed = [msgspec.structs.replace(c, close_str="7.6190", source="rest")
                       for c in candles]
            before = sink.rows_changed
            elapsed = await timed_writes(sink, changed, batch)
            assert sink.rows_changed - before == n
            results.append(("re-write changed (corrections), batch 10,000", n, elapsed))
        await sink.close()

    path = folder / "bench-writer.db"
    sink = SQLiteSink(path)
    writer = BatchingWriter(sink)
    candles = make_candles(rows, streams)
    await writer.start()
    start = time.perf_counter()
    for c in candles:
        writer.submit(c)
    await writer.stop(drain_timeout_s=600.0)
    elapsed = time.perf_counter() - start
    assert writer.stats.written == rows
    results.append((f"BatchingWriter submit+drain (batch {500})", rows, elapsed))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows per measurement")
    parser.add_argument("--streams", type=int, default=100, help="series closing each minute")
    parser.add_argument("--dir", type=Path, default=None,
                        help="folder for the database files (default: a temp folder)")
    parser.add_argument("--pg-rows", type=int, default=200_000,
                        help="rows per PostgreSQL measurement (0: skip PostgreSQL)")
    parser.add_argument("--pg-fast", action="store_true",
                        help="PostgreSQL with fsync/synchronous_commit off (CPU ceiling)")
    parser.add_argument("--nats-rows", type=int, default=100_000,
                        help="messages per NATS measurement (0: skip NATS)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results = asyncio.run(run(args.rows, args.streams, Path(tmp)))
    print(f"SQLite {sqlite3.sqlite_version}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPU(s), WAL + synchronous=NORMAL, {args.streams} streams")
    width = max(len(name) for name, _, _ in results)
    print(f"{'case':<{width}}  {'rows':>9}  {'seconds':>8}  {'rows/s':>10}  {'µs/row':>7}")
    for name, n, elapsed in results:
        print(f"{name:<{width}}  {n:>9,}  {elapsed:>8.3f}  {n / elapsed:>10,.0f}  "
              f"{elapsed / n * 1e6:>7.1f}")
    if args.pg_rows > 0:  # PostgreSQL rows/s (benchmarks/storage_postgres.py)
        import storage_postgres

        title, pg_results = storage_postgres.measure(
            make_candles(args.pg_rows, args.streams),
            max(args.streams, min(args.pg_rows, 5_000)), durable=not args.pg_fast)
        print()
        storage_postgres.print_table(title, pg_results)
    if args.nats_rows > 0:  # NATS JetStream publish rate (benchmarks/storage_nats.py)
        import storage_nats

        nats_results = storage_nats.measure(make_candles(args.nats_rows, args.streams),
                                            small=max(args.streams, min(args.nats_rows, 5_000)),
                                            folder=args.dir)
        print(f"\n{storage_nats.server_version()}, file storage, acks awaited")
        storage_nats.print_table(nats_results)


if __name__ == "__main__":
    main()
