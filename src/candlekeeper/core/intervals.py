"""Kline interval table and calendar arithmetic.

Every venue we support uses the same interval names (``1s`` .. ``1M``). Fixed-width intervals are
plain millisecond arithmetic; ``1M`` (calendar month) needs real calendar arithmetic because months
differ in length. Weeks open on Monday 00:00 UTC, as on every venue we serve (1970-01-01 was a
Thursday, so week alignment is offset by 4 days).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

SECOND: Final = 1_000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
WEEK: Final = 7 * DAY
MONTH_NAME: Final = "1M"
_WEEK_OFFSET: Final = 4 * DAY  # Thursday 1970-01-01 -> Monday 1970-01-05

#: interval name -> width in ms; ``1M`` maps to a nominal 31 days (an upper bound, used for
#: cadences and watchdogs only; alignment and successor use real calendar arithmetic).
INTERVAL_MS: Final[dict[str, int]] = {
    "1s": SECOND,
    "1m": MINUTE,
    "3m": 3 * MINUTE,
    "5m": 5 * MINUTE,
    "15m": 15 * MINUTE,
    "30m": 30 * MINUTE,
    "1h": HOUR,
    "2h": 2 * HOUR,
    "4h": 4 * HOUR,
    "6h": 6 * HOUR,
    "8h": 8 * HOUR,
    "12h": 12 * HOUR,
    "1d": DAY,
    "3d": 3 * DAY,
    "1w": WEEK,
    MONTH_NAME: 31 * DAY,
}

ALL_INTERVALS: Final[tuple[str, ...]] = tuple(INTERVAL_MS)


def nominal_ms(interval: str) -> int:
    """Width of the interval in ms (31 days for ``1M``)."""
    return INTERVAL_MS[interval]


def _month_start(ts_ms: int) -> datetime:
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return datetime(dt.year, dt.month, 1, tzinfo=UTC)


def _to_ms(dt: datetime) -> int:
    return int(dt.timestamp()) * 1000


def align(ts_ms: int, interval: str) -> int:
    """Open time of the candle of ``interval`` that contains ``ts_ms``."""
    if interval == MONTH_NAME:
        return _to_ms(_month_start(ts_ms))
    width = INTERVAL_MS[interval]
    if interval == "1w":
        return (ts_ms - _WEEK_OFFSET) // width * width + _WEEK_OFFSET
    return ts_ms // width * width


def next_open(open_time: int, interval: str) -> int:
    """Open time of the candle after the one opening at ``open_time``."""
    if interval == MONTH_NAME:
        start = _month_start(open_time)
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        return _to_ms(datetime(year, month, 1, tzinfo=UTC))
    return open_time + INTERVAL_MS[interval]


def prev_open(open_time: int, interval: str) -> int:
    """Open time of the candle before the one opening at ``open_time``."""
    if interval == MONTH_NAME:
        start = _month_start(open_time)
        year, month = (start.year - 1, 12) if start.month == 1 else (start.year, start.month - 1)
        return _to_ms(datetime(year, month, 1, tzinfo=UTC))
    return open_time - INTERVAL_MS[interval]


def close_time(open_time: int, interval: str) -> int:
    """The close time venues report: the last millisecond inside the candle."""
    return next_open(open_time, interval) - 1


def is_aligned(ts_ms: int, interval: str) -> bool:
    return align(ts_ms, interval) == ts_ms


def open_times(start: int, end: int, interval: str) -> list[int]:
    """Every candle open time ``t`` with ``start <= t < end`` (``start`` aligned up)."""
    t = align(start, interval)
    if t < start:
        t = next_open(t, interval)
    out: list[int] = []
    while t < end:
        out.append(t)
        t = next_open(t, interval)
    return out
