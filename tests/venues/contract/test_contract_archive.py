"""Contract: every registered venue that publishes a kline archive has its simulator serve it,
and ``Backfiller`` with an ``ArchiveFiller`` stores from it exactly the exchange's truth (whole
days from the archive, the partial day at the end over REST). A venue without one has no
simulated archive either."""

from __future__ import annotations

from pathlib import Path

import pytest

from candlekeeper.backfill import KlineFetcher, RestClient
from candlekeeper.backfill.archive import ArchiveFiller
from candlekeeper.backfill.runner import Backfiller
from candlekeeper.core.intervals import DAY, HOUR
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sim import Simulator
from candlekeeper.sim.venues import archive_writer_for
from candlekeeper.sinks.sqlite import SQLiteSink
from candlekeeper.venues.registry import VENUES, archive_codec, history_codec

T0 = 1_704_067_200_000 + 6 * HOUR  # 2024-01-01 06:00 UTC
WITH_ARCHIVE = [v for v in VENUES if archive_codec(v) is not None]


def test_a_venue_has_a_simulated_archive_exactly_when_it_publishes_one() -> None:
    assert WITH_ARCHIVE  # Binance's two
    for venue in VENUES:
        assert (archive_writer_for(venue) is not None) == (venue in WITH_ARCHIVE), venue


@pytest.mark.parametrize("venue", WITH_ARCHIVE)
async def test_history_from_the_archive_equals_the_truth(tmp_path: Path, venue: str) -> None:
    codec = archive_codec(venue)
    assert codec is not None
    async with Simulator(venues=(venue,), symbols=["BTCUSDT"], intervals=("1h",),
                         start_time_ms=T0, history=24 * 5 + 6, rest_final_delay_ms=0) as sim:
        sink = SQLiteSink(tmp_path / "candles.sqlite")
        await sink.open()
        archive = ArchiveFiller(codec, sim.archive_base(venue))
        try:
            async with RestClient(history_codec(venue), sim.rest_base(venue)) as client:
                fetcher = KlineFetcher(client.codec, client, clock=sim.clock)
                eng = Backfiller(sink, {venue: fetcher}, archives={venue: archive})
                key = StreamKey(venue, "BTCUSDT", "1h")
                start = T0 - 6 * HOUR - 5 * DAY  # five whole days, then six hours
                [result] = await eng.fill_many([key], start)
                assert result.error is None and result.archived == 5 * 24
                truth = [c for c in sim.closed_candles(venue, "BTCUSDT", "1h")
                         if c.open_time >= start]
                rows = sink.read(key)
                assert len(rows) == len(truth) == 5 * 24 + 6
                assert all(a.same_values(b, trade_ids=False)
                           for a, b in zip(rows, truth, strict=True))
                assert [c.source for c in rows] == ["archive"] * 120 + ["rest"] * 6
                assert archive.stats.files == 5 and fetcher.stats.requests >= 1
        finally:
            await archive.close()
            await sink.close()
