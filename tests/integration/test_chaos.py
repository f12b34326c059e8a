"""The chaos test, for every registered venue (part of the venue contract): an accelerated day
of random faults of every kind, a ``kill -9`` and a restart of the service; storage must equal
the simulator's truth exactly and the consumer must have seen every closed candle once, in
order."""

from __future__ import annotations

from pathlib import Path

import pytest

from candlekeeper.testing.chaos import ALL_KINDS, ChaosOptions, check, run_chaos, summary
from candlekeeper.venues.registry import VENUES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]


#: the venue's clock against the host's, in venue seconds, taken in turn by the venues: the
#: host 15 s ahead, level, 15 s behind (issue 9: storage must not depend on the host clock)
SKEWS_S = (-15.0, 0.0, 15.0)


@pytest.mark.parametrize(("venue", "skew_s"),
                         [(v, SKEWS_S[i % len(SKEWS_S)]) for i, v in enumerate(VENUES)])
async def test_an_accelerated_day_of_faults_with_a_kill_9_loses_and_duplicates_nothing(
        tmp_path: Path, venue: str, skew_s: float) -> None:
    opts = ChaosOptions(venue=venue, clock_skew_s=skew_s)
    result = await run_chaos(tmp_path, opts)
    print(summary(result))
    assert result.kill_returncode == -9
    assert result.final_returncode == 0
    assert f"resuming {len(result.keys)} stream(s) from storage" in result.service_logs[1]
    assert len(result.keys) >= 9  # at least three symbols on three intervals
    assert result.faults_applied >= 50
    assert set(ALL_KINDS) <= set(result.fault_kinds), sorted(result.fault_kinds)
    problems = check(result)
    assert problems == [], "\n".join(problems[:40])
    short = {f"{k}: {len(result.stored[k])} stored "
             f"({result.stored[k][0][0] if result.stored[k] else '-'}.."
             f"{result.stored[k][-1][0] if result.stored[k] else '-'}), "
             f"consumer {len(result.consumer.get(k, []))}, truth {len(result.truth[k])}"
             f"\n  consumer feed: {result.consumer_state.get(k)}"
             for k in result.keys if k.interval == "1m" and len(result.stored[k]) < 1000}
    # a 1m stream short of 1,000 rows stopped early or started late (failed once under CI load
    # on binance-usdm -15 s, 2026-12-06; every other run today passed): say which and where
    assert not short, "\n".join(sorted(short)) + "\n--- service errors ---\n" + "\n".join(
        line for log in result.service_logs for line in log.splitlines()
        if "ERROR" in line or "could not" in line or "gave up" in line)[-4000:] + (
        "\n--- the end of the restarted service's log ---\n"
        + "\n".join(result.service_logs[-1].splitlines()[-60:]))
