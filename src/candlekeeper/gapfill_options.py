"""How a feed keeps its series whole, and how fast it confirms closes: the options.

One model for the library's ``CandleFeed(gap_fill=...)`` and the service config's ``gap_fill:``
section; the close policy (``flag`` or ``fast``) is chosen per feed.
"""

from __future__ import annotations

import enum

from pydantic import Field, field_validator

from candlekeeper.core.intervals import INTERVAL_MS
from candlekeeper.core.options import Options


class ClosePolicy(enum.StrEnum):
    """When a closed candle is emitted.

    * ``flag``: when the venue's stream says it closed (``x:true``), or, when that frame is
      late, once REST confirms it ``close_grace_ms`` after the close.
    * ``fast``: as soon as the close time has passed (venue time, plus ``fast_margin_ms``),
      confirmed over REST — unless the stream proved the close first. The stream's later
      closing frame is then a duplicate, or, if its values differ, a ``CandleCorrected``.
      Only on venues with a closed flag (without one nothing would catch a REST answer that
      was not final yet), and only for as many streams as ``fast_budget_share`` of the venue's
      REST budget pays for, by ``fast_priority``; the others keep ``flag``.
    """

    FLAG = "flag"
    FAST = "fast"


#: ``history`` cap: warm-up runs inside the event loop; 100,000 1m candles are ~70 days, 67
#: requests of 1,500 rows. Deeper history is what ``candlekeeper backfill`` is for.
MAX_WARMUP_HISTORY = 100_000


class GapFillOptions(Options):
    """How a feed keeps its series whole: the library's ``CandleFeed(gap_fill=...)`` and the
    service config's ``gap_fill:`` section are this one model. Times named ``_ms`` are venue
    time."""

    #: fetch missed candles over REST at all (off: the WebSocket alone, holes stay holes)
    enabled: bool = True
    #: candles fetched per stream at start when there is no resume point (0 = none);
    #: None = the feed's ring-buffer size
    history: int | None = Field(default=None, ge=0, le=MAX_WARMUP_HISTORY)
    #: also emit those warm-up candles as ``CandleClosed`` to consumers (off: they fill
    #: ``latest()`` only, so a strategy never mistakes history for live closes). The service
    #: stores warm-up history either way.
    emit_history: bool = False
    #: confirm a close over REST when its closing frame is this late (venue ms) ...
    close_grace_ms: int = Field(default=3_000, ge=0)
    #: ... but never sooner than this many wall seconds after the close (network jitter)
    close_grace_wall_s: float = Field(default=0.5, ge=0)
    #: REST requests in flight at once per venue (all priorities share them). Enough to spend
    #: the weight budget at the venue's latency: a whole universe of 500 symbols warming up
    #: needs about 27 klines requests a second inside a 2,400-a-minute budget, which 4 in
    #: flight at 150 ms each could not carry (measured: 23 % over the budget's time)
    rest_concurrency: int = Field(default=12, ge=1, le=64)
    #: fills that leave a hole open (REST lagging) before the hole is skipped and reported
    max_hole_attempts: int = Field(default=5, ge=1)
    #: first wait between attempts (the one backoff: doubles, jittered, capped at retry_max_s)
    retry_initial_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    #: failed REST attempts (after the source's own retries) before a fill gives up
    max_fetch_attempts: int = Field(default=5, ge=1)
    #: a candle counts as closed only this long (venue ms, on the venue's estimated clock) after
    #: its close time: a venue whose REST history lags a moment behind its WebSocket must not
    #: hand out its still-forming candle as a final one
    close_margin_ms: int = Field(default=2_000, ge=0)
    #: a closed candle whose close time is more than this (venue ms) ahead of our clock cannot
    #: be real: it is rejected and counted (one such candle would make its stream wait forever)
    future_tolerance_ms: int = Field(default=60_000, ge=0)
    #: closes held back per stream while a hole is filled; beyond this the newest are dropped
    #: (REST fetches them with the hole) so a long REST outage cannot grow memory without bound
    max_held: int = Field(default=10_000, ge=1)
    #: ask the venue's REST server time (weight 1) this often, wall seconds, to keep the
    #: venue's clock offset estimated (``core/venue_clock.py``); sooner while a new answer
    #: disagrees with the last ones
    server_time_every_s: float = Field(default=300.0, gt=0)
    #: log a WARNING (at most every ``clock_warning_every_s``) when the host clock is surely
    #: further than this from the venue's (venue ms; the estimate minus its uncertainty)
    clock_offset_warn_ms: int = Field(default=1_000, ge=0)
    clock_warning_every_s: float = Field(default=600.0, gt=0)
    #: ``close_policy: fast``: a close is asked over REST this long (venue ms, on the venue's
    #: estimated clock) after its close time, and REST's row is taken as final then (a venue
    #: whose REST lags its trades by more than this gets corrections, not wrong storage: the
    #: closing frame that follows corrects it)
    fast_margin_ms: int = Field(default=300, ge=0)
    #: ... fast closes may spend at most this share of the venue's REST budget (the rest stays
    #: for fills after breaks, holes and late closes); streams beyond it keep ``flag``
    fast_budget_share: float = Field(default=0.5, gt=0, le=1)
    #: polls (REST-only mode, a stream whose WebSocket is down) and fast closes together spend
    #: at most this share of the venue's REST budget, per wall second: with more streams than
    #: that affords, each stream's polls are spaced out (a poll fetches everything since the
    #: last one, so spacing delays a close, never loses it). The rest of the budget stays for
    #: holes, breaks and late closes, which polls would otherwise starve: polls burning a
    #: minute's budget in seconds left a hole waiting for the next minute
    poll_budget_share: float = Field(default=0.5, gt=0, le=1)
    #: ... and the budget goes to streams in this order of intervals (unlisted intervals
    #: after, shortest first; empty: shortest first)
    fast_priority: tuple[str, ...] = ()

    @field_validator("fast_priority")
    @classmethod
    def _known_intervals(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [i for i in value if i not in INTERVAL_MS]
        if unknown:
            raise ValueError(f"unknown interval(s) {', '.join(map(repr, unknown))}; known: "
                             f"{', '.join(INTERVAL_MS)}")
        return value

    def warmup(self, buffer_size: int) -> int:
        """Candles to fetch per stream at start."""
        return buffer_size if self.history is None else self.history
