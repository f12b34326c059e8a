"""``candlekeeper backfill --source archive|auto`` as a real process against the simulator's
archive and REST (real sockets, real SQLite): whole months and days from verified archive files,
REST only for the rest; bad files fall back to REST and are counted; a venue without an archive.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from backfillkit import mid_minute, rest_fields
from test_backfill_cli import cli, read_stored

from candlekeeper.core.intervals import MINUTE
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sim import Simulator

USDM, SPOT = "binance-usdm", "binance-spot"


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000  # type: ignore[misc]


JAN_1 = ms(2025, 1, 1)
#: the simulator's "now": two whole months, two whole days and half a day of history
NOW = ms(2025, 3, 3, 12)
HISTORY = (NOW - ms(2024, 12, 31, 22)) // MINUTE  # listed before the first month


def write_config(tmp_path: Path, sim: Simulator, venues: list[str], *,
                 archive: bool = True) -> Path:
    feeds = "".join(f"""
  - venue: {v}
    symbols: [BTCUSDT]
    intervals: [1m]
    rest_url: {sim.rest_base(v)}
""" + (f"    archive_url: {sim.archive_base(v)}\n" if archive else "") for v in venues)
    path = tmp_path / "config.yaml"
    path.write_text(f"feeds:{feeds}sinks:\n  sqlite:\n    path: {tmp_path / 'candles.sqlite'}\n")
    return path


def summary_number(out: str, pattern: str) -> int:
    m = re.search(pattern, out)
    assert m is not None, (pattern, out)
    return int(m.group(1))


async def assert_stored_equals_truth(db: Path, sim: Simulator, venue: str, start: int) -> None:
    rows = await read_stored(db, StreamKey(venue, "BTCUSDT", "1m"))
    truth = [c for c in sim.closed_candles(venue, "BTCUSDT", "1m") if c.open_time >= start]
    assert rows, "nothing stored"
    truth = [c for c in truth if c.open_time <= rows[-1].open_time]
    assert len(rows) == len(truth) >= (NOW - start) // MINUTE - 5
    assert [rest_fields(c) for c in rows] == [rest_fields(c) for c in truth]


async def test_archive_months_and_days_then_rest_for_the_rest(tmp_path: Path) -> None:
    async with Simulator(venues=(USDM, SPOT), symbols=["BTCUSDT"], intervals=("1m",),
                         start_time_ms=NOW, history=HISTORY) as sim:
        config = write_config(tmp_path, sim, [USDM, SPOT])
        code, out = await cli("backfill", "-c", str(config), "--start", "2025-01-01",
                              "--source", "archive", timeout=240)
        assert code == 0, out
        db = tmp_path / "candles.sqlite"
        for venue in (USDM, SPOT):
            await assert_stored_equals_truth(db, sim, venue, JAN_1)
            stats = sim.stats()[venue]
            archive = stats.archive
            assert archive is not None
            # January and February monthly, March 1 and 2 daily; March 3 is not published
            assert archive.files == 4 and archive.checksums == 4, archive
            assert archive.not_found == 0, archive  # March 3 is not whole: never asked
            # only the 12 h since midnight came over REST: a page or two (and at most a probe
            # of where the history starts); a month over REST is 46-91 pages
            assert 1 <= stats.rest.klines <= 5, stats.rest
        rows = await read_stored(db, StreamKey(SPOT, "BTCUSDT", "1m"))
        sources = {c.source for c in rows if c.open_time < ms(2025, 3, 3)}
        assert sources == {"archive"}
        assert rows[-1].source == "rest"
        assert summary_number(out, r"archive: (\d+) files") == 8
        assert summary_number(out, r"\((\d+) from archives\)") == 2 * (ms(2025, 3, 3) - JAN_1) \
            // MINUTE
        # a second run finds everything stored: no file, no page but what closed since
        code, out = await cli("backfill", "-c", str(config), "--start", "2025-01-01",
                              "--source", "auto", timeout=120)
        assert code == 0, out
        assert summary_number(out, r"archive: (\d+) files") == 0
        assert sim.stats()[SPOT].archive.files == 4  # type: ignore[union-attr]


async def test_bad_files_fall_back_to_rest_and_are_counted(tmp_path: Path) -> None:
    async with Simulator(venues=(SPOT,), symbols=["BTCUSDT"], intervals=("1m",),
                         start_time_ms=NOW, history=HISTORY) as sim:
        faults = sim.server(SPOT).archive.faults  # type: ignore[union-attr]
        faults.update({
            "BTCUSDT-1m-2025-02.zip": "missing",  # not published yet: its days instead
            "BTCUSDT-1m-2025-02-20.zip": "missing_checksum",
            "BTCUSDT-1m-2025-01.zip": "hole",
            "BTCUSDT-1m-2025-03-01.zip": "bad_checksum",
            "BTCUSDT-1m-2025-03-02.zip": "corrupt_zip",
            "BTCUSDT-1m-2025-02-10.zip": "garbled_zip",
        })
        config = write_config(tmp_path, sim, [SPOT])
        code, out = await cli("backfill", "-c", str(config), "--start", "2025-01-01",
                              timeout=240)  # --source auto: the config names an archive
        assert code == 0, out
        await assert_stored_equals_truth(tmp_path / "candles.sqlite", sim, SPOT, JAN_1)
        assert summary_number(out, r"(\d+) not published") == 1
        assert summary_number(out, r"(\d+) without checksum") == 1
        assert summary_number(out, r"(\d+) checksum mismatches") == 1
        assert summary_number(out, r"(\d+) corrupt") == 2
        assert summary_number(out, r"(\d+) candles missing inside files") == 5
        # January + 26 February days verified; the rest (4 days, 5 candles, 12 h) over REST
        assert summary_number(out, r"archive: (\d+) files") == 27
        rest_candles = 4 * 1440 + 5 + 720
        archived = summary_number(out, r"\((\d+) from archives\)")
        assert archived == (ms(2025, 3, 3) - JAN_1) // MINUTE - 4 * 1440 - 5
        assert summary_number(out, r"(\d+) candles fetched") - archived >= rest_candles
        for why in ("no usable checksum file", "SHA-256 differs", "rejected"):
            assert why in out, out
        assert "Traceback" not in out


async def test_a_venue_without_an_archive(tmp_path: Path) -> None:
    venue = "bybit-linear"
    async with Simulator(venues=(venue,), symbols=["BTCUSDT"], intervals=("1m",),
                         start_time_ms=mid_minute(), history=3000) as sim:
        config = write_config(tmp_path, sim, [venue], archive=False)
        start = str(sim.closed_candles(venue, "BTCUSDT", "1m")[0].open_time)
        code, out = await cli("backfill", "-c", str(config), "--start", start,
                              "--source", "archive")
        assert code == 2, out
        lines = out.strip().splitlines()
        assert lines == [f"error: --source archive: {venue} publishes no kline archive; use "
                         "--source auto (REST for it) or --source rest"], out
        code, out = await cli("backfill", "-c", str(config), "--start", start)
        assert code == 0, out
        assert "archive:" not in out and "(0 from archives)" in out, out
        rows = await read_stored(tmp_path / "candles.sqlite", StreamKey(venue, "BTCUSDT", "1m"))
        assert len(rows) >= 3000 and {c.source for c in rows} == {"rest"}


async def test_auto_leaves_a_non_production_rest_endpoint_to_rest(tmp_path: Path) -> None:
    """A feed whose REST is a simulator (or a testnet) and names no archive URL: the public
    archive describes another market, so ``auto`` does not touch it (nor the internet)."""
    async with Simulator(venues=(USDM,), symbols=["BTCUSDT"], intervals=("1m",),
                         start_time_ms=NOW, history=4 * 1440) as sim:
        config = write_config(tmp_path, sim, [USDM], archive=False)
        code, out = await cli("backfill", "-c", str(config), "--start", "2025-03-01")
        assert code == 0, out
        assert "(0 from archives)" in out and "archive:" not in out, out
        assert sim.stats()[USDM].archive.files == 0  # type: ignore[union-attr]
        # the flag points one venue at an archive
        code, out = await cli("backfill", "-c", str(config), "--start", "2025-02-28",
                              "--archive-url", sim.archive_base(USDM))
        assert code == 0, out
        assert summary_number(out, r"archive: (\d+) files") == 1, out  # February 28
        assert sim.stats()[USDM].archive.files == 1  # type: ignore[union-attr]


async def test_bad_archive_flags_are_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("feeds:\n" + "".join(
        f"  - venue: {v}\n    symbols: [BTCUSDT]\n    rest_url: http://127.0.0.1:9\n"
        for v in (USDM, SPOT)) + f"sinks:\n  sqlite:\n    path: {tmp_path / 'c.sqlite'}\n")
    code, out = await cli("backfill", "-c", str(config), "--start", "2025-01-01",
                          "--archive-url", "ftp://x")
    assert (code, out) == (2, "error: --archive-url must start with http:// or https://, "
                              "got 'ftp://x'\n")
    code, out = await cli("backfill", "-c", str(config), "--start", "2025-01-01",
                          "--archive-url", "http://127.0.0.1:9")
    assert (code, out) == (2, "error: --archive-url names one archive: select one venue with "
                              "--venue (or set archive_url: per feed in the config)\n")
