"""The simulated kline archive over real sockets: the real layout, files only for whole periods
that are over, the format each file's date calls for, checksums that match, and the equality
of a file with the market's truth."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, datetime

import aiohttp
import pytest

from candlekeeper.core.intervals import HOUR
from candlekeeper.sim import Simulator
from candlekeeper.venues.registry import archive_codec

USDM, SPOT = "binance-usdm", "binance-spot"


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000  # type: ignore[misc]


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with session.get(url) as resp:
        return resp.status, await resp.read()


def member(body: bytes) -> tuple[str, str]:
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        [name] = z.namelist()
        return name, z.read(name).decode()


@pytest.mark.parametrize(("venue", "now", "before", "after", "first_cells"), [
    # USDⓈ-M: no header in 2022, a header from 2023
    (USDM, ms(2023, 1, 3, 5), "/data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2022-12.zip",
     "/data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2023-01-01.zip",
     ("1669852800000", "open_time")),
    # spot: ms in 2024, µs from 2025-01-01
    (SPOT, ms(2025, 1, 3, 5), "/data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-12.zip",
     "/data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2025-01-01.zip",
     ("1733011200000", "1735689600000000")),
])
async def test_files_by_date_with_checksums_and_the_markets_candles(
        venue: str, now: int, before: str, after: str, first_cells: tuple[str, str]) -> None:
    codec = archive_codec(venue)
    assert codec is not None
    async with Simulator(venues=(venue,), symbols=["BTCUSDT"], intervals=("1h",),
                         start_time_ms=now, history=24 * 40) as sim, aiohttp.ClientSession() as s:
        base = sim.archive_base(venue)
        for path, first in zip((before, after), first_cells, strict=True):
            status, body = await get(s, base + path)
            assert status == 200
            status, checksum = await get(s, base + path + ".CHECKSUM")
            name = path.rsplit("/", 1)[1]
            assert status == 200
            assert checksum.decode() == f"{hashlib.sha256(body).hexdigest()}  {name}\n"
            csv_name, text = member(body)
            assert csv_name == name.replace(".zip", ".csv")
            assert text.split(",", 1)[0] == first
            parsed = codec.parse_path(path)
            assert parsed is not None
            symbol, interval, period, _ = parsed
            candles = codec.decode_rows(text, symbol, interval)
            truth = [c for c in sim.closed_candles(venue, "BTCUSDT", "1h")
                     if period.start <= c.open_time < period.end]
            assert len(candles) == len(truth) == (period.end - period.start) // HOUR
            assert all(a.same_values(b, trade_ids=False) for a, b in zip(candles, truth,
                                                                          strict=True))
            assert (await get(s, base + path))[1] == body  # deterministic: same bytes again
        day = after.rsplit("-", 1)[0]
        assert (await get(s, base + day + "-03.zip"))[0] == 404  # today: not over
        month = before.rsplit("-", 2)[0]
        today_month = after.replace("daily", "monthly").rsplit("-", 1)[0] + ".zip"
        assert (await get(s, base + today_month))[0] == 404  # this month: not over
        assert (await get(s, base + before.replace("BTCUSDT", "XRPUSDT")))[0] == 404
        assert (await get(s, base + month + "-2020-01.zip"))[0] == 404  # before the listing
        stats = sim.stats()[venue].archive
        assert stats is not None and stats.files == 4 and stats.not_found == 4
        assert stats.checksums == 2
