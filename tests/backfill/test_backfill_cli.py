"""``candlekeeper backfill`` and ``gaps`` as real processes against the simulator: resume after a
``kill -9`` with no duplicate and no hole, audit a deleted hole, ``--repair`` it, unfillable."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from pathlib import Path

from backfillkit import mid_minute, rest_fields

from candlekeeper.backfill.derive_cli import fmt_time
from candlekeeper.backfill.planner import missing_ranges
from candlekeeper.core.candle import Candle
from candlekeeper.core.derived import DerivedSeries, parse_derived
from candlekeeper.core.intervals import MINUTE, align
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sim import Simulator
from candlekeeper.sinks.sqlite import SQLiteSink

USDM = "binance-usdm"


def write_config(tmp_path: Path, sim: Simulator, symbols: list[str]) -> Path:
    db = tmp_path / "candles.sqlite"
    path = tmp_path / "config.yaml"
    path.write_text(f"""
feeds:
  - venue: {USDM}
    symbols: [{", ".join(symbols)}]
    intervals: [1m]
    rest_url: {sim.rest_base(USDM)}
sinks:
  sqlite:
    path: {db}
""")
    return path


async def cli(*args: str, timeout: float = 60.0) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "candlekeeper", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def stored(db: Path, key: StreamKey) -> list[Candle]:
    async def read() -> list[Candle]:
        sink = SQLiteSink(db)
        await sink.open()
        try:
            return sink.read(key)
        finally:
            await sink.close()
    return asyncio.run(read())


def count_rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM candles").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


async def read_stored(db: Path, key: StreamKey) -> list[Candle]:
    return await asyncio.to_thread(stored, db, key)


async def test_backfill_killed_midway_resumes_without_duplicates_or_holes(
        tmp_path: Path) -> None:
    history = 12_000
    symbols = ["BTCUSDT", "ETHUSDT"]
    # a tight weight window keeps the run long enough to kill it in the middle
    async with Simulator(venues=(USDM,), symbols=symbols, intervals=("1m",),
                         start_time_ms=mid_minute(), history=history,
                         rest_window_s=1.0, rest_weight_limit=20) as sim:
        config = write_config(tmp_path, sim, symbols)
        db = tmp_path / "candles.sqlite"
        truths = {s: sim.closed_candles(USDM, s, "1m") for s in symbols}  # warm the cache
        start = truths["BTCUSDT"][0].open_time
        args = ("backfill", "-c", str(config), "--start", str(start), "--rest-weight-limit",
                "20", "--rest-window-s", "1")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "candlekeeper", *args, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        for _ in range(600):
            await asyncio.sleep(0.05)
            if count_rows(db) >= 3000:
                break
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        partial = count_rows(db)
        assert 3000 <= partial < 2 * history, partial
        code, out = await cli(*args)
        assert code == 0, out
        assert "backfill: 2 stream(s)" in out and "0 rate-limit answers" in out, out
        for symbol in symbols:
            key = StreamKey(USDM, symbol, "1m")
            rows = await read_stored(db, key)
            times = [c.open_time for c in rows]
            assert len(times) == len(set(times)) >= history
            assert missing_ranges(times, "1m", start, times[-1] + MINUTE) == []
            truth = [c for c in sim.closed_candles(USDM, symbol, "1m") if c.open_time <= times[-1]]
            assert [rest_fields(c) for c in rows] == [rest_fields(c) for c in truth]
        # a third run has nothing left to fetch but what closed since
        code, out = await cli(*args)
        assert code == 0 and "2 stream(s)" in out, out
        assert sim.stats()[USDM].rest.rejected_429 == 0


async def test_gaps_detects_a_deleted_hole_and_repair_fills_it(tmp_path: Path) -> None:
    async with Simulator(venues=(USDM,), symbols=["BTCUSDT", "ETHUSDT"], intervals=("1m",),
                         start_time_ms=mid_minute(), history=600) as sim:
        config = write_config(tmp_path, sim, ["BTCUSDT"])
        db = tmp_path / "candles.sqlite"
        truth = sim.closed_candles(USDM, "BTCUSDT", "1m")
        start = truth[0].open_time
        code, out = await cli("backfill", "-c", str(config), "--start", str(start))
        assert code == 0, out
        code, out = await cli("gaps", "-c", str(config))
        assert code == 0 and "no gaps" in out, out
        hole = (truth[200].open_time, truth[250].open_time)
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM candles WHERE open_time >= ? AND open_time < ?", hole)
            conn.execute("DELETE FROM candles WHERE open_time = ?", (truth[400].open_time,))
        code, out = await cli("gaps", "-c", str(config))
        assert code == 1, out
        assert "2 gap(s), 51 missing" in out and "(50 candles)" in out and "(1 candles)" in out
        code, out = await cli("gaps", "-c", str(config), "--repair")
        assert code == 0, out
        assert "51 candles repaired, no gaps left" in out, out
        code, out = await cli("gaps", "-c", str(config))
        assert code == 0, out
        rows = await read_stored(db, StreamKey(USDM, "BTCUSDT", "1m"))
        want = [c for c in truth if c.open_time <= rows[-1].open_time]
        assert [rest_fields(c) for c in rows] == [rest_fields(c) for c in want]
        # a configured-elsewhere symbol with nothing stored is reported, exit 1
        code, out = await cli("gaps", "-c", str(config), "--symbols", "ETHUSDT")
        assert code == 1 and "ETHUSDT 1m: nothing stored" in out, out
        # a candle the venue never had: reported as unfillable after one try, exit 3
        old = start - 30 * MINUTE
        with sqlite3.connect(db) as conn:
            conn.execute("INSERT INTO candles SELECT venue, symbol, interval, ?, ?, open, high, "
                         "low, close, volume, quote_volume, trades, taker_buy_base_volume, "
                         "taker_buy_quote_volume, first_trade_id, last_trade_id, closed, "
                         "event_time, source, ingested_at FROM candles WHERE open_time = ?",
                         (old, old + MINUTE - 1, start))
        code, out = await cli("gaps", "-c", str(config), "--repair")
        assert code == 3, out
        assert "unfillable" in out and "29 candle(s)" in out, out
        code, out = await cli("gaps", "-c", str(config), "--start", "2020-01-01", "--end",
                              "2020-01-02")
        assert code == 1 and "1440 missing" in out, out


async def test_bad_arguments_fail_clearly(tmp_path: Path) -> None:
    async with Simulator(venues=(USDM,), symbols=["BTCUSDT"], intervals=("1m",),
                         start_time_ms=mid_minute(), history=10) as sim:
        config = write_config(tmp_path, sim, ["BTCUSDT"])
        code, out = await cli("backfill", "-c", str(config), "--start", "yesterday")
        assert code == 2 and "expected 'now', Unix ms or an ISO date" in out, out
        code, out = await cli("backfill", "-c", str(config), "--start", "2024-01-01",
                              "--intervals", "7m")
        assert code == 2 and "has no interval '7m'" in out, out
        code, out = await cli("gaps", "-c", str(config), "--venue", "binance-spot")
        assert code == 2 and "not in the config" in out, out
        now = align(sim.clock.time_ms(), "1m")
        code, out = await cli("backfill", "-c", str(config), "--start", str(now - 5 * MINUTE),
                              "--symbols", "NOPEUSDT")
        assert code == 1 and "NOPEUSDT 1m: FAILED" in out and "Invalid symbol" in out, out


def derived_config(tmp_path: Path, sim: Simulator, feed: str) -> tuple[Path, Path]:
    """A one-feed USDⓈ-M config (``feed``: its symbols/intervals/anchor lines) over the
    simulator into SQLite: (config path, database path)."""
    db = tmp_path / "candles.sqlite"
    config = tmp_path / "config.yaml"
    config.write_text(f"""
feeds:
  - venue: {USDM}
{feed}    rest_url: {sim.rest_base(USDM)}
sinks:
  sqlite:
    path: {db}
""")
    return config, db


def live_derived(name: str, base: list[Candle]) -> list[Candle]:
    """What the live path builds from these base closes (the derived stream's series)."""
    out: list[Candle] = []
    series = DerivedSeries(parse_derived(name), out.append)
    for c in base:
        series.offer(c)
    return out


async def test_a_derived_interval_backfills_its_base_then_builds_its_history(
        tmp_path: Path) -> None:
    """A config asking for 10m and 1h@1m (derived from 1m): backfill fetches the 1m base the
    venue serves, then builds the derived history from it, equal to what the live path builds
    from the same candles; gaps audits the derived series, says which missing bucket its base
    explains, and --repair fills the base over REST then rebuilds the derived buckets."""
    async with Simulator(venues=(USDM,), symbols=["BTCUSDT"], intervals=("1m",),
                         start_time_ms=mid_minute(), history=300) as sim:
        config, db = derived_config(tmp_path, sim, "    symbols: [BTCUSDT]\n"
                                    "    intervals: [10m, 1h@1m]\n")
        truth = sim.closed_candles(USDM, "BTCUSDT", "1m")
        code, out = await cli("backfill", "-c", str(config), "--start", str(truth[0].open_time))
        assert code == 0, out
        assert "BTCUSDT 1m" in out and "BTCUSDT 10m (from 1m): " in out, out
        assert "BTCUSDT 1h (from 1m): " in out and "not built" not in out, out
        base = await read_stored(db, StreamKey(USDM, "BTCUSDT", "1m"))
        assert len(base) >= 300
        assert [rest_fields(c) for c in base] == [rest_fields(c) for c in truth[:len(base)]]
        ten = await read_stored(db, StreamKey(USDM, "BTCUSDT", "10m"))
        hour = await read_stored(db, StreamKey(USDM, "BTCUSDT", "1h"))
        assert len(ten) >= 29 and len(hour) >= 4, out
        assert f"10m (from 1m): {len(ten)} built" in out, out
        assert ten == live_derived("10m", base) and hour == live_derived("1h", base)
        code, out = await cli("gaps", "-c", str(config))
        assert code == 0 and f"10m (from 1m): {len(ten)} candles, no gaps" in out, out
        assert "3 stream(s) audited (2 derived), 0 with gaps, 0 empty" in out, out
        # idempotent: a second backfill builds nothing and leaves the rows as they were
        code, out = await cli("backfill", "-c", str(config), "--start", str(truth[0].open_time))
        assert code == 0 and "10m (from 1m): 0 built" in out, out
        assert await read_stored(db, StreamKey(USDM, "BTCUSDT", "10m")) == ten
        # lose two 10m candles, and a 1m candle inside the second of them
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM candles WHERE interval = '10m' AND open_time IN (?, ?)",
                         (ten[5].open_time, ten[9].open_time))
            conn.execute("DELETE FROM candles WHERE interval = '1m' AND open_time = ?",
                         (ten[9].open_time + 4 * MINUTE,))
        code, out = await cli("gaps", "-c", str(config))
        assert code == 1, out
        assert "10m (from 1m): " in out and "2 gap(s), 2 missing" in out, out
        assert "(1 candles; the 1m base is complete: --repair rebuilds them)" in out, out
        assert "(1 candles; 1 with a hole in the 1m base)" in out, out
        assert f"1h (from 1m): {len(hour)} candles, no gaps" in out, out  # 18:00 is stored
        code, out = await cli("gaps", "-c", str(config), "--repair")
        assert code == 0, out
        assert "1 candles repaired, no gaps left" in out, out
        assert "10m (from 1m): 2 built" in out, out
        assert await read_stored(db, StreamKey(USDM, "BTCUSDT", "10m")) == ten
        code, out = await cli("gaps", "-c", str(config))
        assert code == 0, out
        # --intervals takes a derived interval as well: only that one and its base
        code, out = await cli("gaps", "-c", str(config), "--intervals", "10m")
        assert code == 0 and "2 stream(s) audited (1 derived)" in out and "1h" not in out, out


async def test_gaps_of_all_symbols_audits_a_derived_series_never_built(tmp_path: Path) -> None:
    """`symbols: all` audits what is stored: a derived interval whose base is stored but which
    was never built (the base backfilled before derived history existed) is audited as missing
    where its base is complete, and --repair builds it."""
    async with Simulator(venues=(USDM,), symbols=["BTCUSDT"], intervals=("1m",),
                         start_time_ms=mid_minute(), history=120) as sim:
        config, db = derived_config(tmp_path, sim, "    symbols: all\n"
                                    "    intervals: [10m]\n")
        truth = sim.closed_candles(USDM, "BTCUSDT", "1m")
        code, out = await cli("backfill", "-c", str(config), "--symbols", "BTCUSDT",
                              "--start", str(truth[0].open_time))
        assert code == 0, out
        ten = await read_stored(db, StreamKey(USDM, "BTCUSDT", "10m"))
        assert len(ten) >= 10, out
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM candles WHERE interval = '10m'")
        code, out = await cli("gaps", "-c", str(config))
        assert code == 1, out
        assert (f"BTCUSDT 10m (from 1m): 0 candles, 1 gap(s), {len(ten)} missing" in out
                and "the 1m base is complete" in out), out
        code, out = await cli("gaps", "-c", str(config), "--repair")
        assert code == 0 and f"10m (from 1m): {len(ten)} built" in out, out
        assert await read_stored(db, StreamKey(USDM, "BTCUSDT", "10m")) == ten
        # from an hour before the venue's history: those buckets have no base, counted in
        # one line, nothing written for them
        start = truth[0].open_time - 60 * MINUTE
        first = (start + 599_999) // 600_000 * 600_000
        skipped = (ten[0].open_time - first) // 600_000
        code, out = await cli("backfill", "-c", str(config), "--symbols", "BTCUSDT",
                              "--start", str(start))
        assert code == 0, out
        lines = [line for line in out.splitlines() if "10m (from 1m)" in line]
        assert lines == [f"{USDM} BTCUSDT 10m (from 1m): 0 built from the stored 1m; "
                         f"{skipped} bucket(s) not built, their 1m base is incomplete "
                         f"({skipped - (truth[0].open_time % 600_000 != 0)} with none stored;"
                         f" first at {fmt_time(first)})"], out
        assert await read_stored(db, StreamKey(USDM, "BTCUSDT", "10m")) == ten


async def test_an_anchored_day_backfills_equal_to_the_live_series(tmp_path: Path) -> None:
    """`1d+08:00` (days opening at 16:00 UTC): backfill builds every whole day of the range
    from the 1m base, equal to what the live path builds from the same candles."""
    async with Simulator(venues=(USDM,), symbols=["BTCUSDT"], intervals=("1m",),
                         start_time_ms=mid_minute(), history=3000) as sim:
        config, db = derived_config(tmp_path, sim, "    symbols: [BTCUSDT]\n"
                                    "    intervals: [1d]\n"
                                    "    anchor: UTC+8\n")
        truth = sim.closed_candles(USDM, "BTCUSDT", "1m")
        code, out = await cli("backfill", "-c", str(config), "--start", str(truth[0].open_time))
        assert code == 0 and "BTCUSDT 1d+08:00 (from 1m): " in out, out
        base = await read_stored(db, StreamKey(USDM, "BTCUSDT", "1m"))
        days = await read_stored(db, StreamKey(USDM, "BTCUSDT", "1d+08:00"))
        assert len(days) >= 1 and all(c.open_time % 86_400_000 == 57_600_000 for c in days)
        assert f"1d+08:00 (from 1m): {len(days)} built" in out, out
        assert days == live_derived("1d+08:00", base)
        code, out = await cli("gaps", "-c", str(config))
        assert code == 0 and f"1d+08:00 (from 1m): {len(days)} candles, no gaps" in out, out
