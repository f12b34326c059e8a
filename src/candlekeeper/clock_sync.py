"""Keeping a feed's :class:`~candlekeeper.core.venue_clock.VenueClock` fed (issue 9).

One small task per feed:

* **REST server time** through the venue's shared :class:`RestClient` (so it counts against
  the venue's weight budget like every other request; weight 1; the round trip is timed from
  when the budget lets the request go, not from a wait for it): twice at start (the first
  answer may carry a connection set-up in its round trip, the second does not; fills wait for
  the first, :meth:`ClockSync.ready`), then every
  ``gap_fill.server_time_every_s`` (5 min), sooner (the one backoff) while the venue clock says
  a disagreeing answer waits for confirmation (a host clock step), after a failure, or after an
  answer that took more than :data:`SLOW_S` (it waited for the venue's weight budget, or the
  network was slow: valid, but wide).
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
#: an answer that took longer than this (wall seconds from sending, after any wait for the
#: venue's weight budget) is still valid but wide: it is asked again soon, and not announced
SLOW_S = 1.0


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
        #: set once fills may decide by this clock: a first answer came, or there is no REST,
        #: or the venue failed to answer ``max_fetch_attempts`` times in a row
        self._ready = asyncio.Event()
        if rest is None:
            self._ready.set()
        #: the last answer took more than SLOW_S of wall time
        self.last_slow = False
        #: server-time answers used, and requests that failed
        self.samples = 0
        self.failures = 0

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start asking (at once) and keep the clock up to date in the background. Does not
        wait: what decides by the clock awaits :meth:`ready`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name=f"clock:{self.venue}")

    async def ready(self) -> None:
        """Return once decisions may be taken by the clock: the venue's time is known, or the
        feed has no REST, or the venue failed to answer ``gap_fill.max_fetch_attempts`` times
        in a row (then the host clock is used, with a warning, until an answer comes). The gap
        filler awaits it before each fill, so no REST row is judged final by the host clock."""
        if not self._ready.is_set():
            await self._ready.wait()

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
        sent: list[tuple[int, float]] = []  # (base ms, monotonic) when the request went out
        try:
            body = await self.rest.fetch(codec.server_time_request(), on_send=lambda: sent.append(
                (base.time_ms(), time.monotonic())))
            received = base.time_ms()
            assert sent, "RestClient.fetch answered without sending"
            self.last_slow = time.monotonic() - sent[0][1] > SLOW_S
            server = codec.decode_server_time(body)
        except (CandlekeeperError, OSError, TimeoutError) as exc:
            self.failures += 1
            if self._count_error is not None:
                self._count_error("server_time")
            self._limited.warning("server_time", "%s: cannot read the venue's server time: %s",
                                  self.venue, exc)
            return False
        if not self.clock.add_server_time(server, sent[0][0], received):
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
        next_rest = time.monotonic()  # at once: two answers at start
        retries = backoff_delays(1.0, 2.0, o.server_time_every_s)
        answers = failed = 0
        while True:
            now = time.monotonic()
            if self.rest is not None and now >= next_rest:
                if await self.sample():
                    answers += 1
                    failed = 0
                    self._ready.set()
                else:
                    failed += 1
                    if failed >= o.max_fetch_attempts and not self._ready.is_set():
                        log.warning("%s: no server time after %d attempts; deciding by the host "
                                    "clock until the venue answers", self.venue, failed)
                        self._ready.set()
                if answers == 1 and failed == 0:
                    continue  # the second answer at start, on a connection now open
                if failed == 0 and not self.clock.unsettled and not self.last_slow:
                    retries = backoff_delays(1.0, 2.0, o.server_time_every_s)
                    next_rest = time.monotonic() + o.server_time_every_s
                else:
                    next_rest = time.monotonic() + next(retries)
            await asyncio.sleep(max(0.0, min(TICK_S, next_rest - time.monotonic()))
                                if self.rest is not None else TICK_S)
            self.look_at_frames()

    # -- reporting ----------------------------------------------------------------------------
    def _report(self) -> None:
        if self.last_slow:
            return  # a wide answer: say nothing until a prompt one narrows the estimate
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
