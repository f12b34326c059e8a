"""Reconnection policy as pure functions: the error classifier, next to the one backoff
generator (:func:`candlekeeper.core.backoff.backoff_delays`, shared by every retry loop).

Kept free of asyncio and clocks so the policy is tested without an event loop, and so the loop
that applies it (``session.py``) stays small.
"""

from __future__ import annotations

import enum
import ssl

from candlekeeper.core.backoff import backoff_delays
from candlekeeper.errors import CandlekeeperError, ConfigError

__all__ = ["Verdict", "backoff_delays", "classify", "describe"]


class Verdict(enum.Enum):
    RETRY = "retry"
    FATAL = "fatal"


def classify(exc: BaseException) -> Verdict:
    """Should the session retry after ``exc``?

    Anything the network or the venue can cause is retried: refused or reset connections, DNS
    failures (no network), timeouts, TLS errors, HTTP statuses on the upgrade (404, 429, 5xx —
    a venue may briefly misroute), protocol violations. Only configuration mistakes, which no
    amount of waiting fixes (a malformed URL, an unknown interval), and programming errors are
    fatal; they are raised to the caller rather than logged forever.
    """
    if isinstance(exc, ConfigError):
        return Verdict.FATAL
    if isinstance(exc, CandlekeeperError | OSError | TimeoutError | EOFError | ssl.SSLError):
        return Verdict.RETRY
    return Verdict.FATAL


def describe(exc: BaseException) -> str:
    """One human line for a failure, without a traceback."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, CandlekeeperError) and text:
        return text
    if isinstance(exc, TimeoutError):
        return f"timed out{': ' + text if text else ''}"
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
