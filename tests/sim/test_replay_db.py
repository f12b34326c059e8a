"""``simulate --replay-db``: candles a service stored, served by the simulator as its market —
REST klines and WebSocket closes equal to the stored ones (SQLite; PostgreSQL through the same
loader), and the command line around it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from candlekeeper import CandleFeed
from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError
from candlekeeper.gapfill import GapFillOptions
from candlekeeper.sim import Simulator
from candlekeeper.sim.replay_db import load_replay_db
from candlekeeper.sinks.postgres import PostgresSink
from candlekeeper.sinks.sqlite import SQLiteSink
from servers import PostgresServer
from storedkit import T0, VENUE, series


def realistic(candles: list[Candle]) -> list[Candle]:
    """storedkit's 30-digit quote volumes are beyond the simulator's decimal context (it
    splits volumes into intra-candle parts); a market's are not."""
    return [msgspec.structs.replace(c, quote_volume_str=f"{1000 + i}.{i % 100:02d}")
            for i, c in enumerate(candles)]


BTC = realistic(series(StreamKey(VENUE, "BTCUSDT", "1m"), 400))
ETH = realistic(series(StreamKey(VENUE, "ETHUSDT", "1m"), 400, price=31_000))
#: a coarser stored stream: listed as served, but aggregated from the 1m series (as for a file)
ETH_5M = realistic(series(StreamKey(VENUE, "ETHUSDT", "5m"), 80, price=31_000))
SPEED = 600.0  # ten 1m candles per wall second


def market_values(c: Candle) -> tuple[object, ...]:
    """What the stored market is: every value but the trade ids (the simulator numbers trades
    itself) and who delivered it."""
    return (c.symbol, c.interval, c.open_time, c.close_time, c.open_str, c.high_str, c.low_str,
            c.close_str, c.volume_str, c.quote_volume_str, c.trades, c.taker_buy_base_volume_str,
            c.taker_buy_quote_volume_str)


STORED = {(c.symbol, c.open_time): market_values(c) for c in (*BTC, *ETH)}


async def store(path: Path) -> None:
    sink = SQLiteSink(path)
    await sink.open()
    await sink.write([*BTC, *ETH, *ETH_5M])
    await sink.close()


async def closes_from(ws_url: str, rest_url: str, sim_clock: object, want: int
                      ) -> tuple[list[Candle], list[Candle]]:
    feed = CandleFeed(VENUE, ["BTCUSDT", "ETHUSDT"], ["1m"], ws_url=ws_url, rest_url=rest_url,
                      clock=sim_clock, gap_fill=GapFillOptions(history=30))  # type: ignore[arg-type]
    seen: list[Candle] = []
    history: list[Candle] = []
    feed.on_closed(seen.append)
    feed.on_history(history.extend)
    async with feed:
        async with asyncio.timeout(60):
            while len(seen) < want:
                await asyncio.sleep(0.05)
    return seen, history


async def test_the_simulator_serves_the_stored_series(tmp_path: Path) -> None:
    db = tmp_path / "stored.db"
    await store(db)
    stored = await load_replay_db(db)
    assert (stored.venue, stored.symbols, stored.intervals) == (VENUE, ["BTCUSDT", "ETHUSDT"],
                                                                ("1m", "5m"))
    assert [s.interval for s in stored.series] == ["1m", "1m"]  # the finest stored interval
    async with Simulator(venues=(stored.venue,), symbols=stored.symbols,
                         intervals=stored.intervals, replay=stored.series, speed=SPEED,
                         update_interval_s=0.05) as sim:
        seen, history = await closes_from(sim.ws_base(VENUE), sim.rest_base(VENUE), sim.clock,
                                          want=30)
        # the simulator's own truth is the stored series too
        truth = sim.closed_candles(VENUE, "ETHUSDT", "5m")
    assert len(history) == 60 and all(STORED[(c.symbol, c.open_time)] == market_values(c)
                                      for c in history)
    for c in seen:  # every live close is the stored candle, field for field
        assert STORED[(c.symbol, c.open_time)] == market_values(c), c
    for sym in ("BTCUSDT", "ETHUSDT"):
        times = [c.open_time for c in seen if c.symbol == sym]
        assert times == sorted(set(times)) and len(times) >= 10
        assert times[0] == max(c.open_time for c in history if c.symbol == sym) + 60_000
    one = {c.open_time: c for c in ETH}  # 5m is aggregated from the stored 1m series
    assert truth and all(c.open_str == one[c.open_time].open_str and
                         c.close_str == one[c.open_time + 4 * 60_000].close_str for c in truth)


async def test_from_postgresql_and_the_loader_errors(postgres: PostgresServer,
                                                     tmp_path: Path) -> None:
    sink = PostgresSink(postgres.dsn)
    await sink.open()
    await sink.write([*BTC, *ETH])
    await sink.close()
    stored = await load_replay_db(postgres.dsn, symbols=["ETHUSDT"], start=T0 + 60 * 60_000)
    (eth,) = stored.series
    assert [(r.open_time, str(r.close)) for r in eth.rows] == [
        (c.open_time, c.close_str) for c in ETH[60:]]
    with pytest.raises(ConfigError, match="nothing stored for venue"):
        await load_replay_db(postgres.dsn, venue="okx-swap")
    sink = PostgresSink(postgres.dsn)
    await sink.open()
    await sink.write([msgspec.structs.replace(c, venue="okx-swap") for c in BTC[:50]])
    await sink.close()
    with pytest.raises(ConfigError, match=r"several venues \(binance-usdm, okx-swap\)"):
        await load_replay_db(postgres.dsn)
    okx = await load_replay_db(postgres.dsn, venue="okx-swap")
    assert okx.symbols == ["BTCUSDT"] and len(okx.series[0].rows) == 50
    with pytest.raises(ConfigError, match="no SQLite database"):
        await load_replay_db(tmp_path / "missing.db")


def test_cli_serves_a_stored_market(tmp_path: Path) -> None:
    db = tmp_path / "stored.db"
    asyncio.run(store(db))
    cmd = [sys.executable, "-m", "candlekeeper", "simulate", "--replay-db", str(db),
           "--speed", str(SPEED), "--duration", "60", "--intervals", "1m"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        urls = re.search(r"ws (\S+)\s+rest (\S+)", lines[0])
        clock = re.search(r"start_ms: (\d+), monotonic_origin: ([\d.]+)", "".join(lines))
        assert urls and clock and lines[0].startswith(VENUE), lines
        assert "2 symbols, intervals 1m" in lines[1]
        from candlekeeper.core.clock import ScaledClock

        sim_clock = ScaledClock(int(clock.group(1)), SPEED,
                                monotonic_origin=float(clock.group(2)))
        seen, _ = asyncio.run(closes_from(urls.group(1), urls.group(2), sim_clock, want=10))
        assert all(STORED[(c.symbol, c.open_time)] == market_values(c) for c in seen)
    finally:
        proc.terminate()
        proc.wait(30)
    bad = subprocess.run([*cmd[:5], str(tmp_path / "none.db")], capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode == 2 and "--replay-db: no SQLite database at" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    both = subprocess.run([*cmd[:6], "--replay", str(db)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert both.returncode == 2 and "not both" in both.stderr
