"""The one retry policy: capped, jittered exponential backoff, as a pure generator.

Every loop that retries — WebSocket reconnects, REST pages and rate limits, gap fills, sink
writes, symbol lookup — draws its delays from :func:`backoff_delays`, so there is one place
that says how candlekeeper waits (issue: "one policy per concern"). Pure (no asyncio, no
clock), so it is tested without an event loop. The generator never ends: callers that must
give up count attempts themselves, and log when they do, so giving up is never silent.
"""

from __future__ import annotations

import random
from collections.abc import Iterator


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
