"""Backfiller in-process against the simulator: fill, resume, audit, repair, unfillable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from backfillkit import rest_fields

from candlekeeper.backfill import KlineFetcher, RestClient
from candlekeeper.backfill.runner import Backfiller
from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import MINUTE
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sim import Simulator
from candlekeeper.sinks.sqlite import SQLiteSink
from candlekeeper.venues.binance.endpoints import BINANCE_USDM
from candlekeeper.venues.binance.history import BinanceHistoryCodec

USDM = "binance-usdm"
T0 = 1_704_067_200_000
HISTORY = 2000
BTC = StreamKey(USDM, "BTCUSDT", "1m")
ETH = StreamKey(USDM, "ETHUSDT", "1m")


class Recorder:
    def __init__(self) -> None:
        self.planned: dict[StreamKey, int] = {}
        self.done: dict[StreamKey, int] = {}
        self.fetched: dict[StreamKey, int] = {}
        self.ended: list[StreamKey] = []

    def plan(self, key: StreamKey, candles: int) -> None:
        self.planned[key] = self.planned.get(key, 0) + candles

    def advance(self, key: StreamKey, planned: int, fetched: int) -> None:
        self.done[key] = self.done.get(key, 0) + planned
        self.fetched[key] = self.fetched.get(key, 0) + fetched

    def end(self, key: StreamKey) -> None:
        self.ended.append(key)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Simulator, SQLiteSink, KlineFetcher]]:
    async with Simulator(venues=(USDM,), symbols=["BTCUSDT", "ETHUSDT"], intervals=("1m",),
                         start_time_ms=T0, history=HISTORY) as sim:
        sink = SQLiteSink(tmp_path / "candles.sqlite")
        await sink.open()
        async with RestClient(BinanceHistoryCodec(BINANCE_USDM), sim.rest_base(USDM)) as client:
            yield sim, sink, KlineFetcher(client.codec, client, clock=sim.clock)
        await sink.close()


def stored_equals_truth(sim: Simulator, sink: SQLiteSink, key: StreamKey, start: int,
                        *, rest_only: bool = True) -> int:
    rows = sink.read(key)
    truth = [c for c in sim.closed_candles(USDM, key.symbol, "1m")
             if start <= c.open_time <= rows[-1].open_time]
    assert [rest_fields(c) for c in rows] == [rest_fields(c) for c in truth]
    assert all(c.closed and (c.source == "rest" or not rest_only) for c in rows)
    return len(rows)


async def test_fill_resumes_from_storage_and_skips_what_predates_the_listing(
        env: tuple[Simulator, SQLiteSink, KlineFetcher]) -> None:
    sim, sink, fetcher = env
    listing = sim.closed_candles(USDM, "BTCUSDT", "1m")[0].open_time
    start = listing - 5000 * MINUTE  # long before the venue's history
    progress = Recorder()
    eng = Backfiller(sink, {USDM: fetcher}, progress=progress, pages_per_chunk=1)
    # an earlier, interrupted run stored a middle part
    middle = await fetcher.fetch("BTCUSDT", "1m", listing + 500 * MINUTE,
                                 listing + 900 * MINUTE)
    await sink.write(middle)
    requests_before = fetcher.stats.requests
    [btc, eth] = await eng.fill_many([BTC, ETH], start)
    assert btc.error is None and eth.error is None
    assert btc.planned == 5000 + HISTORY - 400 and eth.planned == 5000 + HISTORY
    assert btc.fetched == HISTORY - 400 and eth.fetched == HISTORY
    assert btc.first_available == listing and btc.unfillable == [(start, listing)]
    assert stored_equals_truth(sim, sink, BTC, start) == HISTORY
    assert stored_equals_truth(sim, sink, ETH, start) == HISTORY
    assert progress.done == progress.planned and progress.fetched[ETH] == HISTORY
    # BTC: a probe and its check, then pages of 499 around the stored middle; ETH: a probe,
    # its check and 5 pages
    assert fetcher.stats.requests - requests_before == (2 + 2 + 3) + (2 + 5)
    # a second run finds nothing to do but the pre-listing range, and asks for nothing else
    again = await eng.fill(BTC, start)
    assert again.fetched == 0 and again.unfillable == [(start, listing)]
    assert sink.count(BTC) == HISTORY


async def test_audit_and_repair(env: tuple[Simulator, SQLiteSink, KlineFetcher]) -> None:
    sim, sink, fetcher = env
    truth = sim.closed_candles(USDM, "BTCUSDT", "1m")
    listing = truth[0].open_time
    keep = [c for i, c in enumerate(truth) if not (100 <= i < 130 or i == 700)]
    await sink.write(keep)
    eng = Backfiller(sink, {USDM: fetcher})
    audit = await eng.audit(BTC)
    assert audit.holes == [(truth[100].open_time, truth[130].open_time),
                           (truth[700].open_time, truth[701].open_time)]
    assert audit.missing == 31 and audit.stored == HISTORY - 31
    assert (await eng.audit(ETH)).empty
    # ranges: explicit start before the listing makes the leading part a hole as well
    wide = await eng.audit(BTC, listing - 10 * MINUTE)
    assert wide.holes[0] == (listing - 10 * MINUTE, listing) and wide.missing == 41
    result = await eng.repair(audit)
    assert result.error is None and result.fetched == 31 and result.unfillable == []
    assert (await eng.audit(BTC)).holes == []
    assert stored_equals_truth(sim, sink, BTC, listing, rest_only=False) == HISTORY
    # what the venue does not have is reported as unfillable, once, not looped on
    requests = fetcher.stats.requests
    wide = await eng.audit(BTC, listing - 10 * MINUTE)
    result = await eng.repair(wide)
    assert result.fetched == 0 and result.unfillable == [(listing - 10 * MINUTE, listing)]
    assert fetcher.stats.requests - requests == 1


async def test_a_stored_forming_candle_is_not_counted_and_fake_old_data_is_unfillable(
        env: tuple[Simulator, SQLiteSink, KlineFetcher]) -> None:
    sim, sink, fetcher = env
    truth = sim.closed_candles(USDM, "BTCUSDT", "1m")
    old = truth[0].open_time - 60 * MINUTE
    fake = Candle.of(USDM, "BTCUSDT", "1m", old, old + MINUTE - 1, 1, 1, 1, 1, 0, closed=True,
                     source="rest")
    await sink.write([fake, *truth[:50]])
    eng = Backfiller(sink, {USDM: fetcher})
    audit = await eng.audit(BTC)
    assert audit.holes == [(old + MINUTE, truth[0].open_time)]
    result = await eng.repair(audit)
    assert result.unfillable == audit.holes and result.error is None
