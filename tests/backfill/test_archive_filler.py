"""``ArchiveFiller`` over real sockets: retries with the one backoff policy, a download that
never succeeds is a counted failure (never an exception), and what it stores is exactly the
simulator's truth, as archive candles."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from candlekeeper.backfill.archive import ArchiveFiller
from candlekeeper.core.intervals import MINUTE
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sim import Simulator
from candlekeeper.sinks.sqlite import SQLiteSink
from candlekeeper.venues.registry import archive_codec

SPOT = "binance-spot"
KEY = StreamKey(SPOT, "BTCUSDT", "1h")


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000  # type: ignore[misc]


def filler(base: str, **kw: float) -> ArchiveFiller:
    codec = archive_codec(SPOT)
    assert codec is not None
    return ArchiveFiller(codec, base, backoff_initial_s=0.01, backoff_max_s=0.05, **kw)


async def test_a_retried_file_and_an_unreachable_archive(tmp_path: Path) -> None:
    now = ms(2025, 3, 2, 6)
    async with Simulator(venues=(SPOT,), symbols=["BTCUSDT"], intervals=("1h",),
                         start_time_ms=now, history=24 * 70) as sim:
        archive = sim.server(SPOT).archive
        assert archive is not None
        archive.faults["BTCUSDT-1h-2025-02.zip"] = "flaky"
        sink = SQLiteSink(tmp_path / "a.sqlite")
        await sink.open()
        fill = filler(sim.archive_base(SPOT))
        advanced: list[tuple[int, int]] = []
        try:
            stored = await fill.fill(KEY, [(ms(2025, 1, 1), ms(2025, 3, 2))], sink,
                                     lambda planned, got: advanced.append((planned, got)))
            rows = sink.read(KEY)
        finally:
            await fill.close()
            await sink.close()
        assert stored == (ms(2025, 3, 2) - ms(2025, 1, 1)) // (60 * MINUTE) == len(rows)
        assert fill.stats.retries == 1 and fill.stats.files == 3 and fill.stats.failed == 0
        assert archive.stats.faulted == 1 and archive.stats.files == 3
        assert sorted(advanced) == [(24, 24), (24 * 28, 24 * 28), (24 * 31, 24 * 31)]
        truth = [c for c in sim.closed_candles(SPOT, "BTCUSDT", "1h")
                 if ms(2025, 1, 1) <= c.open_time < ms(2025, 3, 2)]
        assert [c.source for c in rows] == ["archive"] * len(truth)
        assert all(a.same_values(b, trade_ids=False) for a, b in zip(rows, truth, strict=True))


async def test_an_archive_that_drops_every_connection_is_a_counted_failure(
        tmp_path: Path) -> None:
    def drop(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = SQLiteSink(tmp_path / "b.sqlite")
    await sink.open()
    fill = filler(f"http://127.0.0.1:{port}", max_attempts=3)
    try:
        stored = await fill.fill(KEY, [(ms(2025, 2, 1), ms(2025, 3, 1))], sink)
        assert stored == 0 and sink.read(KEY) == []
    finally:
        await fill.close()
        await sink.close()
        server.close()
        await server.wait_closed()
    # one monthly file: three attempts, two retries, then left to REST
    assert (fill.stats.failed, fill.stats.retries, fill.stats.files) == (1, 2, 0)


async def test_an_old_month_not_in_the_archive_is_left_to_rest_without_its_days(
        tmp_path: Path) -> None:
    now = ms(2025, 3, 2, 6)
    async with Simulator(venues=(SPOT,), symbols=["BTCUSDT"], intervals=("1h",),
                         start_time_ms=now, history=24 * 70) as sim:
        archive = sim.server(SPOT).archive
        assert archive is not None
        archive.faults["BTCUSDT-1h-2025-01.zip"] = "missing"
        archive.faults["BTCUSDT-1h-2025-02.zip"] = "missing"
        sink = SQLiteSink(tmp_path / "c.sqlite")
        await sink.open()
        fill = filler(sim.archive_base(SPOT))
        try:
            stored = await fill.fill(KEY, [(ms(2025, 1, 1), ms(2025, 3, 1))], sink, now_ms=now)
        finally:
            await fill.close()
            await sink.close()
        # January ended 29 days ago: not in the archive. February, a day ago: its 28 days
        assert stored == 28 * 24 and fill.stats.files == 28
        assert fill.stats.not_published == 2 and archive.stats.not_found == 2


async def test_a_wrong_archive_url_is_one_warning_and_a_count(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def page(_: web.Request) -> web.Response:
        return web.Response(text="<html>not an archive</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sink = SQLiteSink(tmp_path / "d.sqlite")
    await sink.open()
    fill = filler(f"http://127.0.0.1:{port}")
    try:
        with caplog.at_level(logging.WARNING, logger="candlekeeper.backfill.archive"):
            stored = await fill.fill(KEY, [(ms(2025, 2, 3), ms(2025, 2, 13))], sink)
    finally:
        await fill.close()
        await sink.close()
        await runner.cleanup()
    assert stored == 0 and fill.stats.checksum_missing == 10
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "no usable checksum file" in lines[0], lines
