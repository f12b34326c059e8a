"""Which archive files cover a stream's missing ranges: whole months first, then whole days.

Pure (no I/O, no clock). The ranges come from storage (``missing_ranges``) already capped at the
candle forming now, so a period that fits inside one is over: the current day and month never
do. What no whole period covers (the start and end of a range cut mid-day, a range shorter than
a day) stays with REST, which fills it afterwards from what storage still lacks.

Why a period must lie *inside* a missing range: every candle of a file is then missing, so the
archive never re-downloads a stored candle, exactly like REST never re-fetches one. A month
with one stored candle in its middle is fetched as the daily files around that candle.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from candlekeeper.core.intervals import DAY, MONTH_NAME, align, next_open
from candlekeeper.venues.contract import ArchivePeriod

__all__ = ["daily", "days_of", "monthly", "plan_periods"]


def _date(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def monthly(start: int) -> ArchivePeriod:
    """The month starting at ``start`` (a month's first instant, UTC)."""
    return ArchivePeriod("monthly", start, next_open(start, MONTH_NAME),
                         _date(start).strftime("%Y-%m"))


def daily(start: int) -> ArchivePeriod:
    """The day starting at ``start`` (midnight UTC)."""
    return ArchivePeriod("daily", start, start + DAY, _date(start).strftime("%Y-%m-%d"))


def days_of(period: ArchivePeriod) -> list[ArchivePeriod]:
    """The daily files of a period (a month's days; a day is itself)."""
    return [daily(t) for t in range(period.start, period.end, DAY)]


def plan_periods(ranges: Sequence[tuple[int, int]]) -> list[ArchivePeriod]:
    """Archive periods inside ``ranges`` (``[start, end)`` ms, ascending, disjoint): each whole
    month inside a range as one monthly file, every other whole day as a daily file."""
    out: list[ArchivePeriod] = []
    for a, b in ranges:
        d = align(a, "1d")
        if d < a:
            d += DAY
        while d + DAY <= b:
            month_end = next_open(align(d, MONTH_NAME), MONTH_NAME)
            if align(d, MONTH_NAME) == d and month_end <= b:
                out.append(monthly(d))
                d = month_end
            else:
                out.append(daily(d))
                d += DAY
    return out

