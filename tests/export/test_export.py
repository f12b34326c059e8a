"""``candlekeeper export``: stored candles out to CSV, JSON Lines and Parquet, exactly, paged,
with each stream's gap audit in the file's metadata; from SQLite and from a real PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import json
import random
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from candlekeeper.backfill.planner import count_open_times, missing_ranges
from candlekeeper.cli import main
from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import INTERVAL_MS, next_open
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.export import COLUMNS, META_KEY, StreamAuditor
from candlekeeper.sinks.postgres import PostgresSink
from candlekeeper.sinks.sqlite import SQLiteSink
from servers import PostgresServer
from storedkit import BTC_1M, ETH_5M, T0, VENUE, series

BTC = series(BTC_1M, 100, holes=(0, 1, 40, 41, 42, 77))
ETH = series(ETH_5M, 30, holes=(10,))


def store_sqlite(path: Path, *batches: Sequence[Candle]) -> None:
    async def go() -> None:
        sink = SQLiteSink(path)
        await sink.open()
        for b in batches:
            await sink.write(b)
        await sink.close()
    asyncio.run(go())


def as_text(c: Candle) -> dict[str, str]:
    """A candle as the CSV cells it must become."""
    values = [c.venue, c.symbol, c.interval, c.open_time, c.close_time, c.open_str, c.high_str,
              c.low_str, c.close_str, c.volume_str, c.quote_volume_str, c.trades,
              c.taker_buy_base_volume_str, c.taker_buy_quote_volume_str, c.first_trade_id,
              c.last_trade_id, "true" if c.closed else "false", c.event_time, c.source]
    return {k: "" if v is None else str(v) for k, v in zip(COLUMNS, values, strict=True)}


def as_json(c: Candle) -> dict[str, Any]:
    row: dict[str, Any] = as_text(c)
    for k in ("open_time", "close_time", "trades", "first_trade_id", "last_trade_id",
              "event_time"):
        row[k] = None if row[k] == "" else int(row[k])
    for k in ("quote_volume", "taker_buy_base_volume", "taker_buy_quote_volume"):
        row[k] = row[k] or None
    row["closed"] = c.closed
    return row


def export(*args: str) -> Any:
    result = CliRunner().invoke(main, ["export", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return result


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "candles.db"
    store_sqlite(path, BTC, ETH)
    return path


def test_csv_is_every_stored_candle_exactly_paged(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.csv"
    res = export("--db", str(db), "-o", str(out), "--page-rows", "7")
    rows = list(csv.DictReader(out.open()))
    assert rows == [as_text(c) for c in (*BTC, *ETH)]  # streams one after another, sorted
    assert f"{len(BTC) + len(ETH)} rows of 2 stream(s)" in res.stderr
    meta = json.loads((tmp_path / "all.csv.meta.json").read_text())
    assert meta["rows"] == len(BTC) + len(ETH) and meta["format"] == "csv"
    btc, eth = meta["streams"]
    # no --start/--end: from each stream's first to its last stored candle, interior holes
    assert (btc["start"], btc["end"]) == (BTC[0].open_time, next_open(BTC[-1].open_time, "1m"))
    assert btc["first_holes"] == [list(h) for h in missing_ranges(
        [c.open_time for c in BTC], "1m", btc["start"], btc["end"])]
    assert (btc["holes"], btc["missing"], btc["present"]) == (2, 4, len(BTC))
    assert (eth["holes"], eth["missing"], eth["expected"]) == (1, 1, 30)


def test_jsonl_to_stdout_and_a_symbol_filter(db: Path, tmp_path: Path) -> None:
    res = export("--db", str(db), "--symbol", "eth-usdt", "--format", "jsonl",
                 "--meta", str(tmp_path / "m.json"))
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert lines == [as_json(c) for c in ETH]
    meta = json.loads((tmp_path / "m.json").read_text())
    assert [s["symbol"] for s in meta["streams"]] == ["ETHUSDT"]


def test_parquet_types_row_groups_and_the_audit_over_a_range(db: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.setattr("candlekeeper.export.writers.ROW_GROUP_ROWS", 16)
    out = tmp_path / "btc.parquet"
    start, end = T0 - 3 * 60_000, T0 + 110 * 60_000  # before the first and after the last
    export("--db", str(db), "--venue", VENUE, "--symbol", "BTCUSDT", "--interval", "1m",
           "--start", str(start), "--end", str(end), "-o", str(out), "--page-rows", "10")
    f = pq.ParquetFile(out)
    assert f.metadata.num_row_groups == -(-len(BTC) // 16)
    schema = f.schema_arrow
    assert str(schema.field("open_time").type) == "timestamp[ms, tz=UTC]"
    assert str(schema.field("close").type) == "string"  # exact text: see writers.py
    table = f.read()
    assert table.column("close").to_pylist() == [c.close_str for c in BTC]
    assert table.column("quote_volume").to_pylist() == [c.quote_volume_str for c in BTC]
    stamps = table.column("open_time").cast("int64").to_pylist()
    assert stamps == [c.open_time for c in BTC]
    assert table.column("trades").to_pylist() == [c.trades for c in BTC]
    meta = json.loads(f.metadata.metadata[META_KEY.encode()])
    (audit,) = meta["streams"]
    holes = missing_ranges([c.open_time for c in BTC], "1m", start, end)
    assert audit["first_holes"] == [list(h) for h in holes]
    assert audit["expected"] == count_open_times(start, end, "1m") == 113
    assert audit["missing"] == 113 - len(BTC) and audit["holes"] == len(holes) == 4


def test_a_named_stream_with_nothing_stored_is_exported_empty(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    export("--db", str(db), "--venue", VENUE, "--symbol", "SOLUSDT", "--interval", "1h",
           "--start", str(T0), "--end", str(T0 + 3 * 3_600_000), "-o", str(out))
    assert out.read_text().splitlines() == [",".join(COLUMNS)]
    (audit,) = json.loads(out.with_name("x.csv.meta.json").read_text())["streams"]
    assert (audit["expected"], audit["present"], audit["first_holes"]) == (
        3, 0, [[T0, T0 + 3 * 3_600_000]])


def test_auditor_agrees_with_missing_ranges() -> None:
    rng = random.Random(7)
    for interval in ("1m", "1h", "1M"):
        for _ in range(50):
            step = INTERVAL_MS[interval]
            start = T0 + rng.randrange(-5, 5) * step
            end = start + rng.randrange(0, 40) * step
            times = sorted(t for i in range(50) if rng.random() < 0.6
                           for t in [T0 + i * step])
            if interval == "1M":
                times = sorted({next_open(T0, "1M")} | ({T0} if rng.random() < .5 else set()))
            auditor = StreamAuditor(StreamKey(VENUE, "BTCUSDT", interval), start, end, keep=1000)
            for t in times:
                auditor.feed(t)
            result = auditor.result()
            holes = missing_ranges(times, interval, start, end)
            assert result["first_holes"] == [list(h) for h in holes]
            assert result["missing"] == sum(count_open_times(a, b, interval) for a, b in holes)


def test_postgres_sink_from_a_config(postgres: PostgresServer, tmp_path: Path) -> None:
    async def go() -> None:
        sink = PostgresSink(postgres.dsn)
        await sink.open()
        await sink.write([*BTC, *ETH])
        await sink.close()
    asyncio.run(go())
    config = tmp_path / "config.yaml"
    config.write_text("feeds:\n  - venue: binance-usdm\n    symbols: [BTCUSDT]\n"
                      f"sinks:\n  sqlite: {{enabled: false}}\n  postgres:\n    enabled: true\n"
                      f"    dsn: {postgres.dsn}\n")
    out = tmp_path / "pg.parquet"
    export("-c", str(config), "-o", str(out), "--page-rows", "9")
    table = pq.read_table(out)
    assert table.num_rows == len(BTC) + len(ETH)
    assert table.column("quote_volume").to_pylist() == [c.quote_volume_str
                                                        for c in (*BTC, *ETH)]
    assert table.column("taker_buy_quote_volume").to_pylist()[0] == "3.10"  # numeric keeps zeros
    jl = tmp_path / "pg.jsonl"
    export("-c", str(config), "--sink", "postgres", "--symbol", "BTCUSDT", "-o", str(jl))
    assert [json.loads(x) for x in jl.read_text().splitlines()] == [as_json(c) for c in BTC]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "candlekeeper", "export", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_bad_arguments_are_one_line_and_exit_2(db: Path, tmp_path: Path) -> None:
    sqlite_only = tmp_path / "c.yaml"
    sqlite_only.write_text(f"feeds:\n  - venue: binance-usdm\n    symbols: [BTCUSDT]\n"
                           f"sinks:\n  sqlite:\n    path: {db}\n")
    cases = [
        ((), "give the source once"),
        (("--db", str(db), "-c", str(sqlite_only)), "give the source once"),
        (("--db", str(tmp_path / "nope.db")), "no SQLite database at"),
        (("--db", str(db), "--interval", "7m"), "unknown interval"),
        (("--db", str(db), "--venue", "nasdaq"), "unknown venue"),
        (("--db", str(db), "--start", "2024-02-01", "--end", "2024-01-01"), "--end must be"),
        (("--db", str(db), "--start", "yesterday"), "expected 'now', Unix ms or an ISO date"),
        (("--db", str(db), "--format", "parquet"), "give -o FILE"),
        (("--db", str(db), "--symbol", "DOGEUSDT"), "no stored stream"),
        (("-c", str(sqlite_only), "--sink", "postgres"), "does not enable the postgres sink"),
    ]
    for args, expected in cases:
        res = run_cli(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert expected in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "nope.db").exists()  # reading never creates a database


def test_reading_sqlite_writes_nothing(db: Path, tmp_path: Path) -> None:
    """An export opens the file for reading only: no migration on a foreign file, no write
    lock or checkpoint on one the service is writing (a write transaction stays open in
    another connection for the whole export)."""
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x TEXT)")
    res = run_cli("--db", str(other))
    assert res.returncode == 2 and "holds no candlekeeper tables" in res.stderr, res.stderr
    with sqlite3.connect(other) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert names == {"notes"}
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the service holding the write lock
    try:
        out = tmp_path / "while-writing.csv"
        export("--db", str(db), "--interval", "5m", "-o", str(out))
        assert list(csv.DictReader(out.open())) == [as_text(c) for c in ETH]
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_failed_export_leaves_no_half_file(db: Path, tmp_path: Path) -> None:
    """A row edited around candlekeeper (a trade count that is text) fails the Parquet export
    in its third page: one line, exit 1, and no half-written file left behind."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE candles SET trades = 'many' WHERE symbol = 'BTCUSDT' AND "
                     "open_time = ?", (BTC[25].open_time,))
    out = tmp_path / "half.parquet"
    res = run_cli("--db", str(db), "-o", str(out), "--page-rows", "10")
    assert res.returncode == 1, res.stderr
    assert "export failed: binance-usdm BTCUSDT 1m: a stored row" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not out.exists()
    # a file the export never opened (the selection failed first) is left alone
    out.write_text("precious")
    res = run_cli("--db", str(db), "--symbol", "NOPE", "-o", str(out))
    assert res.returncode == 2 and out.read_text() == "precious"


def test_cli_smoke_csv_to_a_pipe(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # --db on the command line wins over a config named in the environment
    monkeypatch.setenv("CANDLEKEEPER_CONFIG", str(db.with_name("service.yaml")))
    res = run_cli("--db", str(db), "--interval", "5m")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[1:] == [",".join(as_text(c).values()) for c in ETH]
    assert "29 rows of 1 stream(s) as csv to stdout; 1 gap(s)" in res.stderr


def test_postgres_read_only_role_and_a_database_without_candles(postgres: PostgresServer,
                                                                tmp_path: Path) -> None:
    """Reading runs no DDL and no migration: a role that may only SELECT can export, and a
    database without candlekeeper's tables is one clear line, not a schema created for it."""
    async def go() -> None:
        sink = PostgresSink(postgres.dsn)
        await sink.open()
        await sink.write(ETH)
        await sink.close()
        import asyncpg
        conn = await asyncpg.connect(postgres.dsn)
        await conn.execute("CREATE ROLE reader LOGIN PASSWORD 'S3cr3t-pw'; "
                           "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader")
        await conn.execute("CREATE DATABASE empty")
        await conn.close()
    asyncio.run(go())
    reader = postgres.dsn.replace("postgres@", "reader:S3cr3t-pw@")
    out = tmp_path / "eth.csv"
    export("--db", reader, "-o", str(out))
    assert list(csv.DictReader(out.open())) == [as_text(c) for c in ETH]
    res = run_cli("--db", reader.rsplit("/", 1)[0] + "/empty")
    assert res.returncode == 2 and "no candlekeeper tables" in res.stderr, res.stderr
    assert "S3cr3t-pw" not in res.stderr and "Traceback" not in res.stderr
