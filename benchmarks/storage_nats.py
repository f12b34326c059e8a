"""NATS JetStream publish rate through the real ``NatsSink`` (used by ``benchmarks/storage.py``;
also runnable alone):

    .venv/bin/python benchmarks/storage_nats.py [--rows 100000] [--streams 100]

A private ``nats-server -js`` (file storage in a temp folder, loopback, port chosen here) is
started by the benchmark and stopped at the end. Every figure counts messages **stored and
acknowledged**: ``sink.write`` publishes a batch pipelined and awaits every publish ack before
returning, exactly as in production. Each case gets its own stream (created, with the default
10-minute dedup window, before timing). Candle construction is done before timing.

Cases: ``publish, batch B`` (B = 1, 100, 10,000; batch 1 waits for each ack before sending the
next message, the worst case), ``re-publish identical`` (the same batches again: every message a
duplicate that JetStream drops by ``Nats-Msg-Id``) and ``BatchingWriter`` (submit every candle,
then ``stop()``, default batch 500).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from candlekeeper.core.candle import Candle
from candlekeeper.sinks import BatchingWriter
from candlekeeper.sinks.nats import NatsSink
from storage import timed_writes

Result = tuple[str, int, float]


@contextlib.contextmanager
def nats_server(folder: Path) -> Iterator[str]:
    """A private nats-server with JetStream; yields its URL."""
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(binary).exists():
        raise SystemExit("nats-server not found (make services installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (folder / "nats.log").open("ab") as log:
        proc = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd",
                                 str(folder / "store")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"nats-server did not start (see {folder / 'nats.log'})")
            time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def server_version() -> str:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "nats-server (unknown version)"


async def run_nats(url: str, candles: Sequence[Candle], small: int) -> list[Result]:
    """The measurements against a running server at ``url``; ``small`` rows for batch 1."""
    results: list[Result] = []
    for batch in (1, 100, 10_000):
        subset = candles[:small] if batch == 1 else candles
        sink = NatsSink(url, stream=f"BENCH{batch}", subject_prefix=f"bench{batch}.candles")
        await sink.open()
        elapsed = await timed_writes(sink, subset, batch)
        assert sink.published == len(subset), (sink.published, len(subset))
        results.append((f"NATS publish, batch {batch:,} (acks awaited)", len(subset), elapsed))
        if batch == 10_000:
            elapsed = await timed_writes(sink, subset, batch)
            assert sink.duplicates == len(subset)
            results.append(("NATS re-publish identical (deduplicated), batch 10,000",
                            len(subset), elapsed))
        await sink.close()
    sink = NatsSink(url, stream="BENCHW", subject_prefix="benchw.candles")
    writer = BatchingWriter(sink)
    await writer.start()
    start = time.perf_counter()
    for c in candles:
        writer.submit(c)
    await writer.stop(drain_timeout_s=600.0)
    elapsed = time.perf_counter() - start
    assert writer.stats.written == len(candles)
    assert sink.published == len(candles)
    results.append(("NATS BatchingWriter submit+drain (batch 500)", len(candles), elapsed))
    return results


def measure(candles: Sequence[Candle], small: int, folder: Path | None = None) -> list[Result]:
    """Start a server, run every case, stop the server."""
    with tempfile.TemporaryDirectory(dir=folder, prefix="ck-bench-nats-") as tmp, \
            nats_server(Path(tmp)) as url:
        return asyncio.run(run_nats(url, candles, small))


def print_table(results: Sequence[Result]) -> None:
    width = max(len(name) for name, _, _ in results)
    print(f"{'case':<{width}}  {'msgs':>9}  {'seconds':>8}  {'msgs/s':>10}  {'µs/msg':>7}")
    for name, n, elapsed in results:
        print(f"{name:<{width}}  {n:>9,}  {elapsed:>8.3f}  {n / elapsed:>10,.0f}  "
              f"{elapsed / n * 1e6:>7.1f}")


def main() -> None:
    from storage import make_candles  # the SQLite benchmark's candle factory

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="messages per measurement")
    parser.add_argument("--streams", type=int, default=100, help="series closing each minute")
    args = parser.parse_args()
    candles = make_candles(args.rows, args.streams)
    results = measure(candles, small=max(args.streams, min(args.rows, 5_000)))
    print(f"{server_version()}, file storage, {args.streams} streams")
    print_table(results)


if __name__ == "__main__":
    main()
