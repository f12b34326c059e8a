"""Which archive files cover missing ranges: whole months, then whole days, nothing partial."""

from __future__ import annotations

from datetime import UTC, datetime

from candlekeeper.backfill.archive_plan import daily, days_of, monthly, plan_periods
from candlekeeper.core.intervals import DAY, HOUR


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000  # type: ignore[misc]


def labels(ranges: list[tuple[int, int]]) -> list[str]:
    return [p.label for p in plan_periods(ranges)]


def test_whole_months_then_whole_days_and_never_a_partial_day() -> None:
    assert labels([(ms(2025, 1, 1), ms(2025, 3, 3, 12))]) == [
        "2025-01", "2025-02", "2025-03-01", "2025-03-02"]
    # starting mid-day: that day is REST's; the month is cut, so its days
    got = labels([(ms(2024, 12, 30, 10), ms(2025, 2, 1))])
    assert got == ["2024-12-31", "2025-01"]
    assert labels([(ms(2024, 2, 10), ms(2024, 3, 1))]) == [
        f"2024-02-{d:02d}" for d in range(10, 30)]  # a leap February, cut: days
    assert labels([(ms(2025, 1, 1), ms(2025, 1, 1, 23))]) == []
    assert labels([]) == []


def test_several_ranges_and_a_stored_candle_inside_a_month() -> None:
    # one candle stored on 2025-01-15 splits January into two ranges: its days, not the month
    ranges = [(ms(2025, 1, 1), ms(2025, 1, 15, 6)), (ms(2025, 1, 15, 6, 1), ms(2025, 2, 1))]
    got = labels(ranges)
    assert got == [f"2025-01-{d:02d}" for d in range(1, 15)] + [
        f"2025-01-{d:02d}" for d in range(16, 32)]


def test_periods() -> None:
    jan = monthly(ms(2025, 1, 1))
    assert (jan.kind, jan.start, jan.end, jan.label) == ("monthly", ms(2025, 1, 1),
                                                         ms(2025, 2, 1), "2025-01")
    assert daily(ms(2024, 2, 29)).end == ms(2024, 3, 1)
    days = days_of(monthly(ms(2024, 2, 1)))
    assert len(days) == 29 and days[0] == daily(ms(2024, 2, 1))
    assert all(d.end - d.start == DAY for d in days) and days[-1].end == ms(2024, 3, 1)
    assert days_of(daily(ms(2024, 2, 1))) == [daily(ms(2024, 2, 1))]
    assert HOUR * 24 == DAY
