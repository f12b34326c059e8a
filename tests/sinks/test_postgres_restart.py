"""Outages of a real PostgreSQL server under a running ``BatchingWriter`` with a journal: a server
stop/start mid-run loses nothing and duplicates nothing; a process killed (``kill -9``) while the
database is down leaves a journal that the next process replays, exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from sinkkit import KEY, MINUTE, T0, make_candle

import candlekeeper
from candlekeeper.sinks import BatchingWriter
from candlekeeper.sinks.postgres import PostgresSink
from servers import PostgresServer

HERE = Path(__file__).resolve().parent
#: the child imports the candlekeeper under test (a worktree's src), not whatever is installed
SRC = Path(candlekeeper.__file__).resolve().parents[1]


async def wait_until(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_a_postgres_restart_mid_run_loses_nothing_and_duplicates_nothing(
        postgres: PostgresServer, tmp_path: Path) -> None:
    total = 3000
    sink = PostgresSink(postgres.dsn, connect_timeout_s=1.0, command_timeout_s=5.0)
    writer = BatchingWriter(sink, batch_size=50, flush_interval_s=0.01, retry_initial_s=0.02,
                            retry_max_s=0.2, write_timeout_s=5.0, journal_dir=tmp_path / "j")
    await writer.start()
    submitted = 0

    async def produce(upto: int) -> None:
        nonlocal submitted
        while submitted < upto:
            for _ in range(20):
                writer.submit(make_candle(submitted))
                submitted += 1
            await asyncio.sleep(0.002)

    await produce(1000)
    await wait_until(lambda: writer.stats.written >= 500)
    await asyncio.to_thread(postgres.stop)  # the database goes away mid-run
    await produce(2000)
    await wait_until(lambda: writer.stats.journal_rows > 0 and writer.stats.failures > 0)
    during = writer.stats
    assert during.dropped == 0 and during.written < 2000
    await asyncio.to_thread(postgres.start)  # and comes back
    await produce(total)
    await wait_until(lambda: writer.stats.pending == 0 and writer.stats.written >= total)
    s = writer.stats
    assert s.dropped == 0 and s.spilled > 0 and s.replayed == s.spilled
    rows = await sink.read(KEY)
    assert [(c.open_time - T0) // MINUTE for c in rows] == list(range(total))
    assert rows == [make_candle(i) for i in range(total)]  # every field exact
    assert sink.rows_changed == total  # no row was written twice with a change
    await writer.stop()


async def test_kill_9_during_an_outage_then_the_next_process_replays_the_journal(
        postgres: PostgresServer, tmp_path: Path) -> None:
    postgres.stop()  # down before the service even starts
    journal = tmp_path / "journal"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE), str(HERE.parent)])}
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "pg_journal_child.py"), postgres.dsn, str(journal), "500",
        stdout=asyncio.subprocess.PIPE, env=env)
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        assert line.strip() == b"spilled 500"
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    postgres.start()
    sink = PostgresSink(postgres.dsn)
    writer = BatchingWriter(sink, batch_size=50, flush_interval_s=0.0, journal_dir=journal)
    await writer.start()
    for i in range(500, 520):
        writer.submit(make_candle(i))
    await wait_until(lambda: writer.stats.pending == 0)
    assert writer.stats.replayed == 500
    assert await sink.read(KEY) == [make_candle(i) for i in range(520)]
    await writer.stop()
    [segment] = journal.glob("seg-*")
    assert segment.stat().st_size == 8  # compacted
