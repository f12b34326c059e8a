"""Which streams of a feed get fast closes (``close_policy: fast``), within the REST budget.

A fast close costs one klines request per close of the stream (the candle that closed and the
forming one: two rows). The venue's REST budget is shared with every fill, so fast closes may
spend only ``gap_fill.fast_budget_share`` of it; streams are admitted in the declared priority
(``gap_fill.fast_priority``: intervals in order, then the rest shortest first — a 1m stream's
close is the one a strategy waits for most often) until that share is spent. The others keep
the ``flag`` policy, and the feed says so at start.

A venue without a closed flag gets none: there, nothing after the REST answer would show it
was not final yet (on a venue with one, the closing frame that follows does, and a differing
one becomes a ``CandleCorrected``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from candlekeeper.core.intervals import MINUTE, nominal_ms
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.gapfill_options import GapFillOptions
from candlekeeper.venues.contract import VenueSpec, klines_weight

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FastPlan:
    """The outcome: ``fast`` streams, ``flag`` streams, and the weight per minute they cost."""

    fast: tuple[StreamKey, ...]
    flag: tuple[StreamKey, ...]
    weight_per_min: float
    allowed_per_min: float
    why_none: str = ""


def weight_per_minute(spec: VenueSpec, key: StreamKey) -> float:
    """REST weight per venue minute that fast closes of ``key`` cost (one request per close)."""
    return klines_weight(spec, 2) * MINUTE / nominal_ms(key.interval)


def plan_fast(spec: VenueSpec, keys: Sequence[StreamKey], options: GapFillOptions) -> FastPlan:
    """Admit streams to fast closes by priority while their cost fits the budget share."""
    allowed = options.fast_budget_share * min(w.limit * 60.0 / w.seconds
                                              for w in spec.rest_limits)
    if not spec.closed_flag:
        return FastPlan((), tuple(keys), 0.0, allowed,
                        why_none="the venue's stream has no closed flag to check REST against")
    if not options.enabled:
        return FastPlan((), tuple(keys), 0.0, allowed, why_none="gap_fill is disabled")
    rank = {iv: i for i, iv in enumerate(options.fast_priority)}
    ordered = sorted(keys, key=lambda k: (rank.get(k.interval, len(rank)),
                                          nominal_ms(k.interval), k.symbol))
    fast: list[StreamKey] = []
    flag: list[StreamKey] = []
    spent = 0.0
    for key in ordered:
        cost = weight_per_minute(spec, key)
        if spent + cost <= allowed:
            fast.append(key)
            spent += cost
        else:
            flag.append(key)
    return FastPlan(tuple(fast), tuple(flag), spent, allowed)


def say_plan(venue: str, plan: FastPlan) -> None:
    """One line at start: what fast closes cover, and what they cost."""
    if plan.why_none:
        log.warning("%s: close_policy fast is not used (%s); closes wait for the venue's "
                    "stream", venue, plan.why_none)
    elif plan.flag:
        log.warning("%s: fast closes for %d of %d stream(s) (%.0f of %.0f weight/min allowed "
                    "for them); the other %d wait for the closed flag (first: %s)", venue,
                    len(plan.fast), len(plan.fast) + len(plan.flag), plan.weight_per_min,
                    plan.allowed_per_min, len(plan.flag), plan.flag[0])
    else:
        log.info("%s: fast closes for all %d stream(s), %.0f of %.0f weight/min allowed for "
                 "them", venue, len(plan.fast), plan.weight_per_min, plan.allowed_per_min)
