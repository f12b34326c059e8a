"""The venue's clock, estimated from the host's: ``VenueClock`` (issue 9, "The exchange's clock").

A host clock a few seconds off the exchange's is the most common cause of wrong or missing
closes: every "has this candle closed at the venue yet?" asked of the host clock is off by the
skew. A ``VenueClock`` is a :class:`~candlekeeper.core.clock.Clock` whose :meth:`time_ms` is
the host (base) clock plus an estimate of the venue's offset, so passing it wherever a ``Clock``
is expected turns every close, late-close, stall and "is this REST row final" decision into a
venue-time decision at the cost of one addition.

Two kinds of evidence feed it (Sans-I/O: callers read the base clock and pass the times in):

* **REST server time** (:meth:`VenueClock.add_server_time`). A server time ``S`` fetched between
  base times ``t_send`` and ``t_recv`` pins the offset ``θ`` (venue − host) into the interval
  ``[S − t_recv, S − t_send]``: its midpoint is the classic estimate, half the round trip its
  uncertainty. The last :data:`REST_WINDOW` samples are kept; the narrower half of them (a slow
  answer is a wide interval) is median-filtered into ``low``, ``mid`` and ``high``.
* **WebSocket event times** (:meth:`VenueClock.add_event_time`). A frame stamped ``E`` by the
  venue and received no later than base time ``t`` proves ``θ ≥ E − t``: a lower bound, never
  an estimate from above. Callers sample the newest event time at a periodic tick (``t`` = the
  tick), never per frame, so the hot path reads no clock. The upper envelope of the last
  :data:`WS_WINDOW` bounds, trimmed by :data:`WS_TRIM` against a frame stamped in the future,
  estimates ``θ`` from below.

Which number is used where, and why:

* :attr:`VenueClock.offset_ms` — the best estimate, for people: REST's median midpoint (raised
  to the WebSocket bound when that proves it low), or the WebSocket bound alone. It is what the
  ``candlekeeper_clock_offset_seconds`` metric, ``/health`` and the dashboard show.
* :meth:`VenueClock.time_ms` adds :attr:`VenueClock.decision_offset_ms` instead: REST's *low*
  edge (raised by the WebSocket bound up to REST's high edge), or the WebSocket bound alone.
  Every sample behind it is a proven lower bound, so the clock never runs ahead of the venue
  by more than what the venue itself got wrong: a still-forming candle is never taken for a
  closed one because of a noisy estimate. The price is running behind the venue by at most
  the one-way network delay (tens of ms against a real venue), which delays a REST-confirmed
  close by as much — against an accelerated simulator, where a millisecond of asymmetry is
  seconds of venue time, this is what keeps storage exact.

A host clock that *steps* (NTP corrects it, an operator sets it) makes the old REST samples
wrong at once. A sample that disagrees with the current estimate by more than both intervals'
widths plus :data:`STEP_TOLERANCE_MS` is held as a step candidate; a second one that agrees
with it replaces the whole window (:attr:`VenueClock.steps` counts that), and
:attr:`VenueClock.unsettled` tells the caller to confirm soon rather than in minutes.

Memory is bounded (two fixed-size deques); nothing here reads a clock except ``time_ms``.
"""

from __future__ import annotations

from collections import deque
from statistics import median
from typing import NamedTuple

from candlekeeper.core.clock import Clock

__all__ = ["REST_WINDOW", "STEP_TOLERANCE_MS", "WS_TRIM", "WS_WINDOW", "ClockEstimate",
           "VenueClock"]

#: REST samples kept (at one every few minutes: the last half hour or so)
REST_WINDOW = 8
#: WebSocket lower bounds kept (at one per second: the last minute)
WS_WINDOW = 64
#: share of the highest WebSocket bounds ignored (a frame stamped in the future, a venue
#: stamping badly): the envelope is the bound at this quantile from the top
WS_TRIM = 1 / 8
#: a REST sample this far (ms, beyond both intervals' half-widths) from the estimate is a step
STEP_TOLERANCE_MS = 250.0


class ClockEstimate(NamedTuple):
    """A venue clock's state, for metrics, ``/health`` and the dashboard."""

    #: best estimate of venue time − host time (ms); 0.0 before any sample
    offset_ms: float
    #: half the width of the REST interval behind it (ms); None without REST samples
    uncertainty_ms: float | None
    #: what it rests on: "rest", "ws" (lower bounds only) or "none"
    source: str
    rest_samples: int
    ws_samples: int
    #: the offset :meth:`VenueClock.time_ms` adds (ms)
    decision_offset_ms: float


class _Sample(NamedTuple):
    low: float  # S - t_recv
    high: float  # S - t_send

    @property
    def mid(self) -> float:
        return (self.low + self.high) / 2

    @property
    def half(self) -> float:
        return (self.high - self.low) / 2


class VenueClock:
    """The base clock plus the venue's estimated offset (see the module docstring).

    Before any sample it is the base clock itself. ``speed`` and :meth:`wall_seconds` are the
    base clock's: an offset shifts venue time, it does not change how fast it runs.
    """

    def __init__(self, base: Clock, *, rest_window: int = REST_WINDOW,
                 ws_window: int = WS_WINDOW) -> None:
        if rest_window < 1 or ws_window < 1:
            raise ValueError("windows must hold at least one sample")
        self.base = base
        self._rest: deque[_Sample] = deque(maxlen=rest_window)
        self._ws: deque[float] = deque(maxlen=ws_window)
        self._candidate: _Sample | None = None
        self._offset = 0.0
        self._decision = 0
        self._uncertainty: float | None = None
        #: REST samples refused (an answer received before it was sent: a broken base clock)
        self.rejected = 0
        #: host clock steps detected (the REST window was replaced)
        self.steps = 0

    # -- the Clock protocol -----------------------------------------------------------------
    @property
    def speed(self) -> float:
        return self.base.speed

    def time_ms(self) -> int:
        """Venue time, Unix ms: never ahead of the venue by more than its own error."""
        return self.base.time_ms() + self._decision

    def wall_seconds(self, venue_ms: float) -> float:
        return self.base.wall_seconds(venue_ms)

    def at_base(self, base_ms: int) -> int:
        """Venue time when the base clock read ``base_ms``, by today's estimate: a moment
        noted before the offset was known (a feed's start) placed on the venue's clock."""
        return base_ms + self._decision

    # -- evidence ---------------------------------------------------------------------------
    def add_server_time(self, server_ms: int, sent_ms: int, received_ms: int) -> bool:
        """A REST server time ``server_ms`` asked at base time ``sent_ms`` and answered at
        ``received_ms``. False (and counted) when the times are impossible."""
        if received_ms < sent_ms:
            self.rejected += 1
            return False
        sample = _Sample(server_ms - received_ms, server_ms - sent_ms)
        if self._rest and not self._agrees(sample):
            candidate, self._candidate = self._candidate, sample
            if candidate is None or not _close(candidate, sample):
                return True  # held: one disagreeing answer may just be a bad one
            self._rest.clear()  # two agreeing answers against the window: the host stepped
            self._ws.clear()
            self._rest.append(candidate)
            self._candidate = None
            self.steps += 1
        else:
            self._candidate = None
        self._rest.append(sample)
        self._update()
        return True

    def add_event_time(self, event_ms: int, received_by_ms: int) -> None:
        """The newest venue event time ``event_ms`` of frames all received no later than base
        time ``received_by_ms`` (a periodic sample, not one per frame)."""
        self._ws.append(float(event_ms - received_by_ms))
        self._update()

    # -- reading ----------------------------------------------------------------------------
    @property
    def offset_ms(self) -> float:
        """Best estimate of venue time − host time, ms (0.0 before any sample)."""
        return self._offset

    @property
    def decision_offset_ms(self) -> int:
        """What :meth:`time_ms` adds to the base clock, ms."""
        return self._decision

    @property
    def synced(self) -> bool:
        """At least one REST sample stands behind the estimate."""
        return bool(self._rest)

    @property
    def unsettled(self) -> bool:
        """A disagreeing REST sample waits for confirmation: ask again soon."""
        return self._candidate is not None

    def estimate(self) -> ClockEstimate:
        source = "rest" if self._rest else ("ws" if self._ws else "none")
        return ClockEstimate(self._offset, self._uncertainty, source, len(self._rest),
                             len(self._ws), float(self._decision))

    # -- the filter -------------------------------------------------------------------------
    def _agrees(self, sample: _Sample) -> bool:
        unc = self._uncertainty or 0.0
        return abs(sample.mid - self._rest_mid()) <= sample.half + unc + STEP_TOLERANCE_MS

    def _narrow(self) -> list[_Sample]:
        """The narrower half of the REST window (at least one sample)."""
        ordered = sorted(self._rest, key=lambda s: s.half)
        return ordered[:max(1, (len(ordered) + 1) // 2)]

    def _rest_mid(self) -> float:
        return median(s.mid for s in self._narrow())

    def _envelope(self) -> float:
        ordered = sorted(self._ws, reverse=True)
        return ordered[int(len(ordered) * WS_TRIM)]

    def _update(self) -> None:
        ws = self._envelope() if self._ws else None
        if self._rest:
            narrow = self._narrow()
            low = median(s.low for s in narrow)
            high = median(s.high for s in narrow)
            mid = median(s.mid for s in narrow)
            self._uncertainty = (high - low) / 2
            if ws is not None and ws <= high + STEP_TOLERANCE_MS:
                # a proven lower bound inside REST's interval tightens it (one just above it:
                # the venue's WebSocket and REST servers disagree by a hair); one far above
                # it contradicts REST and is a frame stamped in the future: ignored
                proven = min(ws, high)
                low, mid = max(low, proven), max(mid, proven)
            self._offset, decision = mid, low
        elif ws is not None:
            self._uncertainty = None
            self._offset = decision = ws
        else:
            return
        self._decision = int(decision // 1)  # floor: never round venue time up


def _close(a: _Sample, b: _Sample) -> bool:
    return abs(a.mid - b.mid) <= a.half + b.half + STEP_TOLERANCE_MS
