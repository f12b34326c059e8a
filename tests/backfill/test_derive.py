"""Derived history built from storage (``backfill/derive.py``) against a real SQLite file: it
equals what the live path (the derived stream's incremental series) builds from the same base
candles, field for field, for sub-day and anchored-day intervals, across storage pages and
around a permanent base hole; it is idempotent; and the audit finds missing buckets and says
whether their base explains them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from candlekeeper.backfill import derive
from candlekeeper.backfill.derive import audit_derived, build_derived
from candlekeeper.core.candle import Candle
from candlekeeper.core.derived import DerivedInterval, DerivedSeries, parse_derived
from candlekeeper.core.intervals import DAY, HOUR, MINUTE
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sinks.sqlite import SQLiteSink

V = "venue-x"
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
BASE = StreamKey(V, "BTCUSDT", "1m")


def base_candles(n: int, start: int = T0) -> list[Candle]:
    """``n`` closed 1m candles with every field varying (some with trade ids: WS closes)."""
    out = []
    for i in range(n):
        t = start + i * MINUTE
        p = 100 + (i * 7) % 23
        ids = (1000 + 10 * i, 1009 + 10 * i) if i % 3 else (None, None)
        out.append(Candle.of(V, "BTCUSDT", "1m", t, t + MINUTE - 1, f"{p}.5", f"{p + 3}.25",
                             f"{p - 2}.0", f"{p + 1}.75", f"{i}.125", f"{i * 3}.5", i % 11,
                             f"{i % 5}.05", f"{i % 7}.1", ids[0], ids[1], closed=True,
                             event_time=t + MINUTE + i % 4, source="ws" if i % 2 else "rest"))
    return out


def live(spec: DerivedInterval, candles: list[Candle]) -> tuple[list[Candle], int]:
    """What the live path emits from these base closes, and the holes it counts."""
    out: list[Candle] = []
    series = DerivedSeries(spec, out.append)
    for c in candles:
        series.offer(c)
    return out, series.holes


async def open_sink(tmp_path: Path, candles: list[Candle]) -> SQLiteSink:
    sink = SQLiteSink(tmp_path / "candles.sqlite")
    await sink.open()
    await sink.write(candles)
    return sink


def delete(tmp_path: Path, where: str, params: tuple[object, ...]) -> None:
    """Lose rows behind the sink's back (another connection, as an operator would)."""
    with sqlite3.connect(tmp_path / "candles.sqlite") as conn:
        conn.execute(f"DELETE FROM candles WHERE {where}", params)


@pytest.mark.parametrize("name", ["2m", "3h", "1d+08:00"])
async def test_built_from_storage_equals_the_live_series(tmp_path: Path, name: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(derive, "PAGE", 997)  # many storage pages, none bucket-aligned
    monkeypatch.setattr(derive, "BATCH", 13)
    spec = parse_derived(name)
    candles = base_candles(4 * 1440)
    hole = candles[2 * 1440 + 500]  # a permanent base hole: 2024-01-03 08:20 UTC
    candles.remove(hole)
    sink = await open_sink(tmp_path, candles)
    try:
        key = StreamKey(V, "BTCUSDT", spec.name)
        result = await build_derived(sink, spec, BASE, T0, T0 + 4 * DAY)
        stored = sink.read(key)
        want, holes = live(spec, sink.read(BASE))
        assert holes == 1 and result.incomplete == 1 and result.empty == 0
        assert result.first_incomplete == spec.bucket(hole.open_time)
        assert result.built == len(stored) == len(want) > 0
        assert stored == want  # every field, the trade ids and event time included
        assert all(c.source == "derived" and c.closed for c in stored)
        if name == "1d+08:00":  # days open at 16:00 UTC; the partial first and last are out,
            # and the day of the hole (01-02 16:00) is not built
            assert [c.open_time for c in stored] == [T0 + 16 * HOUR, T0 + 2 * DAY + 16 * HOUR]
        # idempotent: a second run builds nothing; rebuilt from scratch, the same rows
        again = await build_derived(sink, spec, BASE, T0, T0 + 4 * DAY)
        assert again.built == 0 and again.incomplete == 1 and sink.read(key) == stored
        delete(tmp_path, "interval = ?", (spec.name,))
        rebuilt = await build_derived(sink, spec, BASE, T0, T0 + 4 * DAY)
        assert rebuilt.built == len(stored) and sink.read(key) == stored
    finally:
        await sink.close()


async def test_only_whole_buckets_inside_the_range_and_empty_ones_counted(
        tmp_path: Path) -> None:
    spec = parse_derived("3h")
    candles = base_candles(3 * 180, start=T0 + 6 * HOUR)  # base stored from 06:00 to 15:00
    sink = await open_sink(tmp_path, candles)
    try:
        # 01:30..16:00: buckets 03:00, 06:00, 09:00, 12:00 lie wholly inside; 03:00 has no base
        result = await build_derived(sink, spec, BASE, T0 + 90 * MINUTE, T0 + 16 * HOUR)
        got = sink.read(StreamKey(V, "BTCUSDT", "3h"))
        assert [c.open_time for c in got] == [T0 + h * HOUR for h in (6, 9, 12)]
        assert (result.built, result.incomplete, result.empty) == (3, 1, 1)
        assert result.first_incomplete == T0 + 3 * HOUR
    finally:
        await sink.close()


async def test_audit_finds_missing_buckets_and_whether_the_base_explains_them(
        tmp_path: Path) -> None:
    spec = parse_derived("1h")
    candles = base_candles(10 * 60)  # 00:00 .. 10:00
    sink = await open_sink(tmp_path, candles)
    key = StreamKey(V, "BTCUSDT", "1h")
    try:
        closed = T0 + DAY
        # nothing derived stored yet: expected wherever the base is, all rebuildable
        audit = await audit_derived(sink, spec, key, None, None, closed)
        assert (audit.start, audit.end, audit.stored, audit.missing) == (T0, T0 + 10 * HOUR,
                                                                         0, 10)
        assert [(h.candles, h.base_incomplete) for h in audit.holes] == [(10, 0)]
        await build_derived(sink, spec, BASE, audit.start, audit.end)
        assert (await audit_derived(sink, spec, key, None, None, closed)).holes == []
        # lose derived 03:00 and 04:00, and a base candle at 04:30
        delete(tmp_path, "interval = '1h' AND open_time IN (?, ?)",
               (T0 + 3 * HOUR, T0 + 4 * HOUR))
        delete(tmp_path, "interval = '1m' AND open_time = ?", (T0 + 270 * MINUTE,))
        audit = await audit_derived(sink, spec, key, None, None, closed)
        assert audit.stored == 8
        assert [(h.start, h.end, h.candles, h.base_incomplete) for h in audit.holes] == [
            (T0 + 3 * HOUR, T0 + 5 * HOUR, 2, 1)]
        result = await build_derived(sink, spec, BASE, audit.start, audit.end)
        assert (result.built, result.incomplete) == (1, 1)
        # an explicit range; the base's forming candle caps it
        audit = await audit_derived(sink, spec, key, T0, T0 + DAY, T0 + 12 * HOUR)
        assert (audit.end, audit.missing) == (T0 + 12 * HOUR, 3)
        assert [h.base_incomplete for h in audit.holes] == [1, 2]
    finally:
        await sink.close()
