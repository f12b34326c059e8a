"""Restarts never duplicate rows: a new SQLiteSink on the same file, a new process after a clean
exit, after SIGTERM (graceful shutdown flushes) and after SIGKILL mid-write."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sinkkit import KEY, make_candle

from candlekeeper.sinks import BatchingWriter
from candlekeeper.sinks.sqlite import SQLiteSink

CHILD = Path(__file__).with_name("writer_child.py")


def spawn(db: Path, start: int, stop: int, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(CHILD), str(db), str(start), str(stop), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_child(db: Path, start: int, stop: int) -> None:
    proc = spawn(db, start, stop, "exit")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.splitlines()[-1] == f"done {stop - start}"


def stored(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return conn.execute("SELECT open_time, close, source FROM candles "
                            "ORDER BY open_time").fetchall()


async def assert_exact_series(db: Path, n: int) -> None:
    sink = SQLiteSink(db)
    await sink.open()
    try:
        assert sink.count() == n
        assert sink.read(KEY) == [make_candle(i) for i in range(n)]
    finally:
        await sink.close()


async def test_new_sink_on_the_same_file_adds_no_duplicates(db_path: Path) -> None:
    for start, stop in ((0, 100), (50, 150), (0, 150)):
        writer = BatchingWriter(SQLiteSink(db_path), batch_size=40, flush_interval_s=60.0)
        await writer.start()
        for i in range(start, stop):
            writer.submit(make_candle(i))
        await writer.stop()
        assert writer.stats.written == stop - start
    await assert_exact_series(db_path, 150)


@pytest.mark.timeout(60)
async def test_process_restart_after_clean_exit(db_path: Path) -> None:
    run_child(db_path, 0, 200)
    run_child(db_path, 100, 300)
    assert len(stored(db_path)) == 300
    await assert_exact_series(db_path, 300)


@pytest.mark.timeout(60)
async def test_sigterm_flushes_pending_candles(db_path: Path) -> None:
    proc = spawn(db_path, 0, 300, "sigterm")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready 300"  # all pending, none flushed yet
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.strip() == "done 300"
    await assert_exact_series(db_path, 300)


@pytest.mark.timeout(60)
async def test_process_killed_mid_write_then_restarted(db_path: Path) -> None:
    proc = spawn(db_path, 0, 1_000_000, "slow")
    assert proc.stdout is not None
    written = 0
    while written < 200:
        line = proc.stdout.readline()
        assert line, f"child ended early: {proc.stderr.read() if proc.stderr else ''}"
        written = int(line.split()[1])
    proc.kill()  # SIGKILL: no shutdown code runs
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    rows = stored(db_path)  # committed batches survived, the file is intact
    n = len(rows)
    assert 200 <= n < 1_000_000
    assert n % 10 == 0  # whole batches only
    assert [r[0] for r in rows] == [make_candle(i).open_time for i in range(n)]
    run_child(db_path, 0, n + 500)  # the restarted process rewrites the overlap
    await assert_exact_series(db_path, n + 500)
