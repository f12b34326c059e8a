"""The scheduling loop every simulated venue's pusher runs (whatever the venue).

A pusher knows *what* is due (``step``) and *when* something next may be (``next_wake``); this
loop only sleeps until then, or until a subscription change wakes it early, and makes sure a bug
in one step never silences every stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

log = logging.getLogger(__name__)


class Pumped(Protocol):
    errors: int

    @property
    def wake(self) -> asyncio.Event:
        """Set to cut the current sleep short (a new subscription, say)."""
        ...

    def step(self, now_mono: float) -> None: ...

    def next_wake(self, now_mono: float) -> float: ...

    def after_error(self, now_mono: float) -> None:
        """Reschedule after a failed step (e.g. skip to the next cadence tick)."""
        ...


async def pump(pusher: Pumped, label: str) -> None:
    """Run ``pusher`` until cancelled."""
    wake = pusher.wake
    while True:
        now = time.monotonic()
        try:
            pusher.step(now)
        except Exception:  # a bug must not silence every stream: log, count, go on
            pusher.errors += 1
            log.exception("%s: pusher step failed (%d so far)", label, pusher.errors)
            pusher.after_error(now)
        delay = pusher.next_wake(time.monotonic()) - time.monotonic()
        if delay > 0:
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)
        else:
            await asyncio.sleep(0)
