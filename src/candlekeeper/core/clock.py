"""Injectable clocks.

The simulator runs market time faster than wall time (``speed``); the feed must judge "late",
"stalled" and "closed" in the venue's time, so everything that needs "now" takes a ``Clock``.
Durations in venue time are converted to wall seconds with :meth:`Clock.wall_seconds`.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    @property
    def speed(self) -> float:
        """Venue time per wall second (1.0 unless a simulator accelerates time)."""
        ...

    def time_ms(self) -> int:
        """Current venue time, Unix ms."""
        ...

    def wall_seconds(self, venue_ms: float) -> float:
        """How many wall-clock seconds ``venue_ms`` of venue time lasts."""
        ...


class SystemClock:
    speed = 1.0

    def time_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def wall_seconds(self, venue_ms: float) -> float:
        return venue_ms / 1000.0


class ScaledClock:
    """Venue time that starts at ``start_ms`` and runs ``speed`` times faster than wall time.

    ``monotonic_origin`` is the ``time.monotonic()`` value at which venue time was ``start_ms``.
    ``CLOCK_MONOTONIC`` is shared by every process of a machine, so a service in another
    process can follow a simulator's accelerated time exactly by reusing its
    ``(start_ms, speed, monotonic_origin)`` (``candlekeeper simulate`` prints them).
    """

    def __init__(self, start_ms: int | None = None, speed: float = 1.0, *,
                 monotonic_origin: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = float(speed)
        self._start_ms = time.time_ns() // 1_000_000 if start_ms is None else start_ms
        self._t0 = time.monotonic() if monotonic_origin is None else monotonic_origin

    @property
    def start_ms(self) -> int:
        return self._start_ms

    @property
    def monotonic_origin(self) -> float:
        return self._t0

    def time_ms(self) -> int:
        return self._start_ms + int((time.monotonic() - self._t0) * 1000.0 * self.speed)

    def wall_seconds(self, venue_ms: float) -> float:
        return venue_ms / 1000.0 / self.speed

    def wall_deadline(self, venue_ts_ms: int) -> float:
        """``time.monotonic()`` value at which venue time reaches ``venue_ts_ms``."""
        return self._t0 + (venue_ts_ms - self._start_ms) / 1000.0 / self.speed
