"""The gap audit of an export, computed while the rows stream past (constant memory).

The same definition of a hole as ``candlekeeper gaps`` (``backfill.planner.missing_ranges``):
every expected open time in ``[start, end)`` that is not stored belongs to exactly one maximal
range ``[first missing, next stored)``. ``missing_ranges`` needs every open time at once; an
export of millions of rows must not hold them, and its rows already arrive in open-time order,
so :class:`StreamAuditor` walks them once, keeps the totals and only the first
``keep`` holes.
"""

from __future__ import annotations

from typing import Any

from candlekeeper.backfill.planner import count_open_times, first_open
from candlekeeper.core.intervals import align, next_open
from candlekeeper.core.stream_key import StreamKey

__all__ = ["HOLES_KEPT", "StreamAuditor"]

#: holes listed per stream in the metadata; the totals always count all of them
HOLES_KEPT = 20


class StreamAuditor:
    """Expected vs present candles of one stream over ``[start, end)``, fed open times in
    ascending order. ``start`` None: from the first candle fed (interior holes and the tail
    only). ``end`` is where candles are expected up to (the caller caps it at the candle forming
    now: that one cannot be stored yet); None: up to the last candle fed (no tail hole)."""

    def __init__(self, key: StreamKey, start: int | None, end: int | None, *,
                 keep: int = HOLES_KEPT) -> None:
        self.key = key
        self.start = start
        self.end = end
        self.keep = keep
        self.present = 0
        self.holes = 0
        self.missing = 0
        self.first_holes: list[tuple[int, int]] = []
        self._next: int | None = None if start is None else first_open(start, key.interval)

    def feed(self, open_time: int) -> None:
        """The next stored open time (ascending). Unaligned times and times outside the range
        are not candles of this range: ignored, as ``missing_ranges`` ignores them."""
        interval = self.key.interval
        past_end = self.end is not None and open_time >= self.end
        if past_end or align(open_time, interval) != open_time:
            return
        if self._next is None:
            self.start = self._next = open_time
        if open_time < self._next:
            return
        if open_time > self._next:
            self._hole(self._next, open_time)
        self.present += 1
        self._next = next_open(open_time, interval)

    def _hole(self, a: int, b: int) -> None:
        self.holes += 1
        self.missing += count_open_times(a, b, self.key.interval)
        if len(self.first_holes) < self.keep:
            self.first_holes.append((a, b))

    def result(self) -> dict[str, Any]:
        """The audit as plain JSON-able data (closes the tail hole, if any)."""
        if self.end is None:
            self.end = self._next if self._next is not None else self.start
        if self._next is not None and self.end is not None and self._next < self.end:
            self._hole(self._next, self.end)
            self._next = self.end
        start, end = self.start, self.end
        expected = 0 if start is None or end is None else count_open_times(
            start, end, self.key.interval)
        return {
            "venue": self.key.venue, "symbol": self.key.symbol, "interval": self.key.interval,
            "start": start, "end": self.end, "expected": expected, "present": self.present,
            "missing": self.missing, "holes": self.holes,
            "first_holes": [list(h) for h in self.first_holes],
            "holes_truncated": self.holes > len(self.first_holes),
        }
