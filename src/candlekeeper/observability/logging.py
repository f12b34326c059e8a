"""Logging set-up for the CLI: plain, JSON or through the dashboard's console.

``RateLimitedLog`` (bad input can arrive thousands of times a second) lives in
:mod:`candlekeeper.core.ratelog`, where every layer may use it; it is re-exported here.
"""

from __future__ import annotations

import json as _json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from candlekeeper.core.ratelog import RateLimitedLog

__all__ = ["JsonFormatter", "RateLimitedLog", "configure"]

if TYPE_CHECKING:
    from rich.console import Console


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
