"""The per-venue weight budget: windows, the server's count, blocks shared by every caller, and a
30-day 1m backfill of several symbols that stays under the simulator's weight limit."""

from __future__ import annotations

import asyncio
import time

from backfillkit import rest_fields

from candlekeeper.backfill import KlineFetcher, RestClient, WeightBudget
from candlekeeper.backfill.options import RestOptions
from candlekeeper.core.intervals import DAY, MINUTE
from candlekeeper.sim import Simulator
from candlekeeper.venues.binance.endpoints import BINANCE_USDM
from candlekeeper.venues.binance.history import BinanceHistoryCodec

USDM = "binance-usdm"


async def test_concurrent_acquires_never_exceed_the_limit_in_any_window() -> None:
    budget = WeightBudget(20, headroom=1.0, window_s=0.2)
    grants: list[tuple[int, int]] = []

    async def worker() -> None:
        for _ in range(10):
            before = time.time()
            window = await budget.acquire(3)
            # charged to the window it was granted in (under load the check itself may run in
            # a later one: a bare equality with the window "now" was flaky)
            assert int(before // 0.2) <= window <= int(time.time() // 0.2)
            grants.append((window, 3))

    await asyncio.gather(*(worker() for _ in range(4)))
    per_window: dict[int, int] = {}
    for window, weight in grants:
        per_window[window] = per_window.get(window, 0) + weight
    assert sum(per_window.values()) == 120 == budget.granted
    assert max(per_window.values()) <= 20
    assert len(per_window) >= 6 and budget.waits >= 5


async def test_the_servers_count_wins_when_higher_and_stale_answers_are_ignored() -> None:
    now = [1000.0]
    budget = WeightBudget(100, headroom=1.0, window_s=60.0, wall=lambda: now[0], burst=1.0)
    window = await budget.acquire(5)
    budget.observe(90, window)  # another process on this IP spent weight too
    assert budget.used == 90
    budget.observe(10, window)  # never lowers our count
    assert budget.used == 90
    now[0] = 1021.0  # next window (1020 = 17 * 60)
    budget.observe(95, window)  # an answer about the previous window says nothing now
    assert budget.used == 0
    assert await budget.acquire(95) == window + 1  # 5 + 95 within any sliding 60 s
    now[0] = 1061.0  # the 5 granted at 1000 left the sliding window at 1060
    assert await budget.acquire(5) == window + 1


async def test_a_block_stops_every_caller_until_it_ends() -> None:
    budget = WeightBudget(1000, window_s=60.0)
    budget.block(0.3)
    t0 = time.monotonic()
    await asyncio.gather(*(budget.acquire(1) for _ in range(3)))
    assert time.monotonic() - t0 >= 0.29
    assert not budget.blocked and budget.granted == 3


async def test_a_request_heavier_than_the_budget_goes_alone_into_a_window() -> None:
    budget = WeightBudget(5, headroom=1.0, window_s=0.1)
    await budget.acquire(8)  # would never fit: allowed into the empty window
    w = await budget.acquire(1)  # waits for the next window
    assert w == int(time.time() // 0.1) and budget.used == 1


async def test_30_day_1m_backfill_of_three_symbols_stays_under_the_weight_limit() -> None:
    """3 symbols x 43,200 1m candles. The simulator's weight window is shortened to 1 s with a
    limit of 120 per window (the real 2400/min would let the whole job fit in one window), so
    the job needs several windows and the budget is what keeps it out of 429s."""
    days = 30
    n = days * DAY // MINUTE
    start = 1_704_067_200_000
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    async with Simulator(venues=(USDM,), symbols=symbols, intervals=("1m",),
                         start_time_ms=start + days * DAY, history=n, rest_window_s=1.0,
                         rest_weight_limit=120) as sim:
        # generate the truth first (the simulator serves from its cache afterwards), so the
        # requests go as fast as the budget allows
        truths = {s: sim.closed_candles(USDM, s, "1m") for s in symbols}
        async with RestClient(BinanceHistoryCodec(BINANCE_USDM), sim.rest_base(USDM),
                              weight_limit=120, window_s=1.0) as client:
            fetcher = KlineFetcher(BinanceHistoryCodec(BINANCE_USDM), client, clock=sim.clock)
            t0 = time.monotonic()
            results = await asyncio.gather(*(fetcher.fetch(s, "1m", start, start + days * DAY)
                                             for s in symbols))
            elapsed = time.monotonic() - t0
        rest = sim.stats()[USDM].rest
        for symbol, got in zip(symbols, results, strict=True):
            assert len(got) == n
            assert [rest_fields(c) for c in got] == [rest_fields(c) for c in truths[symbol]]
    assert rest.rejected_429 == 0 and rest.banned_418 == 0
    assert fetcher.stats.rate_limited == 0 and fetcher.stats.retries == 0
    # 87 pages of <= 499 candles per symbol (weight 2 each): 174 per symbol
    assert fetcher.stats.requests == 3 * 87 and fetcher.stats.weight_used == 3 * 174
    assert client.budget.waits >= 4  # the limit was really in play
    print(f"30-day backfill: {3 * n} candles, {fetcher.stats.requests} requests, "
          f"{fetcher.stats.weight_used} weight, {elapsed:.1f}s")


async def test_no_burst_of_twice_the_limit_across_a_window_boundary() -> None:
    """Aligned windows alone would grant 100 at 59.9 s and 100 more at 60.1 s; a venue whose
    windows start elsewhere (BingX) sees 200 in one window. The sliding bound refuses."""
    now = [59.9]
    budget = WeightBudget(100, headroom=1.0, window_s=60.0, wall=lambda: now[0], burst=1.0)
    for _ in range(100):
        await budget.acquire(1)
    now[0] = 60.1
    blocked = asyncio.create_task(budget.acquire(1))
    await asyncio.sleep(0.05)
    assert not blocked.done()  # must wait until 119.9 s
    now[0] = 120.0
    blocked.cancel()
    assert await budget.acquire(1) is not None


async def test_the_host_spends_rest_headroom_of_the_published_limit() -> None:
    """``rest.headroom`` (0.95 by default) is the share of the venue's limit the budget grants
    in any sliding window; the venue's other windows get the same share."""
    codec = BinanceHistoryCodec(BINANCE_USDM)
    async with RestClient(codec, "http://127.0.0.1:1",
                          options=RestOptions(shared_budget=False)) as default:
        assert default.budget.limit == int(2400 * 0.95)
    async with RestClient(codec, "http://127.0.0.1:1",
                          options=RestOptions(shared_budget=False, headroom=0.5)) as half:
        assert half.budget.limit == 1200


async def test_a_window_is_paced_not_spent_in_its_first_moments() -> None:
    """A quarter of the window's weight may go at once, the rest accrues evenly: demand above
    the budget no longer spends a minute's weight in seconds and then stops everything (a live
    fill arriving then waited for the next minute). A sustained job still gets the whole limit
    per window."""
    window_s = 1.0
    budget = WeightBudget(100, headroom=1.0, window_s=window_s, burst=0.25)
    await asyncio.sleep(window_s - time.time() % window_s + 0.01)  # a window's start
    start = (time.time() // window_s) * window_s
    times = []
    for _ in range(100):
        await budget.acquire(1)
        times.append(time.time() - start)
    for i, t in enumerate(times):  # grant i+1 (weight i+1 in all) not before its share
        assert t >= ((i + 1) / 100 - 0.25) * window_s - 0.005, (i, t)
    assert sum(1 for t in times if t < 0.1) <= 36  # a burst of 25, not of 100
    assert times[-1] < window_s  # and the whole limit inside the window
