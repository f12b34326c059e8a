"""Pure planning: holes, request windows and the weight-optimal page limit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from candlekeeper.backfill.planner import (
    count_open_times,
    missing_ranges,
    optimal_limit,
    pages,
    plan_cost,
)
from candlekeeper.core.intervals import HOUR, MINUTE, next_open, open_times
from candlekeeper.venues.binance.endpoints import BINANCE_SPOT, BINANCE_USDM

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000  # type: ignore[misc]


def test_missing_ranges_of_an_empty_series_is_the_whole_range() -> None:
    assert missing_ranges([], "1m", T0, T0 + 10 * MINUTE) == [(T0, T0 + 10 * MINUTE)]
    # start aligned up: the candle opening before start is not expected
    assert missing_ranges([], "1m", T0 + 1, T0 + 3 * MINUTE) == [(T0 + MINUTE, T0 + 3 * MINUTE)]
    assert missing_ranges([], "1m", T0, T0) == []
    assert missing_ranges([], "1h", T0 + 1, T0 + HOUR) == []


def test_missing_ranges_finds_every_hole_exactly() -> None:
    held = [T0 + i * MINUTE for i in (0, 1, 2, 5, 6, 9)]
    holes = missing_ranges(held, "1m", T0, T0 + 12 * MINUTE)
    assert holes == [(T0 + 3 * MINUTE, T0 + 5 * MINUTE), (T0 + 7 * MINUTE, T0 + 9 * MINUTE),
                     (T0 + 10 * MINUTE, T0 + 12 * MINUTE)]
    missing = [t for a, b in holes for t in open_times(a, b, "1m")]
    assert missing == [T0 + i * MINUTE for i in (3, 4, 7, 8, 10, 11)]


def test_missing_ranges_ignores_order_duplicates_outsiders_and_unaligned() -> None:
    held = [T0 + 2 * MINUTE, T0, T0, T0 - MINUTE, T0 + 99 * MINUTE, T0 + MINUTE + 7]
    assert missing_ranges(held, "1m", T0, T0 + 4 * MINUTE) == [
        (T0 + MINUTE, T0 + 2 * MINUTE), (T0 + 3 * MINUTE, T0 + 4 * MINUTE)]
    full = [T0 + i * MINUTE for i in range(4)]
    assert missing_ranges(reversed(full), "1m", T0, T0 + 4 * MINUTE) == []


def test_missing_ranges_for_calendar_months_and_weeks() -> None:
    held = [ms(2024, 1, 1), ms(2024, 2, 1), ms(2024, 4, 1)]
    assert missing_ranges(held, "1M", ms(2024, 1, 1), ms(2024, 6, 1)) == [
        (ms(2024, 3, 1), ms(2024, 4, 1)), (ms(2024, 5, 1), ms(2024, 6, 1))]
    # 2024-01-01 is a Monday: weeks open there, not on the epoch's Thursday
    monday = ms(2024, 1, 1)
    assert missing_ranges([monday], "1w", ms(2023, 12, 31), ms(2024, 1, 16)) == [
        (ms(2024, 1, 8), ms(2024, 1, 16))]


def test_count_open_times_matches_the_enumeration() -> None:
    for interval, start, end in [("1m", T0, T0 + 1000 * MINUTE), ("1m", T0 + 1, T0 + 3),
                                 ("5m", T0 + 1, T0 + 61 * MINUTE), ("1M", ms(2023, 11, 15),
                                                                    ms(2025, 1, 2)),
                                 ("1w", ms(2024, 1, 3), ms(2024, 3, 1)), ("1h", T0, T0)]:
        assert count_open_times(start, end, interval) == len(open_times(start, end, interval))


@pytest.mark.parametrize("limit", [1, 7, 499, 500, 1000, 1500])
@pytest.mark.parametrize("interval", ["1m", "1h", "1M"])
def test_pages_tile_the_range_with_at_most_limit_candles(limit: int, interval: str) -> None:
    start = ms(2020, 1, 1) + 17 if interval != "1M" else ms(1990, 1, 15)
    end = start + 5_000 * 60_000 if interval != "1M" else ms(2024, 3, 1)
    windows = pages(start, end, interval, limit)
    expected = open_times(start, end, interval)
    seen: list[int] = []
    for i, (ws, we) in enumerate(windows):
        inside = open_times(ws, we, interval)
        assert inside and inside[0] == ws and ws < we
        assert len(inside) == limit or i == len(windows) - 1
        assert len(inside) <= limit
        if i:
            assert windows[i - 1][1] == ws  # no overlap, no gap
        seen.extend(inside)
    assert seen == expected
    assert windows[-1][1] == end


def test_pages_boundaries() -> None:
    assert pages(T0, T0 + 1500 * MINUTE, "1m", 1500) == [(T0, T0 + 1500 * MINUTE)]
    assert pages(T0, T0 + 1501 * MINUTE, "1m", 1500) == [
        (T0, T0 + 1500 * MINUTE), (T0 + 1500 * MINUTE, T0 + 1501 * MINUTE)]
    assert pages(T0, T0 + 1499 * MINUTE + 1, "1m", 1500) == [(T0, T0 + 1499 * MINUTE + 1)]
    assert pages(T0, T0, "1m", 10) == []
    with pytest.raises(ValueError, match="limit"):
        pages(T0, T0 + MINUTE, "1m", 0)
    # months: each window ends where its last month ends
    assert pages(ms(2024, 1, 1), ms(2024, 3, 10), "1M", 2) == [
        (ms(2024, 1, 1), ms(2024, 3, 1)), (ms(2024, 3, 1), ms(2024, 3, 10))]
    assert next_open(ms(2024, 2, 1), "1M") == ms(2024, 3, 1)


def brute_force(spec_count: int, spec: object) -> tuple[int, int]:
    from candlekeeper.venues.contract import VenueSpec

    assert isinstance(spec, VenueSpec)
    return min(plan_cost(spec, spec_count, lim) for lim in range(1, spec.rest_max_limit + 1))


@pytest.mark.parametrize("count", [1, 50, 99, 100, 150, 198, 499, 500, 520, 998, 1000, 1001,
                                   1500, 1501, 3000, 43_200])
def test_optimal_limit_is_as_cheap_as_any_single_limit(count: int) -> None:
    for spec in (BINANCE_USDM, BINANCE_SPOT):
        limit = optimal_limit(spec, count)
        assert 1 <= limit <= spec.rest_max_limit
        assert plan_cost(spec, count, limit)[0] == brute_force(count, spec)[0]


def test_optimal_limit_values() -> None:
    # USDⓈ-M: 499 per page (weight 2) beats 1500 (weight 10): a month of 1m is 174 vs 290
    assert optimal_limit(BINANCE_USDM, 43_200) == 499
    assert plan_cost(BINANCE_USDM, 43_200, 499) == (174, 87)
    assert plan_cost(BINANCE_USDM, 43_200, 1500) == (290, 29)
    assert optimal_limit(BINANCE_USDM, 60) == 60  # one page, weight 1
    assert optimal_limit(BINANCE_USDM, 300) == 300  # one page of weight 2 beats 4 of weight 1
    # spot: weight 2 whatever the limit -> the maximum, fewest requests
    assert optimal_limit(BINANCE_SPOT, 43_200) == 1000
    assert optimal_limit(BINANCE_SPOT, 10) == 10
    assert optimal_limit(BINANCE_SPOT, 0) == 1
