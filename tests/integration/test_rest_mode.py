"""REST-only mode and the automatic fallback, end to end against the simulator (issue 9,
part 1): the same guarantee as the WebSocket — storage equals the venue's truth exactly —
when every close comes from a REST poll, through REST faults and a ``kill -9``, and across the
switches of ``auto`` mode (a WebSocket refused, then back, then silent)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from candlekeeper import StreamKey, StreamState
from candlekeeper.core.intervals import MINUTE, nominal_ms
from candlekeeper.fallback import poll_budget
from candlekeeper.service import Service
from candlekeeper.sim import Simulator
from candlekeeper.sim.faults import REST_KINDS, Fault
from candlekeeper.testing.chaos import (
    ChaosOptions,
    affordable_symbols,
    check,
    run_chaos,
    summary,
)
from candlekeeper.venues.registry import VENUES, get_spec

from .test_service_against_simulator import (
    SYMBOLS,
    assert_storage_equals_truth,
    closed_total,
    run_until,
    service_config,
)

pytestmark = pytest.mark.integration

INTERVALS = ("1m", "3m", "5m")


def rest_speed(venue: str, keys: list[StreamKey], clients: int = 1) -> float:
    """The fastest venue clock whose polls take at most half of each client's REST budget (the
    budget is per wall minute; an accelerated clock makes closes, so polls, that much denser)."""
    need, allowed, _ = poll_budget(get_spec(venue), keys)
    return max(1.0, min(120.0, 0.5 * allowed / need / clients))


@pytest.mark.parametrize("venue", VENUES)
async def test_rest_mode_stores_exactly_the_truth(tmp_path: Path, venue: str) -> None:
    symbols = list(SYMBOLS[:6])
    keys = [StreamKey(venue, s, i) for s in symbols for i in INTERVALS]
    db = tmp_path / "candles.sqlite"
    speed = rest_speed(venue, keys)
    # 90 closes, or what 80 s of this clock make on a venue whose budget slows the clock down
    per_s = speed / 60 * sum(MINUTE / nominal_ms(k.interval) for k in keys)
    closes = min(90, int(per_s * 80))
    async with Simulator(venues=(venue,), symbols=symbols, intervals=INTERVALS,
                         speed=speed, seed=5) as sim:
        service = Service(service_config(sim, db, {venue: symbols}, transport="rest"),
                          clock=sim.clock)
        report = await run_until(service, lambda: closed_total(service) >= closes,
                                 timeout=120)
        assert sim.stats()[venue].connections_total == 0  # not one WebSocket
    assert set(report.final_states.values()) == {"polling"}
    assert report.writers["sqlite"].dropped == 0
    total = await assert_storage_equals_truth(sim, db, keys)
    assert sum(s.metrics.stored for s in report.streams) == total


DAY_WALL_S = 60.0
SETTLE_S = 60.0


def rest_day(venue: str, wall_s: float) -> tuple[tuple[str, ...], tuple[str, ...], float]:
    """(symbols, intervals, speed) of a venue's REST-mode day: the symbols its budget affords
    in the chaos day (``affordable_symbols``), the fastest clock whose polls take half of each
    of two clients' budgets, and the intervals that clock closes within ``wall_s`` (a venue whose
    polls are dear, Hyperliquid's 21 weight of 1200 a minute, runs a slow clock: its day closes
    1m candles only)."""
    intervals: tuple[str, ...] = ("1m", "5m", "15m")
    symbols = affordable_symbols(venue, intervals, tuple(SYMBOLS[:10]))
    while True:
        keys = [StreamKey(venue, s, i) for s in symbols for i in intervals]
        speed = rest_speed(venue, keys, clients=2)
        fit = tuple(i for i in intervals if nominal_ms(i) <= speed * wall_s * 1000)
        if fit == intervals or not fit:
            return symbols, intervals, speed
        intervals = fit


async def test_rest_mode_chaos_with_a_kill_9_for_every_venue(tmp_path: Path) -> None:
    """Every REST fault kind (429, 418 bans, 5xx, timeouts, slow answers) and a ``kill -9`` of
    the service, with the host clock 15 s ahead of or behind the venue's, for every registered
    venue at once (they are independent simulators and
    services; polling is mostly waiting, so running them side by side costs little)."""
    # the intervals a venue's clock closes within the day and the settling after it
    plans = {v: rest_day(v, DAY_WALL_S + SETTLE_S) for v in VENUES}
    runs = {v: ChaosOptions(venue=v, mode="rest", kinds=REST_KINDS, faults=24, seed=11,
                            day_wall_s=DAY_WALL_S, kill_at_s=25.0, restart_after_s=3.0,
                            settle_s=SETTLE_S, symbols=plans[v][0], intervals=plans[v][1],
                            speed_x=plans[v][2], clock_skew_s=15.0 if i % 2 else -15.0)
            for i, v in enumerate(VENUES)}
    for v in VENUES:
        (tmp_path / v).mkdir()
    results = await asyncio.gather(*(run_chaos(tmp_path / v, opts) for v, opts in runs.items()))
    for venue, result in zip(runs, results, strict=True):
        print(venue, summary(result))
        assert result.kill_returncode == -9 and result.final_returncode == 0, venue
        assert set(REST_KINDS) <= set(result.fault_kinds), (venue, sorted(result.fault_kinds))
        problems = check(result)
        assert problems == [], f"{venue}:\n" + "\n".join(problems[:40])
        assert all(len(result.stored[k]) >= 10 for k in result.keys if k.interval == "1m")


@pytest.mark.parametrize("venue", VENUES)
async def test_auto_mode_falls_back_to_rest_and_returns_without_a_gap(
        tmp_path: Path, venue: str) -> None:
    """The WebSocket endpoint refuses (HTTP 451) at first: the feed polls over REST. It comes
    back: the feed returns to it. Then it goes silent (subscribed, sending nothing): polling
    again, and back once it talks. Storage equals the truth throughout."""
    symbols = list(SYMBOLS[:4])
    keys = [StreamKey(venue, s, i) for s in symbols for i in ("1m", "3m")]
    db = tmp_path / "candles.sqlite"
    seen: list[tuple[float, str]] = []
    async with Simulator(venues=(venue,), symbols=symbols, intervals=("1m", "3m"), speed=30.0,
                         seed=9, min_pushes_per_candle=4,
                         faults=[Fault(kind="refuse", at_s=0.0, duration_s=6.0)]) as sim:
        cfg = service_config(sim, db, {venue: symbols}, intervals=("1m", "3m"))
        cfg = cfg.model_copy(update={"transport": cfg.transport.model_copy(update={
            "fallback_after_s": 2.0, "recover_after_s": 3.0, "backoff_initial_s": 0.2,
            "backoff_max_s": 1.0})})
        service = Service(cfg, clock=sim.clock)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        t0 = time.monotonic()

        def states() -> set[str]:
            return {str(s.state) for f in service.feeds for s in f.stats()}

        async def wait_for(state: StreamState, timeout: float) -> None:
            async with asyncio.timeout(timeout):
                while states() != {state.value}:
                    await asyncio.sleep(0.05)
            seen.append((time.monotonic() - t0, state.value))

        try:
            await asyncio.wait_for(service.ready.wait(), 30)
            await wait_for(StreamState.POLLING, 15)  # refused: polled over REST
            await wait_for(StreamState.LIVE, 30)  # the WebSocket is back, and kept
            # silent (subscribed, nothing sent) for longer than any stream's stall threshold
            # (at most 10 s here: a spot venue's real quiet time) plus fallback_after_s
            sim.inject(Fault(kind="stall", venue=venue, duration_s=22.0))
            await wait_for(StreamState.POLLING, 30)
            await wait_for(StreamState.LIVE, 40)  # talking again: back on the WebSocket
            await asyncio.sleep(3.0)  # a few more closes after the last switch
        finally:
            stop.set()
            report = await asyncio.wait_for(task, 30)
    assert [s for _, s in seen] == ["polling", "live", "polling", "live"], seen
    assert report.writers["sqlite"].dropped == 0
    total = await assert_storage_equals_truth(sim, db, keys)
    assert sum(s.metrics.stored for s in report.streams) == total
    fb = service.feeds[0].fallback
    assert fb.fallbacks >= 2 * len(keys) and fb.recoveries >= 2 * len(keys)
