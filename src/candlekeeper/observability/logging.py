"""Structured, rate-limited logging helpers.

Bad input can arrive thousands of times a second; logging each occurrence would itself become the
outage. ``RateLimitedLog`` logs the first occurrence of a kind and then at most once per period,
reporting how many were suppressed in between.
"""

from __future__ import annotations

import json as _json
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


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


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Built with ``json.dumps`` so quotes, newlines and tracebacks in
    messages stay valid JSON (a ``%``-format template would break on the first quote)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _json.dumps(out, ensure_ascii=False, default=str)


def configure(level: str = "INFO", json: bool = False, console: Console | None = None) -> None:
    """Configure root logging once for the CLI (the library never touches global logging).

    Pass the dashboard's rich ``console`` to log through it: lines then print above the live
    table instead of tearing it. ``json=True`` wins over ``console`` (machines read JSON logs).
    """
    handler: logging.Handler
    if json:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
    elif console is not None:
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler],
                        force=True)
