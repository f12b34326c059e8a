"""``candlekeeper run`` as a real process against the simulator, stopped by real signals:
sinks drain in parallel under one deadline, a second signal forces the exit, the exit status
says whether candles were left unwritten, a busy /health port is not fatal, and a start-up
failure is one line."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from candlekeeper.sim import Simulator
from servers import free_port

pytestmark = pytest.mark.integration

VENUE = "binance-usdm"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
SPEED = 300.0
PG_PASSWORD = "Pg-Pass-4f9e2"
NATS_PASSWORD = "Nats-Pass-77c1"


def base_config(sim: Simulator, db: Path, extra: str = "", *, port: int = 0,
                symbols: tuple[str, ...] = SYMBOLS) -> str:
    return f"""
feeds:
  - venue: {VENUE}
    symbols: [{", ".join(symbols)}]
    intervals: [1m]
    ws_url: {sim.ws_base(VENUE)}
    rest_url: {sim.rest_base(VENUE)}
clock: {{speed: {SPEED}, start_ms: {sim.clock.start_ms},
        monotonic_origin: {sim.clock.monotonic_origin!r}}}
gap_fill: {{history: 5}}
observability: {{http: {{port: {port}}}, dashboard: false}}
sinks:
  sqlite: {{path: '{db}', flush_interval_s: 0.1}}
{extra}"""


def dead_backends(drain_s: float) -> str:
    """PostgreSQL and NATS sinks whose servers are not running (closed ports), memory only."""
    return f"""
  postgres:
    enabled: true
    dsn: postgresql://candles:{PG_PASSWORD}@127.0.0.1:{free_port()}/candles
    journal_dir: null
    retry_max_s: 0.5
  nats:
    enabled: true
    servers: [nats://127.0.0.1:{free_port()}]
    user: candles
    password: {NATS_PASSWORD}
    journal_dir: null
    retry_max_s: 0.5
    connect_timeout_s: 1
shutdown: {{drain_timeout_s: {drain_s}}}
"""


class Proc:
    """A running ``candlekeeper run`` with its stderr collected line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.err: list[str] = []
        self.out = ""
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.err.append(raw.decode(errors="replace"))

    async def wait_for_line(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        async with asyncio.timeout(timeout):
            while True:
                for line in self.err:
                    found = re.search(pattern, line)
                    if found:
                        return found
                if self.proc.returncode is not None:
                    raise AssertionError(f"exited before {pattern!r}:\n{self.stderr}")
                await asyncio.sleep(0.05)

    async def finish(self, timeout: float = 60.0) -> int:
        assert self.proc.stdout is not None
        out = await asyncio.wait_for(self.proc.stdout.read(), timeout)
        self.out = out.decode(errors="replace")
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._reader
        return code

    @property
    def stderr(self) -> str:
        return "".join(self.err)


@asynccontextmanager
async def run_service(config: Path, *args: str) -> AsyncIterator[Proc]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "candlekeeper", "run", "-c", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    wrapped = Proc(proc)
    try:
        yield wrapped
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def health_url(p: Proc) -> str:
    found = await p.wait_for_line(r"serving /metrics and /health on (http://\S+)")
    return found.group(1)


async def wait_health(url: str, cond: Callable[[dict[str, object]], bool],
                      timeout: float = 60.0) -> dict[str, object]:
    async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
        while True:
            async with http.get(f"{url}/health") as resp:
                body: dict[str, object] = json.loads(await resp.text())
            if cond(body):
                return body
            await asyncio.sleep(0.1)


def pending(body: dict[str, object]) -> dict[str, int]:
    sinks = body["sinks"]
    assert isinstance(sinks, list)
    return {row["name"]: row["pending"] for row in sinks}


def assert_clean_output(p: Proc) -> None:
    text = p.stderr + p.out
    assert "Traceback" not in text, text
    assert PG_PASSWORD not in text and NATS_PASSWORD not in text


async def test_sinks_drain_in_parallel_and_exit_status_says_candles_were_lost(
        tmp_path: Path) -> None:
    """Two dead backends, 4 s deadline: the shutdown takes about 4 s (one after the other it
    took 8), and the process exits 3 naming what was not written."""
    drain = 4.0
    cfg = tmp_path / "c.yaml"
    async with Simulator(venues=(VENUE,), symbols=SYMBOLS, intervals=("1m",), speed=SPEED,
                         seed=3) as sim:
        cfg.write_text(base_config(sim, tmp_path / "c.sqlite", dead_backends(drain)))
        async with run_service(cfg) as p:
            url = await health_url(p)
            await wait_health(url, lambda b: min(pending(b).get(n, 0)
                                                 for n in ("postgres", "nats")) > 0)
            t0 = time.monotonic()
            p.proc.send_signal(signal.SIGTERM)
            code = await p.finish()
            elapsed = time.monotonic() - t0
    assert code == 3, p.stderr
    assert drain - 0.5 <= elapsed < 2 * drain - 0.5, f"shutdown took {elapsed:.1f}s"
    assert re.search(r"candlekeeper: sink postgres: \d+ candle\(s\) not written", p.stderr)
    assert re.search(r"candlekeeper: sink nats: \d+ candle\(s\) not written", p.stderr)
    assert "SIGTERM received: stopping; the sinks drain for up to 4s" in p.stderr
    assert "per-stream statistics" in p.out
    assert_clean_output(p)
    with sqlite3.connect(tmp_path / "c.sqlite") as conn:  # the healthy sink wrote its share
        assert conn.execute("SELECT COUNT(*) FROM candles").fetchone()[0] > 0


async def test_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    async with Simulator(venues=(VENUE,), symbols=SYMBOLS, intervals=("1m",), speed=SPEED,
                         seed=4) as sim:
        cfg.write_text(base_config(sim, tmp_path / "c.sqlite", dead_backends(120.0)))
        async with run_service(cfg) as p:
            url = await health_url(p)
            await wait_health(url, lambda b: pending(b).get("postgres", 0) > 0)
            p.proc.send_signal(signal.SIGTERM)
            await p.wait_for_line("SIGTERM received: stopping")
            t0 = time.monotonic()
            p.proc.send_signal(signal.SIGINT)
            code = await p.finish(timeout=30)
            elapsed = time.monotonic() - t0
    assert code == 128 + signal.SIGINT, p.stderr
    assert elapsed < 5, f"the forced exit took {elapsed:.1f}s"
    assert "candlekeeper: second SIGINT: exiting now without draining the sinks" in p.stderr
    assert_clean_output(p)


async def test_everything_written_exits_zero(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    async with Simulator(venues=(VENUE,), symbols=SYMBOLS, intervals=("1m",), speed=SPEED,
                         seed=5) as sim:
        cfg.write_text(base_config(sim, tmp_path / "c.sqlite"))
        async with run_service(cfg) as p:
            url = await health_url(p)
            await wait_health(url, lambda b: b["status"] == "ok")
            p.proc.send_signal(signal.SIGINT)
            code = await p.finish()
    assert code == 0, p.stderr
    assert "not written" not in p.stderr
    assert_clean_output(p)


async def test_two_shards_on_one_host_with_the_same_http_port(tmp_path: Path) -> None:
    """The second instance cannot bind /health: one line, a counter, and it keeps ingesting."""
    port = free_port()
    symbols = (*SYMBOLS, "BNBUSDT", "XRPUSDT")  # shard 0/2 owns four of them, 1/2 two
    async with Simulator(venues=(VENUE,), symbols=symbols, intervals=("1m",), speed=SPEED,
                         seed=6) as sim:
        procs = []
        for k in range(2):
            cfg = tmp_path / f"shard{k}.yaml"
            cfg.write_text(base_config(sim, tmp_path / f"shard{k}.sqlite", port=port,
                                       symbols=symbols))
            procs.append(run_service(cfg, "--shard", f"{k}/2", "--duration", "8"))
        async with procs[0] as first:
            await first.wait_for_line("serving /metrics and /health")
            async with procs[1] as second:
                line = await second.wait_for_line(r"cannot serve health/metrics on .*")
                codes = [await first.finish(), await second.finish()]
    assert codes == [0, 0], second.stderr
    assert f"127.0.0.1:{port}: Address already in use;" in line.group(0)
    assert "continuing without /metrics and /health" in line.group(0)
    for k, p in enumerate((first, second)):
        assert_clean_output(p)
        with sqlite3.connect(tmp_path / f"shard{k}.sqlite") as conn:
            assert conn.execute("SELECT COUNT(*) FROM candles").fetchone()[0] > 0


async def test_a_start_up_failure_is_one_line(tmp_path: Path) -> None:
    """What config validation cannot know (a file that is not a database) is one line and
    exit status 1, never a traceback."""
    db = tmp_path / "not-a-db.sqlite"
    db.write_bytes(b"this is not an SQLite database, just bytes " * 100)
    cfg = tmp_path / "c.yaml"
    with socket.socket() as s:  # a REST/WS port where nothing answers: no simulator needed
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    cfg.write_text(f"""
feeds:
  - {{venue: {VENUE}, symbols: [BTCUSDT], ws_url: 'ws://127.0.0.1:{dead}/market',
      rest_url: 'http://127.0.0.1:{dead}'}}
observability: {{http: {{port: 0}}, dashboard: false}}
sinks:
  sqlite: {{path: '{db}'}}
""")
    async with run_service(cfg, "--duration", "5") as p:
        code = await p.finish()
    assert code == 1, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("candlekeeper: cannot run:")]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
