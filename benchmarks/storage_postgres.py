"""PostgreSQL rows/s through the real ``PostgresSink`` (used by ``benchmarks/storage.py``; also
runnable alone):

    .venv/bin/python benchmarks/storage_postgres.py [--rows 200000] [--streams 100]

A private PostgreSQL 15 cluster (``initdb`` in a temp folder, loopback, port chosen here) is
started by the benchmark and removed at the end. It runs with the **durable defaults**
(``fsync = on``, ``synchronous_commit = on``, ``full_page_writes = on``) and a few settings any
write-heavy deployment would use (``shared_buffers = 256MB``, ``max_wal_size = 4GB`` so a
checkpoint does not land in the middle of a measurement); ``--fast`` switches durability off to
show the CPU-bound ceiling. Every ``sink.write`` is one transaction: binary COPY into the staging
table, then the ``INSERT … ON CONFLICT`` upsert into the monthly-partitioned table, with partition
creation included. Candle construction is done before timing.

Cases: ``insert, batch B`` (B = 1, 100, 10,000), ``re-write identical`` (duplicates: no-ops),
``re-write changed`` (corrections: every row replaced), and ``BatchingWriter`` (submit + drain,
default batch 500).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.sinks import BatchingWriter
from candlekeeper.sinks.postgres import PostgresSink
from storage import timed_writes

Result = tuple[str, int, float]
PG_BIN = Path(os.environ.get("CANDLEKEEPER_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres_server(*, durable: bool = True) -> Iterator[str]:
    """A private PostgreSQL cluster in a temp folder of its own (owned by ``postgres`` when run
    as root, so it cannot sit inside a root-only temp folder); yields its DSN."""
    if not (PG_BIN / "initdb").exists():
        raise SystemExit(f"PostgreSQL binaries not found in {PG_BIN} (make test installs them)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(tempfile.mkdtemp(prefix="ck-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                                 "-A", "trust", "-E", "UTF8"]), check=True, capture_output=True)
    settings = (f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{root}'\nshared_buffers = 256MB\n"
                "max_wal_size = 4GB\n")
    if not durable:
        settings += "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
    with (data / "postgresql.conf").open("a") as f:
        f.write(settings)
    pg_ctl = str(PG_BIN / "pg_ctl")
    subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w",
                                 "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


async def run_postgres(dsn: str, candles: Sequence[Candle], small: int) -> list[Result]:
    """The measurements against a running server; each case in its own schema."""
    results: list[Result] = []
    for batch in (1, 100, 10_000):
        rows = candles[:small] if batch == 1 else candles
        sink = PostgresSink(dsn, schema=f"bench_{batch}", layout="partitioned")
        await sink.open()
        elapsed = await timed_writes(sink, rows, batch)
        assert await sink.count() == len(rows)
        results.append((f"insert, batch {batch:,}", len(rows), elapsed))
        if batch == 10_000:
            elapsed = await timed_writes(sink, rows, batch)
            assert await sink.count() == len(rows)
            results.append(("re-write identical (duplicates), batch 10,000", len(rows), elapsed))
            changed = [msgspec.structs.replace(c, close_str="7.6190", source="rest")
                       for c in rows]
            before = sink.rows_changed
            elapsed = await timed_writes(sink, changed, batch)
            assert sink.rows_changed - before == len(rows)
            results.append(("re-write changed (corrections), batch 10,000", len(rows), elapsed))
        await sink.close()
    sink = PostgresSink(dsn, schema="bench_writer", layout="partitioned")
    writer = BatchingWriter(sink)
    await writer.start()
    start = time.perf_counter()
    for c in candles:
        writer.submit(c)
    await writer.stop(drain_timeout_s=600.0)
    elapsed = time.perf_counter() - start
    assert writer.stats.written == len(candles)
    results.append(("BatchingWriter submit+drain (batch 500)", len(candles), elapsed))
    return results


def server_version(dsn: str) -> str:
    async def fetch() -> str:
        import asyncpg
        conn = await asyncpg.connect(dsn)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()
    return "PostgreSQL " + asyncio.run(fetch()).split()[0]


def print_table(title: str, results: Sequence[Result]) -> None:
    print(title)
    width = max(len(name) for name, _, _ in results)
    print(f"{'case':<{width}}  {'rows':>9}  {'seconds':>8}  {'rows/s':>10}  {'µs/row':>7}")
    for name, n, elapsed in results:
        print(f"{name:<{width}}  {n:>9,}  {elapsed:>8.3f}  {n / elapsed:>10,.0f}  "
              f"{elapsed / n * 1e6:>7.1f}")


def measure(candles: Sequence[Candle], small: int, *, durable: bool = True
            ) -> tuple[str, list[Result]]:
    """Start a private server, run every case, stop it; returns (title, results)."""
    with postgres_server(durable=durable) as dsn:
        results = asyncio.run(run_postgres(dsn, candles, small))
        version = server_version(dsn)
    mode = "durable: fsync + synchronous_commit on" if durable else "fsync off (--pg-fast)"
    return (f"{version}, {os.cpu_count()} CPU(s), {mode}, monthly partitions, COPY + upsert",
            results)


def main() -> None:
    from storage import make_candles  # the same candles as the SQLite figures

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows per measurement")
    parser.add_argument("--streams", type=int, default=100, help="series closing each minute")
    parser.add_argument("--fast", action="store_true", help="fsync/synchronous_commit off")
    args = parser.parse_args()
    title, results = measure(make_candles(args.rows, args.streams),
                             max(args.streams, min(args.rows, 5_000)), durable=not args.fast)
    print_table(f"{title}, {args.streams} streams", results)


if __name__ == "__main__":
    main()
