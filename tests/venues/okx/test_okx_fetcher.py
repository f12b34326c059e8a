"""The generic fetcher on OKX's REST semantics, against the simulator: a row OKX marks not final
(``confirm`` "0") is never stored as closed, whatever the clock says, and the first candle of a
listing is found although a ``limit=1`` request answers the *newest* row of its range."""

from __future__ import annotations

import pytest

from candlekeeper.backfill import KlineFetcher, RestClient
from candlekeeper.core.intervals import MINUTE
from candlekeeper.sim import Simulator
from candlekeeper.venues.registry import history_codec

pytestmark = pytest.mark.integration

T0 = 1_704_067_200_000
HISTORY = 720


async def test_rows_the_venue_says_are_not_final_are_not_stored() -> None:
    # REST shows a candle's final values only 5 venue minutes after its close
    async with Simulator(venues=("okx-swap",), symbols=["BTCUSDT"], intervals=("1m",),
                         start_time_ms=T0, history=HISTORY, rest_final_delay_ms=5 * MINUTE,
                         speed=1.0) as sim:
        async with RestClient(history_codec("okx-swap"), sim.rest_base("okx-swap")) as client:
            fetcher = KlineFetcher(client.codec, client, clock=sim.clock)
            forming: list[object] = []
            rows = await fetcher.fetch("BTCUSDT", "1m", T0 - 20 * MINUTE, T0,
                                       forming=forming.append)
        truth = {c.open_time: c for c in sim.closed_candles("okx-swap", "BTCUSDT", "1m")}
    # by the clock all 20 closed; REST confirms only those closed 5 minutes ago
    assert [c.open_time for c in rows] == [T0 - i * MINUTE for i in range(20, 5, -1)]
    assert all(c.closed and c.same_values(truth[c.open_time], trade_ids=False) for c in rows)
    assert fetcher.stats.forming_dropped == 1 and len(forming) == 1


async def test_the_first_candle_of_a_listing_is_found_on_a_newest_first_venue() -> None:
    async with Simulator(venues=("okx-spot",), symbols=["BTCUSDT"], intervals=("1m",),
                         start_time_ms=T0, history=HISTORY, rest_final_delay_ms=0) as sim, \
            RestClient(history_codec("okx-spot"), sim.rest_base("okx-spot")) as client:
        fetcher = KlineFetcher(client.codec, client, clock=sim.clock)
        first = await fetcher.first_open_time("BTCUSDT", "1m", T0 - 100_000 * MINUTE, T0)
        assert first == T0 - HISTORY * MINUTE
        assert fetcher.stats.requests <= 20  # 2 + a bisection of 100,000 candles
        rows = await fetcher.fetch("BTCUSDT", "1m", T0 - 100_000 * MINUTE, T0)
    assert [c.open_time for c in rows] == [T0 - i * MINUTE for i in range(HISTORY, 0, -1)]
