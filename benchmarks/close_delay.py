"""Close delay: how long after a candle's close (in the venue's own time) ``on_closed`` sees it,
per venue and close policy, with the host clock behind the venue, level with it, or ahead of it
(issue 9).

    .venv/bin/python benchmarks/close_delay.py                 # ~4 min: every venue, 3 clocks
    .venv/bin/python benchmarks/close_delay.py --minutes 6 --symbols 20 --venues bingx-swap

Every (venue, condition) cell runs at once, each against its own simulator whose venue clock is
skewed from the host's (``Simulator(clock_skew_s=...)``): the feed keeps the simulator's
unskewed clock as its host clock, exactly what a host clock off by the skew looks like. The
delay of a close is *true* venue time when the handler runs minus the candle's close time (the
simulator's clock, not the feed's opinion). Alongside it:

* ``metric Δ``: the mean of the feed's own ``candlekeeper_close_delay_seconds`` minus the true
  mean: how far the metric an operator reads is off;
* ``wrong``: closes whose values differ from the simulator's truth (a forming candle taken for
  a final one) once the corrections that followed are applied; ``corrected``: closes a later
  closing frame corrected (``CandleCorrected``); ``missing``: candles that closed in the run
  (more than ``--settle-s`` before its end) and never reached the handler.

The simulator's closing frames come as late as the real ones do (:data:`REAL_CLOSE_DELAY_S`:
about 2 s on Binance USDⓈ-M, 0.2 s on spot, issue 9) and its REST shows a candle final 100 ms
after its close (the personalities' ``rest_final_delay_ms``).

Speed 1 is real time (the venues' real push cadence and closing-frame delays); ``--speed``
exists for the smoke test. A new condition (another close policy, another skew) is one more
:class:`Condition` in :data:`CONDITIONS`: a label, the host's offset and gap-fill overrides.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from candlekeeper import Candle, CandleFeed
from candlekeeper.core.events import CandleCorrected
from candlekeeper.gapfill import GapFillOptions
from candlekeeper.sim import Simulator
from candlekeeper.sim.profiles import DEFAULT_SYMBOLS
from candlekeeper.venues.registry import VENUES

INTERVAL = "1m"


@dataclass(frozen=True)
class Condition:
    """One column of circumstances a venue is measured under.

    ``host_offset_s``: the host clock minus the venue's (negative: the host is behind).
    ``gap_fill``: ``GapFillOptions`` fields to change for this condition (a close policy)."""

    label: str
    host_offset_s: float
    gap_fill: Mapping[str, Any] = field(default_factory=dict)
    close_policy: str = "flag"


CONDITIONS: tuple[Condition, ...] = (
    Condition("host 15 s behind", -15.0),
    Condition("level", 0.0),
    Condition("host 15 s ahead", +15.0),
    Condition("host 15 s behind", -15.0, close_policy="fast"),
    Condition("level", 0.0, close_policy="fast"),
    Condition("host 15 s ahead", +15.0, close_policy="fast"),
)

#: wall seconds (lo, hi) from a close to its closing frame, as the real venues send them (a
#: venue not listed keeps its personality's default)
REAL_CLOSE_DELAY_S: dict[str, tuple[float, float]] = {
    "binance-usdm": (1.6, 2.2),
    "binance-spot": (0.1, 0.3),
}


@dataclass
class Cell:
    """What one (venue, condition) run measured."""

    venue: str
    condition: Condition
    delays_s: list[float] = field(default_factory=list)
    #: closes that came from REST (a late or flagless close confirmed over REST)
    rest: int = 0
    corrected: int = 0
    wrong: int = 0
    missing: int = 0
    metric_mean_s: float | None = None
    #: each missing candle: (symbol, its close time minus the run's end, venue seconds) -- a
    #: diagnosis for a failed smoke test, not a figure of the table
    missing_at: list[tuple[str, float]] = field(default_factory=list)

    @property
    def true_mean_s(self) -> float | None:
        return sum(self.delays_s) / len(self.delays_s) if self.delays_s else None

    def quantile(self, q: float) -> float | None:
        """Nearest-rank quantile of the delays (no interpolation: a real observation)."""
        if not self.delays_s:
            return None
        ordered = sorted(self.delays_s)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True)
class Options:
    venues: tuple[str, ...] = VENUES
    conditions: tuple[Condition, ...] = CONDITIONS
    symbols: int = 10
    minutes: float = 4.0  # venue minutes of live closes per cell
    speed: float = 1.0
    #: a close due this long (venue seconds) before the end may still be on its way: not
    #: counted as missing
    settle_s: float = 30.0
    seed: int = 5


async def measure(venue: str, condition: Condition, opts: Options) -> Cell:
    """One cell: a simulator whose venue clock is off the host's by the condition, one feed."""
    cell = Cell(venue, condition)
    symbols = DEFAULT_SYMBOLS[:opts.symbols]
    async with Simulator(venues=(venue,), symbols=symbols, intervals=(INTERVAL,),
                         speed=opts.speed, seed=opts.seed, history=50,
                         min_pushes_per_candle=4 if opts.speed > 1 else None,
                         close_delay_s=REAL_CLOSE_DELAY_S.get(venue),
                         clock_skew_s={venue: -condition.host_offset_s}) as sim:
        truth_clock = sim.venue_clock(venue)
        seen: list[Candle] = []

        def on_closed(candle: Candle) -> None:
            cell.delays_s.append((truth_clock.time_ms() - candle.close_time) / 1000)
            cell.rest += candle.source == "rest"
            seen.append(candle)

        def on_corrected(event: CandleCorrected) -> None:
            cell.corrected += 1
            fixed[(event.candle.symbol, event.candle.open_time)] = event.candle

        fixed: dict[tuple[str, int], Candle] = {}
        feed = CandleFeed(venue, symbols, [INTERVAL], ws_url=sim.ws_base(venue),
                          rest_url=sim.rest_base(venue), clock=sim.clock,
                          gap_fill=GapFillOptions(history=10, **condition.gap_fill),
                          close_policy=condition.close_policy)
        feed.on_closed(on_closed)
        feed.on_corrected(on_corrected)
        async with feed:
            # the feed owes every candle that closes after its start (a close during its
            # subscription included)
            started = truth_clock.time_ms()
            await asyncio.sleep(opts.minutes * 60 / opts.speed)
        ended = truth_clock.time_ms()
        hist = [h for (v, iv), h in feed.metrics.close_delay.items()
                if (v, iv) == (venue, INTERVAL)]
        if hist and hist[0].count:
            cell.metric_mean_s = hist[0].sum / hist[0].count
        for symbol in symbols:
            truth = {c.open_time: c for c in sim.closed_candles(venue, symbol, INTERVAL)}
            got = {c.open_time: fixed.get((symbol, c.open_time), c) for c in seen
                   if c.symbol == symbol}
            cell.wrong += sum(1 for t, c in got.items()
                              if t not in truth or not c.same_values(truth[t],
                                                                     trade_ids=c.source == "ws"))
            due = [t for t, c in truth.items()
                   if started < c.close_time < ended - opts.settle_s * 1000]
            lost = [t for t in due if t not in got]
            cell.missing += len(lost)
            cell.missing_at += [(symbol, (truth[t].close_time - ended) / 1000) for t in lost]
    return cell


async def run(opts: Options) -> list[Cell]:
    """Every cell at once (they are independent: one simulator and one feed each)."""
    jobs = [measure(v, c, opts) for v in opts.venues for c in opts.conditions]
    return list(await asyncio.gather(*jobs))


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(cells: Sequence[Cell]) -> str:
    """A Markdown table, one row per (venue, policy, condition)."""
    head = ("venue", "policy", "host clock", "closes", "via REST", "p50 s", "p99 s", "max s",
            "metric Δ s", "corrected", "wrong", "missing")
    rows = [head, tuple("---" for _ in head)]
    for c in sorted(cells, key=lambda c: (c.venue, c.condition.close_policy)):
        delta = (None if c.metric_mean_s is None or c.true_mean_s is None
                 else c.metric_mean_s - c.true_mean_s)
        rows.append((c.venue, c.condition.close_policy, c.condition.label,
                     str(len(c.delays_s)), str(c.rest), _s(c.quantile(0.5)),
                     _s(c.quantile(0.99)), _s(max(c.delays_s, default=None)),
                     "-" if delta is None else f"{delta:+.2f}", str(c.corrected),
                     str(c.wrong), str(c.missing)))
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--venues", default=",".join(VENUES), help="comma-separated venue ids")
    ap.add_argument("--symbols", type=int, default=Options.symbols,
                    help="symbols per venue (1m streams)")
    ap.add_argument("--minutes", type=float, default=Options.minutes,
                    help="venue minutes of live closes per cell")
    ap.add_argument("--speed", type=float, default=Options.speed,
                    help="venue time per wall second (1 = real time, the honest setting)")
    args = ap.parse_args(argv)
    venues = tuple(v.strip() for v in args.venues.split(",") if v.strip())
    unknown = [v for v in venues if v not in VENUES]
    if unknown or not venues or not 1 <= args.symbols <= len(DEFAULT_SYMBOLS) \
            or args.minutes <= 0 or args.speed <= 0:
        print(f"error: venues must be among {', '.join(VENUES)}; 1 <= --symbols <= "
              f"{len(DEFAULT_SYMBOLS)}; --minutes and --speed > 0", file=sys.stderr)
        return 2
    opts = Options(venues=venues, symbols=args.symbols, minutes=args.minutes, speed=args.speed)
    print(f"close delay: {len(venues)} venue(s) x {len(opts.conditions)} conditions, "
          f"{opts.symbols} symbols x {INTERVAL}, {opts.minutes:g} venue minutes each, speed "
          f"x{opts.speed:g} (all cells at once)", flush=True)
    started = time.monotonic()
    cells = asyncio.run(run(opts))
    print(table(cells))
    print(f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
