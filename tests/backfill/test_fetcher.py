"""KlineFetcher against the simulator: paging, exact values, forming candle, weight accounting."""

from __future__ import annotations

import asyncio

import pytest
from backfillkit import T0, rest_fields

from candlekeeper.backfill import KlineFetcher, RestClient, optimal_limit, pages
from candlekeeper.core.intervals import HOUR, MINUTE, align
from candlekeeper.errors import BackfillError, ConfigError
from candlekeeper.sim import Simulator
from candlekeeper.venues.binance.endpoints import BINANCE_SPOT, BINANCE_USDM
from candlekeeper.venues.binance.history import BinanceHistoryCodec

USDM, SPOT = "binance-usdm", "binance-spot"
HISTORY = 3200
#: a window longer than any test: the simulator's header then counts every request we sent
ONE_WINDOW = 1e9


def client_for(sim: Simulator, venue: str) -> RestClient:
    spec = BINANCE_USDM if venue == USDM else BINANCE_SPOT
    return RestClient(BinanceHistoryCodec(spec), sim.rest_base(venue), weight_limit=10**9,
                      window_s=ONE_WINDOW)


@pytest.fixture
async def sim() -> Simulator:  # type: ignore[misc]
    async with Simulator(venues=(USDM, SPOT), symbols=["BTCUSDT", "ETHUSDT"],
                         intervals=("1m", "1h", "1d"), start_time_ms=T0, history=HISTORY,
                         rest_window_s=ONE_WINDOW,
                         # pagination, not REST finality: these fetchers take a candle as
                         # final at its close (margin 0), so REST must show it final then
                         rest_final_delay_ms=0) as s:
        yield s


@pytest.mark.parametrize("n", [1, 99, 100, 499, 500, 998, 1000, 1001, 1500, 1501, 3000])
async def test_page_boundaries_return_exactly_the_truth(sim: Simulator, n: int) -> None:
    truth = sim.closed_candles(USDM, "BTCUSDT", "1m")
    start = truth[-n].open_time
    async with client_for(sim, USDM) as client:
        fetcher = KlineFetcher(BinanceHistoryCodec(BINANCE_USDM), client, clock=sim.clock)
        got = await fetcher.fetch("BTCUSDT", "1m", start, start + n * MINUTE)
    assert [rest_fields(c) for c in got] == [rest_fields(c) for c in truth[-n:]]
    assert all(c.closed and c.source == "rest" for c in got)
    expected_pages = pages(start, start + n * MINUTE, "1m", optimal_limit(BINANCE_USDM, n))
    assert fetcher.stats.requests == len(expected_pages) and fetcher.stats.retries == 0
    assert fetcher.stats.candles == n
    # weight accounting: what we counted is what the server charged (one window: cumulative)
    assert client.last_used_weight == fetcher.stats.weight_used
    assert client.budget.granted == fetcher.stats.weight_used


async def test_open_ended_range_excludes_the_forming_candle(sim: Simulator) -> None:
    async with client_for(sim, USDM) as client:
        fetcher = KlineFetcher(BinanceHistoryCodec(BINANCE_USDM), client, clock=sim.clock)
        got = await fetcher.fetch("ETHUSDT", "1m", 0, 2**62)
        hours = await fetcher.fetch("ETHUSDT", "1h", 0, 2**62)
    now = sim.clock.time_ms()
    truth = sim.closed_candles(USDM, "ETHUSDT", "1m", until_ms=now)
    assert len(got) == HISTORY and got[-1].open_time == align(now, "1m") - MINUTE
    assert [rest_fields(c) for c in got] == [rest_fields(c) for c in truth]
    assert all(c.close_time < now for c in got)
    assert [c.open_time for c in hours] == [
        c.open_time for c in sim.closed_candles(USDM, "ETHUSDT", "1h", until_ms=now)]
    assert hours[-1].open_time == align(now, "1h") - HOUR


async def test_ranges_before_listing_or_in_the_future_are_empty_not_errors(
        sim: Simulator) -> None:
    async with client_for(sim, USDM) as client:
        fetcher = KlineFetcher(BinanceHistoryCodec(BINANCE_USDM), client, clock=sim.clock)
        listing = sim.closed_candles(USDM, "BTCUSDT", "1m")[0].open_time
        assert await fetcher.fetch("BTCUSDT", "1m", listing - 50 * MINUTE, listing) == []
        assert fetcher.stats.requests == 1  # asked once, got nothing, no retry
        future = align(sim.clock.time_ms(), "1m") + 10 * MINUTE
        assert await fetcher.fetch("BTCUSDT", "1m", future, future + HOUR) == []
        assert fetcher.stats.requests == 1  # not even asked: nothing there can be closed
        half = await fetcher.fetch("BTCUSDT", "1m", listing - 10 * MINUTE, listing + 5 * MINUTE)
        assert [c.open_time for c in half] == [listing + i * MINUTE for i in range(5)]


async def test_spot_pages_at_its_maximum_and_daily_candles(sim: Simulator) -> None:
    async with client_for(sim, SPOT) as client:
        fetcher = KlineFetcher(BinanceHistoryCodec(BINANCE_SPOT), client, clock=sim.clock)
        got = await fetcher.fetch("BTCUSDT", "1m", 0, 2**62)
        days = await fetcher.fetch("BTCUSDT", "1d", 0, 2**62)
    truth = sim.closed_candles(SPOT, "BTCUSDT", "1m")
    assert [rest_fields(c) for c in got] == [rest_fields(c) for c in truth]
    # "since 0": the first window is empty, a probe finds the first candle (and one more
    # request checks that nothing precedes it: a venue may answer a range's newest row), then
    # 3200 1m candles in pages of 1000; the days (2556 since 2017, the simulator's floor): empty
    # first window, probe and check, three pages
    assert fetcher.stats.requests == (1 + 2 + 4) + (1 + 2 + 3)
    assert fetcher.stats.weight_used == 2 * 13 == client.last_used_weight
    assert [c.open_time for c in days] == [
        c.open_time for c in sim.closed_candles(SPOT, "BTCUSDT", "1d")]


async def test_concurrent_callers_share_one_client_and_get_their_own_series(
        sim: Simulator) -> None:
    async with client_for(sim, USDM) as client:
        fetcher = KlineFetcher(BinanceHistoryCodec(BINANCE_USDM), client, clock=sim.clock,
                               max_concurrency=2)
        btc, eth = await asyncio.gather(fetcher.fetch("BTCUSDT", "1m", 0, 2**62),
                                        fetcher.fetch("ETHUSDT", "1m", 0, 2**62))
    assert {c.symbol for c in btc} == {"BTCUSDT"} and {c.symbol for c in eth} == {"ETHUSDT"}
    assert len(btc) == len(eth) == HISTORY
    # per symbol: an empty first window (weight 2), a probe and its check (limit 1, weight 1
    # each), 7 pages of 499
    assert client.last_used_weight == fetcher.stats.weight_used == 2 * (2 + 1 + 1 + 2 * 7)


async def test_bad_requests_fail_clearly(sim: Simulator) -> None:
    async with client_for(sim, USDM) as client:
        fetcher = KlineFetcher(BinanceHistoryCodec(BINANCE_USDM), client, clock=sim.clock)
        with pytest.raises(BackfillError, match=r"Invalid symbol"):
            await fetcher.fetch("NOPEUSDT", "1m", T0 - HOUR, T0)
        assert fetcher.stats.requests == 1  # a 400 is not retried
        with pytest.raises(ConfigError, match="no interval '1s'"):
            await fetcher.fetch("BTCUSDT", "1s", T0 - HOUR, T0)
