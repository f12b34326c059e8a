"""A feed against a venue whose clock is 15 s ahead of or behind the host's, for every registered
venue (issue 9): the offset is estimated, closes are exact and on time as if the clocks agreed,
the metrics read venue time, and the operator is warned.

Every venue runs three simulators at once — the host 15 s behind the venue, level with it, 15 s
ahead — each with one feed that keeps the simulator's unskewed clock as its host clock (what a
host clock off by 15 s looks like). Speed 30 keeps the test short; the pushes and closing frames
are made fast enough for it (a venue's real cadence is wall time, so at 30x a 1 s cadence would
be half a 1m candle), so that the close delay reflects the client, not the speed-up.

Tolerances, and why:

* offset: the REST estimate is the midpoint of ``[S − t_recv, S − t_send]``, so it is within its
  own uncertainty (half the round trip) of the truth, plus 1 ms of integer truncation; the round
  trip on 127.0.0.1 stays under 50 ms of wall time even on a loaded two-core machine, i.e. 1.5
  venue seconds at 30x. The decision offset is a proven lower bound: never above the truth.
* close delay: with the skew, the median may differ from the level run's by the push phase and
  scheduling only; 3 venue seconds (0.1 s of wall time) is a fifth of the skew it must not show.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import statistics
from dataclasses import dataclass, field

import pytest

from candlekeeper import Candle, CandleFeed
from candlekeeper.backfill.fetcher import KlineFetcher
from candlekeeper.clock_sync import ClockSync
from candlekeeper.core.intervals import next_open
from candlekeeper.core.venue_clock import VenueClock
from candlekeeper.gapfill import GapFillOptions
from candlekeeper.sim import Simulator
from candlekeeper.sim.faults import Fault
from candlekeeper.venues.registry import VENUES, get_spec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SPEED = 30.0
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
INTERVAL = "1m"
VENUE_MINUTES = 5
SKEW_MS = 15_000
WALL_RTT_S = 0.05

#: the clock sync's announcement: "venue clock is +15.002 s from the host's ..."
ANNOUNCED = re.compile(r"venue clock is ([+-][0-9.]+) s")


@dataclass
class Run:
    skew_ms: int
    delays_ms: list[int] = field(default_factory=list)
    seen: list[Candle] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    offset: tuple[float, float | None, str, int] = (0.0, None, "", 0)
    warning: bool = False
    lags_ms: list[int] = field(default_factory=list)
    metric_mean_ms: float = 0.0


def simulator(venue: str, skew_ms: int) -> Simulator:
    return Simulator(venues=(venue,), symbols=SYMBOLS, intervals=(INTERVAL,), speed=SPEED,
                     history=50, update_interval_s=0.05, close_delay_s=(0.01, 0.03),
                     clock_skew_s={venue: skew_ms / 1000})


async def run(venue: str, skew_ms: int) -> Run:
    out = Run(skew_ms)
    async with simulator(venue, skew_ms) as sim:
        truth_clock = sim.venue_clock(venue)

        def on_closed(candle: Candle) -> None:
            out.delays_ms.append(truth_clock.time_ms() - candle.close_time)
            out.seen.append(candle)

        feed = CandleFeed(venue, SYMBOLS, [INTERVAL], ws_url=sim.ws_base(venue),
                          rest_url=sim.rest_base(venue), clock=sim.clock,
                          gap_fill=GapFillOptions(history=10))
        feed.on_closed(on_closed)
        started = truth_clock.time_ms()
        async with feed:
            await asyncio.sleep(VENUE_MINUTES * 60 / SPEED)
            snap = feed.metrics.snapshot()
        ended = truth_clock.time_ms()
        (row,) = snap.clocks
        out.offset = (row.offset_ms, row.uncertainty_ms, row.source, row.samples)
        out.warning = row.warning
        out.lags_ms = [r.lag_ms for r in snap.streams if r.lag_ms is not None]
        hist = feed.metrics.close_delay[(venue, INTERVAL)]
        out.metric_mean_ms = hist.sum / hist.count * 1000 if hist.count else -1.0
        out.problems = exactness(sim, venue, out.seen, started, ended)
        decision = feed.venue_clock.decision_offset_ms
        if decision > skew_ms:
            out.problems.append(f"decision offset {decision} is ahead of the venue {skew_ms}")
    return out


def exactness(sim: Simulator, venue: str, seen: list[Candle], started: int,
              ended: int) -> list[str]:
    """Every close equals the truth, per stream in order without holes or repeats, and every
    candle that closed in the run (but its last 20 venue seconds) was delivered."""
    problems: list[str] = []
    for symbol in SYMBOLS:
        truth = {c.open_time: c for c in sim.closed_candles(venue, symbol, INTERVAL)}
        got = [c for c in seen if c.symbol == symbol]
        for a, b in itertools.pairwise(got):
            if b.open_time != next_open(a.open_time, INTERVAL):
                problems.append(f"{symbol}: {a.open_time} then {b.open_time}")
        for c in got:
            t = truth.get(c.open_time)
            if t is None or not c.same_values(t, trade_ids=c.source == "ws"):
                problems.append(f"{symbol} {c.open_time}: got {c} != truth {t}")
        delivered = {c.open_time for c in got}
        due = [t for t, c in truth.items() if started < c.close_time < ended - 20_000]
        problems += [f"{symbol} {t}: never delivered" for t in due if t not in delivered]
    return problems


@pytest.mark.parametrize("venue", VENUES)
async def test_a_host_clock_15_s_off_changes_nothing(venue: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="candlekeeper.clock_sync")
    behind, level, ahead = await asyncio.gather(
        run(venue, +SKEW_MS), run(venue, 0), run(venue, -SKEW_MS))
    level_median = statistics.median(level.delays_ms)
    for r in (behind, level, ahead):
        label = f"{venue} skew {r.skew_ms:+d} ms"
        assert r.problems == [], f"{label}: " + "\n".join(r.problems[:20])
        assert len(r.seen) >= (VENUE_MINUTES - 2) * len(SYMBOLS), label
        # the offset: estimated from REST, within its uncertainty, a small one
        offset, unc, source, samples = r.offset
        assert source == "rest" and samples >= 2, (label, r.offset)
        assert unc is not None and unc <= WALL_RTT_S * 1000 * SPEED, (label, r.offset)
        assert abs(offset - r.skew_ms) <= unc + 1, (label, r.offset)
        assert r.warning is (r.skew_ms != 0), label
        # closes: never before the venue closed them, on time as if the clocks agreed
        assert min(r.delays_ms) >= 0, (label, r.delays_ms)
        assert abs(statistics.median(r.delays_ms) - level_median) <= 3_000, \
            (label, r.delays_ms, level.delays_ms)
        # the metrics read venue time
        true_mean = statistics.mean(r.delays_ms)
        assert abs(r.metric_mean_ms - true_mean) <= 1_000, (label, r.metric_mean_ms, true_mean)
        if any(c.event_time is not None for c in r.seen):  # event times on the wire: the lag
            # is venue time too (a closed flag does not imply them: OKX has none)
            assert r.lags_ms and all(-1_000 <= lag <= 10_000 for lag in r.lags_ms), \
                (label, r.lags_ms)
    warnings = [m for m in caplog.messages if "the host clock is" in m]
    # "... is 15.164 s behind the venue's (±0.188 s, ...)": the truth (15 s) within the
    # stated uncertainty (a loaded machine widens it; the figure is not always 15.0)
    said = [re.search(r"is ([\d.]+) s (behind|ahead of) the venue's \(±([\d.]+) s", m)
            for m in warnings]
    found = {m.group(2): (float(m.group(1)), float(m.group(3))) for m in said if m}
    assert set(found) == {"behind", "ahead of"}, warnings
    for value, uncertainty in found.values():
        assert abs(value - SKEW_MS / 1000) <= uncertainty + 0.002, warnings
    assert len(warnings) == 2, warnings  # one line per skewed feed, none for the level one


@pytest.mark.parametrize("skew_ms", [SKEW_MS, -SKEW_MS])
async def test_without_rest_the_event_times_estimate_the_offset_from_below(
        skew_ms: int) -> None:
    """A feed with gap filling off has no REST: a venue whose frames carry event times still
    gets its offset, as a lower bound within the freshest frame's age of the truth."""
    venue = next(v for v in VENUES if get_spec(v).closed_flag)
    async with simulator(venue, skew_ms) as sim:
        feed = CandleFeed(venue, SYMBOLS, [INTERVAL], ws_url=sim.ws_base(venue),
                          rest_url=sim.rest_base(venue), clock=sim.clock,
                          gap_fill=GapFillOptions(enabled=False))
        async with feed:
            async with asyncio.timeout(30):
                while feed.venue_clock.estimate().ws_samples < 4:
                    await asyncio.sleep(0.2)
        est = feed.venue_clock.estimate()
    assert est.source == "ws" and est.rest_samples == 0
    # below the truth by at most a frame's age at the tick (pushes every 0.05 s of wall time,
    # 1.5 venue s) plus scheduling; never above it
    assert skew_ms - 3_000 <= est.offset_ms <= skew_ms, est
    assert feed.venue_clock.decision_offset_ms <= skew_ms


async def test_a_failing_server_time_is_one_line_and_a_counter(
        caplog: pytest.LogCaptureFixture) -> None:
    venue = VENUES[0]
    async with simulator(venue, SKEW_MS) as sim:
        feed = CandleFeed(venue, SYMBOLS, [INTERVAL], ws_url=sim.ws_base(venue),
                          rest_url=sim.rest_base(venue), clock=sim.clock)
        assert feed._rest is not None
        errors: list[str] = []
        clock = VenueClock(sim.clock)
        sync = ClockSync(clock, venue, feed._rest, event_time=lambda: None,
                         count_error=errors.append)
        sim.inject(Fault(kind="rest_5xx", params={"status": 503}))
        assert not await sync.sample()
        assert (sync.failures, errors, clock.synced) == (1, ["server_time"], False)
        before = sim.clock.time_ms()
        reading = clock.time_ms()
        assert before <= reading <= sim.clock.time_ms()  # still the host clock (race-free)
        assert await sync.sample()
        est = clock.estimate()  # within its own uncertainty (a loaded machine widens it)
        assert clock.synced and est.uncertainty_ms is not None
        assert abs(est.offset_ms - SKEW_MS) <= est.uncertainty_ms + 2
        await feed._rest.close()
    lines = [r for r in caplog.records if "cannot read the venue's server time" in r.message]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "Traceback" not in caplog.text


async def test_a_slow_answer_is_valid_but_asked_again_and_not_announced(
        caplog: pytest.LogCaptureFixture) -> None:
    """An answer held 1.2 s by the venue is a wide interval: used (it is still a valid bound),
    but the clock sync says nothing about it and will ask again soon; the next prompt answer
    narrows the estimate and is announced. A wait for the weight budget is not round trip."""
    caplog.set_level(logging.INFO, logger="candlekeeper.clock_sync")
    venue = VENUES[0]
    async with Simulator(venues=(venue,), symbols=SYMBOLS, intervals=(INTERVAL,),
                         history=5, clock_skew_s={venue: 15.0}) as sim:
        feed = CandleFeed(venue, SYMBOLS, [INTERVAL], ws_url=sim.ws_base(venue),
                          rest_url=sim.rest_base(venue), clock=sim.clock)
        rest = feed._rest
        assert rest is not None
        clock = VenueClock(sim.clock)
        sync = ClockSync(clock, venue, rest, event_time=lambda: None)
        sim.inject(Fault(kind="rest_slow", params={"delay_s": 1.2}))
        assert await sync.sample()
        assert sync.last_slow and clock.synced
        assert clock.estimate().uncertainty_ms is not None
        assert clock.estimate().uncertainty_ms >= 500  # type: ignore[operator]
        assert clock.decision_offset_ms <= 15_000
        assert not [m for m in caplog.messages if "venue clock is" in m]
        # a budget that makes the next request wait 1.5 s: the wait is not round trip
        rest.budget.block(1.5)
        assert await sync.sample()
        assert not sync.last_slow
        est = clock.estimate()
        assert est.uncertainty_ms is not None and est.uncertainty_ms < 50
        assert abs(est.offset_ms - 15_000) <= est.uncertainty_ms + 1
        announced = [float(m.group(1)) for m in map(ANNOUNCED.search, caplog.messages) if m]
        # the figure announced is the estimate (±its uncertainty), not necessarily "+15.0"
        assert announced and abs(announced[-1] - 15.0) <= est.uncertainty_ms / 1000 + 0.002
        await rest.close()


@pytest.mark.parametrize("give_up", [False, True])
async def test_fills_wait_for_the_venue_clock(give_up: bool,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """The venue's server time fails twice at start: no REST row is asked (nor judged final)
    before the clock knows the venue's time — unless the venue failed to answer
    ``max_fetch_attempts`` times in a row, when the fills go on by the host clock, said once."""
    venue = VENUES[0]
    attempts = 2 if give_up else 5
    async with simulator(venue, -SKEW_MS) as sim:
        sim.inject(Fault(kind="rest_5xx", count=2, params={"status": 503}))
        feed = CandleFeed(venue, SYMBOLS, [INTERVAL], ws_url=sim.ws_base(venue),
                          rest_url=sim.rest_base(venue), clock=sim.clock,
                          gap_fill=GapFillOptions(history=10, max_fetch_attempts=attempts))
        assert feed.filler is not None
        fetcher = feed.filler.source
        assert isinstance(fetcher, KlineFetcher)
        sync = feed._clock_sync
        async with feed:
            async with asyncio.timeout(30):
                while not (fetcher.stats.requests and feed.venue_clock.synced):
                    if fetcher.stats.requests and not give_up:
                        assert feed.venue_clock.synced, "a fill asked REST before the clock"
                    await asyncio.sleep(0.01)
        assert sync.failures == 2
    said = [m for m in caplog.messages if "deciding by the host clock" in m]
    assert len(said) == (1 if give_up else 0), said
