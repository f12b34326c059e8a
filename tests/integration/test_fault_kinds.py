"""One focused test per fault kind: a library feed against the faulty simulator keeps every
stream's closed series whole — each candle once, in order, equal to the exchange's truth."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from candlekeeper import Candle, CandleFeed
from candlekeeper.core.intervals import next_open
from candlekeeper.gapfill import GapFillOptions
from candlekeeper.sim import Simulator
from candlekeeper.sim.faults import ALL_KINDS, REST_KINDS, Fault
from candlekeeper.transport import TransportOptions

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

USDM = "binance-usdm"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
SPEED = 600.0  # one 1m candle per 0.1 s of wall time


def faults_for(kind: str) -> list[Fault]:
    """Three doses of ``kind``; REST faults come with a disconnect so the feed must use REST."""
    params: dict[str, dict[str, object]] = {
        "close": {"code": 1011}, "stall": {"pings": False}, "duplicate": {"closed": True},
        "reorder": {"closed": True}, "truncated": {"closed": True},
        "rest_429": {"retry_after_s": 1}, "rest_5xx": {"status": 503},
        "rest_timeout": {"hold_s": 1.0}, "rest_slow": {"delay_s": 0.5},
        "server_shutdown": {"delay_s": 0.2},
    }
    duration = {"stall": 1.5, "drop_pings": 1.0, "rest_418": 1.0}.get(kind)
    count = None if duration is not None or kind in ("disconnect", "close", "lifetime",
                                                      "server_shutdown") else 2
    out = [Fault(kind=kind, venue=USDM, target="all", duration_s=duration,  # type: ignore[arg-type]
                 count=count, params=params.get(kind, {}))]  # type: ignore[arg-type]
    if kind in REST_KINDS:
        out.append(Fault(kind="disconnect", venue=USDM, target="all"))
    return out


@pytest.mark.parametrize("kind", [*ALL_KINDS, "server_shutdown"])
async def test_the_closed_series_stays_whole_under(kind: str) -> None:
    async with Simulator(venues=(USDM,), symbols=SYMBOLS, intervals=("1m",), speed=SPEED,
                         seed=sum(map(ord, kind))) as sim:
        feed = CandleFeed(USDM, SYMBOLS, ["1m"], ws_url=sim.ws_base(USDM),
                          rest_url=sim.rest_base(USDM), clock=sim.clock,
                          transport=TransportOptions(
                              backoff_initial_s=0.05, backoff_max_s=0.5, healthy_after_s=1.0,
                              stall_grace_ms=int(0.8 * 1000 * SPEED) - 60_000,
                              ack_timeout_s=3.0, rotate_after_s=None),
                          gap_fill=GapFillOptions(history=5, retry_initial_s=0.1,
                                                  retry_max_s=0.5))
        seen: dict[str, list[Candle]] = {s: [] for s in SYMBOLS}
        feed.on_closed(lambda c: seen[c.symbol].append(c), inline=True)
        async with feed:
            async with asyncio.timeout(20):
                while not all(seen.values()):
                    await asyncio.sleep(0.05)
            for _ in range(3):
                for fault in faults_for(kind):
                    sim.inject(fault)
                await asyncio.sleep(1.5)
            targets = {s: sim.closed_candles(USDM, s, "1m")[-1].open_time for s in SYMBOLS}
            async with asyncio.timeout(40):
                while any(not seen[s] or seen[s][-1].open_time < targets[s] for s in SYMBOLS):
                    await asyncio.sleep(0.05)
        applied = [r for r in sim.fault_log if r.kind == kind]
        assert applied, f"the simulator never applied {kind}"
        for symbol, got in seen.items():
            truth = {c.open_time: c for c in sim.closed_candles(USDM, symbol, "1m")}
            for a, b in itertools.pairwise(got):
                assert b.open_time == next_open(a.open_time, "1m"), \
                    f"{symbol}: {a.open_time} -> {b.open_time} under {kind}"
            for c in got:
                assert c.same_values(truth[c.open_time], trade_ids=c.source == "ws"), c
            assert len(got) >= 30
