"""Contract: backfill and gaps for every registered venue: history over REST into storage equal
to the exchange's truth (several pages of the venue's maximum), an audit that finds holes, and
a repair that fills them."""

from __future__ import annotations

from pathlib import Path

import pytest

from candlekeeper.backfill import KlineFetcher, RestClient
from candlekeeper.backfill.runner import Backfiller
from candlekeeper.core.intervals import MINUTE
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sim import Simulator
from candlekeeper.sinks.sqlite import SQLiteSink
from candlekeeper.venues.registry import VENUES, get_spec, history_codec

T0 = 1_704_067_200_000


@pytest.mark.parametrize("venue", VENUES)
async def test_history_audit_and_repair(tmp_path: Path, venue: str) -> None:
    history = 2 * get_spec(venue).rest_max_limit + 120  # more than two full pages
    async with Simulator(venues=(venue,), symbols=["BTCUSDT", "ETHUSDT"], intervals=("1m",),
                         start_time_ms=T0, history=history,
                         rest_final_delay_ms=0) as sim:  # no race with REST finality here
        sink = SQLiteSink(tmp_path / "candles.sqlite")
        await sink.open()
        async with RestClient(history_codec(venue), sim.rest_base(venue)) as client:
            fetcher = KlineFetcher(client.codec, client, clock=sim.clock)
            eng = Backfiller(sink, {venue: fetcher})
            keys = [StreamKey(venue, s, "1m") for s in ("BTCUSDT", "ETHUSDT")]
            start = T0 - history * MINUTE
            results = await eng.fill_many(keys, start)
            assert all(r.error is None for r in results)
            for key in keys:
                truth = sim.closed_candles(venue, key.symbol, "1m")
                rows = sink.read(key)
                assert [c.open_time for c in rows] == [c.open_time for c in truth]
                assert all(a.same_values(b, trade_ids=False)
                           for a, b in zip(rows, truth, strict=True))
            # a hole appears (a crash, a manual delete): the audit finds it, repair fills it
            truth = sim.closed_candles(venue, "BTCUSDT", "1m")
            mid = len(truth) // 2  # inside the history whatever the venue's page size
            gone = truth[mid:mid + 100]
            await _delete(sink, keys[0], gone[0].open_time, gone[-1].open_time)
            audit = await eng.audit(keys[0])
            assert audit.holes == [(gone[0].open_time, gone[-1].open_time + MINUTE)]
            repaired = await eng.repair(audit)
            assert repaired.error is None and repaired.fetched == 100
            assert (await eng.audit(keys[0])).holes == []
            assert [c.close_str for c in sink.read(keys[0])] == [c.close_str for c in truth]
        await sink.close()


async def _delete(sink: SQLiteSink, key: StreamKey, first: int, last: int) -> None:
    """Delete stored rows directly in the file (what a crash or an operator could do)."""
    import sqlite3

    path = sink.path
    await sink.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM candles WHERE venue=? AND symbol=? AND interval=? AND "
                     "open_time BETWEEN ? AND ?", (*key, first, last))
    await sink.open()
