"""Backfill and gaps for BingX, as for Binance: history over REST into storage equal to the
exchange's truth, an audit that finds holes, and a repair that fills them."""

from __future__ import annotations

from pathlib import Path

from candlekeeper.backfill import KlineFetcher, RestClient
from candlekeeper.backfill.runner import Backfiller
from candlekeeper.core.intervals import MINUTE
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sim import Simulator
from candlekeeper.sinks.sqlite import SQLiteSink
from candlekeeper.venues.bingx.endpoints import BINGX_SWAP
from candlekeeper.venues.bingx.history import BingxHistoryCodec

BINGX = "bingx-swap"
T0 = 1_704_067_200_000
HISTORY = 3000  # more than two pages of BingX's 1440-row maximum


async def test_bingx_history_audit_and_repair(tmp_path: Path) -> None:
    async with Simulator(venues=(BINGX,), symbols=["BTCUSDT", "ETHUSDT"], intervals=("1m",),
                         start_time_ms=T0, history=HISTORY) as sim:
        sink = SQLiteSink(tmp_path / "candles.sqlite")
        await sink.open()
        async with RestClient(BingxHistoryCodec(BINGX_SWAP), sim.rest_base(BINGX)) as client:
            fetcher = KlineFetcher(BingxHistoryCodec(BINGX_SWAP), client, clock=sim.clock)
            eng = Backfiller(sink, {BINGX: fetcher})
            keys = [StreamKey(BINGX, s, "1m") for s in ("BTCUSDT", "ETHUSDT")]
            start = T0 - HISTORY * MINUTE
            results = await eng.fill_many(keys, start)
            assert all(r.error is None for r in results)
            for key in keys:
                truth = sim.closed_candles(BINGX, key.symbol, "1m")
                rows = sink.read(key)
                assert [c.open_time for c in rows] == [c.open_time for c in truth]
                assert all(a.same_values(b, trade_ids=False)
                           for a, b in zip(rows, truth, strict=True))
            # a hole appears (a crash, a manual delete): the audit finds it, repair fills it
            truth = sim.closed_candles(BINGX, "BTCUSDT", "1m")
            gone = truth[1000:1100]
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
