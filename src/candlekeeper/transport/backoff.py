"""Reconnection policy as pure functions: a backoff generator and an error classifier.

Kept free of asyncio and clocks so the policy is tested without an event loop, and so the loop
that applies it (``session.py``) stays small. The generator never ends: a feed retries forever,
and each failure is logged and reported, so giving up is never silent.
"""

from __future__ import annotations

import enum
import random
import ssl
from collections.abc import Iterator

from candlekeeper.errors import CandlekeeperError, ConfigError


def backoff_delays(initial_s: float = 1.0, factor: float = 2.0, max_s: float = 60.0,
                   jitter: float = 0.2, rng: random.Random | None = None) -> Iterator[float]:
    """Capped, jittered exponential delays: ``initial_s``, ×``factor`` each time, capped at
    ``max_s``; infinite.

    Jitter is *downward only*: each delay is drawn uniformly from
    ``[base·(1−jitter), base]``. Downward jitter still spreads many clients that lost the same
    server, and it keeps the documented promises exact: the first retry never waits more than
    ``initial_s`` and no retry ever waits more than ``max_s``. ``jitter=0`` is deterministic.
    To reset after a healthy connection, start a new generator.
    """
    if initial_s < 0 or max_s < 0:
        raise ValueError("backoff delays must be >= 0")
    if factor < 1:
        raise ValueError("backoff factor must be >= 1")
    if not 0 <= jitter <= 1:
        raise ValueError("backoff jitter must be in [0, 1]")
    rand = (rng or random.Random()).random
    base = min(initial_s, max_s)
    while True:
        yield base * (1.0 - jitter * rand()) if jitter else base
        base = min(base * factor, max_s)


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
