"""Keeping a feed's :class:`~candlekeeper.core.venue_clock.VenueClock` fed (issue 9).

One small task per feed:

* **REST server time** through the venue's shared :class:`RestClient` (so it counts against
  the venue's weight budget like every other request; weight 1): twice at start (the first
  answer may carry a connection set-up in its round trip, the second does not), then every
  ``gap_fill.server_time_every_s`` (5 min), sooner while the venue clock says a disagreeing
  answer waits for confirmation (a host clock step) or after a failure (the one backoff).
* **WebSocket event times**, once per :data:`TICK_S` of wall time: the newest event time any
  stream of the feed received (``event_time()``, read from the per-stream counters the hot path
  already writes) against the base clock read *after* it — a lower bound on the offset. No
  clock is read per frame.

A failed server-time request is one rate-limited line and a counter (``errors_total{kind=
"server_time"}`` through ``count_error``), never fatal: the clock keeps its last estimate (or
the host clock). A host clock surely further from the venue's than
``gap_fill.clock_offset_warn_ms`` is one WARNING line, repeated at most every
``gap_fill.clock_warning_every_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from candlekeeper.backfill.http import RestClient
from candlekeeper.core.backoff import backoff_delays
from candlekeeper.core.ratelog import RateLimitedLog
from candlekeeper.core.venue_clock import VenueClock
from candlekeeper.errors import CandlekeeperError
from candlekeeper.gapfill import GapFillOptions

__all__ = ["TICK_S", "ClockSync", "describe_offset"]

log = logging.getLogger(__name__)

#: wall seconds between two looks at the newest WebSocket event time
TICK_S = 1.0
#: wall seconds ``start`` waits for the venue's server time before going on with the host
#: clock (a venue that cannot answer must not hold the feed back)
START_TIMEOUT_S = 5.0


class ClockSync:
    """Feeds ``clock`` for one feed of ``venue`` (see the module docstring). ``rest`` is None
    when the feed has no REST (gap filling off): then only event times are used."""

    def __init__(self, clock: VenueClock, venue: str, rest: RestClient | None, *,
                 event_time: Callable[[], int | None], options: GapFillOptions | None = None,
                 count_error: Callable[[str], None] | None = None) -> None:
        self.clock = clock
        self.venue = venue
        self.rest = rest
        self.options = options or GapFillOptions()
        self._event_time = event_time
        self._count_error = count_error
        self._task: asyncio.Task[None] | None = None
        self._last_event: int | None = None
        self._limited = RateLimitedLog(log)
        self._warnings = RateLimitedLog(log, self.options.clock_warning_every_s)
        self._announced = False
        #: server-time answers used, and requests that failed
        self.samples = 0
        self.failures = 0

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Take the venue's time before anything decides by it (bounded by
        :data:`START_TIMEOUT_S`), then keep it up to date in the background."""
        if self._task is not None:
            return
        if self.rest is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(START_TIMEOUT_S):
                    if await self.sample():
                        await self.sample()
            if not self.clock.synced:
                self._limited.warning("start", "%s: no server time within %g s; deciding by the "
                                      "host clock until the venue answers", self.venue,
                                      START_TIMEOUT_S)
        self._task = asyncio.get_running_loop().create_task(self._run(),
                                                            name=f"clock:{self.venue}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- samples ------------------------------------------------------------------------------
    async def sample(self) -> bool:
        """One REST server-time round trip into the clock; False when it failed."""
        if self.rest is None:
            return False
        codec = self.rest.codec
        base = self.clock.base
        try:
            sent = base.time_ms()
            body = await self.rest.fetch(codec.server_time_request())
            received = base.time_ms()
            server = codec.decode_server_time(body)
        except (CandlekeeperError, OSError, TimeoutError) as exc:
            self.failures += 1
            if self._count_error is not None:
                self._count_error("server_time")
            self._limited.warning("server_time", "%s: cannot read the venue's server time: %s",
                                  self.venue, exc)
            return False
        if not self.clock.add_server_time(server, sent, received):
            return False
        self.samples += 1
        self._report()
        return True

    def look_at_frames(self) -> None:
        """The newest event time against the base clock read after it (one periodic tick)."""
        event = self._event_time()
        if event is None or event == self._last_event:
            return  # nothing new: a staler bound would only be looser
        self._last_event = event
        self.clock.add_event_time(event, self.clock.base.time_ms())
        if not self.clock.synced:
            self._report()

    async def _run(self) -> None:
        o = self.options
        next_rest = time.monotonic() + (o.server_time_every_s if self.clock.synced else 0.0)
        retries = backoff_delays(1.0, 2.0, o.server_time_every_s)
        while True:
            await asyncio.sleep(TICK_S)
            self.look_at_frames()
            if self.rest is None or time.monotonic() < next_rest:
                continue
            ok = await self.sample()
            if ok and not self.clock.unsettled:
                retries = backoff_delays(1.0, 2.0, o.server_time_every_s)
                next_rest = time.monotonic() + o.server_time_every_s
            else:
                next_rest = time.monotonic() + next(retries)

    # -- reporting ----------------------------------------------------------------------------
    def _report(self) -> None:
        est = self.clock.estimate()
        if not self._announced and est.source == "rest":
            self._announced = True
            log.info("%s: %s", self.venue, describe_offset(self.clock))
        sure = abs(est.offset_ms) - (est.uncertainty_ms or 0.0)
        if sure > self.options.clock_offset_warn_ms:
            self._warnings.warning("offset", "%s: the host clock is %s; candlekeeper decides "
                                   "closes by the venue's clock, but other software on this "
                                   "host may not: synchronise it (NTP)", self.venue,
                                   describe_offset(self.clock, relative=True))


def describe_offset(clock: VenueClock, *, relative: bool = False) -> str:
    """``venue clock is +15.002 s from the host's (±0.004 s, from REST)``, or with
    ``relative``: ``15.002 s behind the venue's (±0.004 s, from REST)``."""
    est = clock.estimate()
    unc = "" if est.uncertainty_ms is None else f"±{est.uncertainty_ms / 1000:.3f} s, "
    how = f"({unc}from {'REST server time' if est.source == 'rest' else 'event times'})"
    seconds = est.offset_ms / 1000
    if relative:
        side = "behind" if seconds > 0 else "ahead of"
        return f"{abs(seconds):.3f} s {side} the venue's {how}"
    return f"venue clock is {seconds:+.3f} s from the host's {how}"
