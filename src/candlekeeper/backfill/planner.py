"""Pure planning for REST history: which candles are missing, and how to page for them.

Everything here is arithmetic on open times (no I/O, no clock), so the feed's gap repair, the
``backfill`` command and the ``gaps`` audit agree on what a hole is, and the paging and weight
choices can be tested exhaustively. Ranges are half-open ``[start, end)`` in Unix ms over candle
*open* times, like ``open_times`` in :mod:`candlekeeper.core.intervals`; calendar months work
because every step goes through ``next_open``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from candlekeeper.core.intervals import INTERVAL_MS, MONTH_NAME, align, next_open, open_times
from candlekeeper.venues.contract import VenueSpec, klines_weight

__all__ = [
    "count_open_times",
    "first_open",
    "missing_ranges",
    "optimal_limit",
    "pages",
    "plan_cost",
]


def first_open(start: int, interval: str) -> int:
    """The first candle open time ``>= start`` (``start`` aligned up)."""
    t = align(start, interval)
    return t if t >= start else next_open(t, interval)


def count_open_times(start: int, end: int, interval: str) -> int:
    """How many candles open in ``[start, end)``."""
    t = first_open(start, interval)
    if t >= end:
        return 0
    if interval == MONTH_NAME:
        return len(open_times(t, end, interval))
    width = INTERVAL_MS[interval]
    return (end - t + width - 1) // width


def missing_ranges(open_times_: Sequence[int] | Iterable[int], interval: str, start: int,
                   end: int) -> list[tuple[int, int]]:
    """Holes in a series, as ``[start, end)`` ranges of open times.

    ``open_times_`` are the candles we hold (any order, duplicates and values outside the range
    allowed, unaligned values ignored: they cannot be candles of this interval). Every expected
    open time in ``[start, end)`` that is not held belongs to exactly one returned range; ranges
    are ascending, non-overlapping and maximal (adjacent missing candles form one range), and each
    range starts on a missing open time and ends on the next held one (or ``end``).
    """
    t = first_open(start, interval)
    if t >= end:
        return []
    held = sorted({o for o in open_times_ if t <= o < end and align(o, interval) == o})
    holes: list[tuple[int, int]] = []
    for o in held:
        if o > t:
            holes.append((t, o))
        t = next_open(o, interval)
    if t < end:
        holes.append((t, end))
    return holes


def pages(start: int, end: int, interval: str, limit: int) -> list[tuple[int, int]]:
    """Request windows ``[ws, we)`` that cover ``[start, end)`` with at most ``limit`` candles
    each: every window but the last holds exactly ``limit`` open times, and the windows tile the
    range without overlap, so a page can be requested as ``startTime=ws, endTime=we - 1``."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    t = first_open(start, interval)
    out: list[tuple[int, int]] = []
    if interval == MONTH_NAME:
        times = open_times(t, end, interval)
        for i in range(0, len(times), limit):
            chunk = times[i:i + limit]
            out.append((chunk[0], min(end, next_open(chunk[-1], interval))))
        return out
    step = INTERVAL_MS[interval] * limit
    while t < end:
        out.append((t, min(end, t + step)))
        t += step
    return out


def plan_cost(spec: VenueSpec, count: int, limit: int) -> tuple[int, int]:
    """``(total weight, requests)`` to fetch ``count`` candles in pages of ``limit``, the last,
    shorter page being requested with its own (possibly cheaper) ``limit``."""
    full, rest = divmod(count, limit)
    weight = full * klines_weight(spec, limit) + (klines_weight(spec, rest) if rest else 0)
    return weight, full + (1 if rest else 0)


def optimal_limit(spec: VenueSpec, count: int) -> int:
    """The page ``limit`` that fetches ``count`` candles for the least request weight (ties: the
    fewest requests), never above the venue's maximum.

    Why not always the maximum: USDⓈ-M weighs a klines call by its ``limit`` (1 below 100, 2 below
    500, 5 up to 1000, 10 above), so 499 candles cost 2 (250 per weight unit) while 1500 cost 10
    (150 per unit): a month of 1m candles costs 174 weight in pages of 499 and 290 in pages of
    1500. Spot charges 2 whatever the limit, so its optimum is simply its maximum (1000).
    """
    if count <= 0:
        return 1
    cap = spec.rest_max_limit
    candidates = {min(cap, count)}
    for upper, _ in spec.rest_klines_weights:
        candidates.add(max(1, min(cap, count, upper - 1)))
    return min(sorted(candidates, reverse=True), key=lambda lim: plan_cost(spec, count, lim))
