"""Rate-limited logging: the first occurrence of each kind of trouble, then at most one line
per period with the count of what was suppressed.

Bad input can arrive thousands of times a second; logging each occurrence would itself become
the outage. Lives in ``core`` (it needs nothing but :mod:`logging`) so every layer may use it.
"""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    """Log the first occurrence of each ``kind``, then at most once per ``period_s``."""

    def __init__(self, logger: logging.Logger, period_s: float = 10.0) -> None:
        self._logger = logger
        self._period = period_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, kind: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self._period:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            msg = f"{msg} ({suppressed} similar suppressed)"
        self._logger.log(level, msg, *args)

    def warning(self, kind: str, msg: str, *args: object) -> None:
        self.log(logging.WARNING, kind, msg, *args)

    def error(self, kind: str, msg: str, *args: object) -> None:
        self.log(logging.ERROR, kind, msg, *args)
