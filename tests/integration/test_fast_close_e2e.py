"""Fast closes end to end against the simulator (issue 9, part 3): with ``close_policy: fast``
a close is confirmed over REST as soon as the close time has passed and emitted before the
venue's closing frame; the frame is then a duplicate, or a ``CandleCorrected`` when REST was
not final yet — and storage equals the truth either way."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from candlekeeper import Candle, CandleFeed, StreamKey
from candlekeeper.backfill import RestClient
from candlekeeper.core.events import CandleCorrected
from candlekeeper.gapfill import GapFillOptions
from candlekeeper.service import Service
from candlekeeper.sim import Simulator
from candlekeeper.venues.registry import VENUES, get_spec, history_codec

from .test_service_against_simulator import (
    SYMBOLS,
    assert_storage_equals_truth,
    run_until,
    service_config,
)

pytestmark = pytest.mark.integration

SPEED = 20.0
FLAGGED = [v for v in VENUES if get_spec(v).closed_flag]


@pytest.mark.parametrize("venue", VENUES)
async def test_fast_closes_are_exact_and_come_before_the_closing_frame(venue: str) -> None:
    """REST is final 100 ms after a close (the simulator's default), the fast margin is 300
    ms: no correction, every close equal to the truth, and on a venue with a closed flag the
    closes come from REST, sooner than the closing frame (0.2–2 s wall after the close)."""
    symbols = list(SYMBOLS[:4])
    seen: list[tuple[Candle, int]] = []
    corrections: list[CandleCorrected] = []
    async with Simulator(venues=(venue,), symbols=symbols, intervals=("1m",), speed=SPEED,
                         seed=4, min_pushes_per_candle=4) as sim:
        truth_clock = sim.venue_clock(venue)
        feed = CandleFeed(venue, symbols, ["1m"], ws_url=sim.ws_base(venue),
                          rest_url=sim.rest_base(venue), clock=sim.clock,
                          gap_fill=GapFillOptions(history=5), close_policy="fast")
        feed.on_closed(lambda c: seen.append((c, truth_clock.time_ms())), inline=True)
        feed.on_corrected(corrections.append, inline=True)
        async with feed:
            async with asyncio.timeout(60):
                while len(seen) < 8 * len(symbols):
                    await asyncio.sleep(0.05)
        truth = {(s, c.open_time): c for s in symbols
                 for c in sim.closed_candles(venue, s, "1m")}
        stats = feed.filler.stats if feed.filler is not None else None
    assert corrections == []
    for c, _ in seen:
        assert c.same_values(truth[(c.symbol, c.open_time)], trade_ids=c.source == "ws"), c
    assert feed.fast_plan is not None and stats is not None
    if venue in FLAGGED:
        assert set(feed.fast_plan.fast) == set(feed.keys)
        assert stats.fast_streams == len(symbols) and stats.fast_closes >= len(seen) // 2
        from_rest = [c for c, _ in seen if c.source == "rest"]
        assert len(from_rest) >= len(seen) // 2, f"{len(from_rest)} of {len(seen)} from REST"
        # a fast close is emitted within a second of venue time (300 ms margin + a round trip
        # at x20), the closing frame only 4-40 venue seconds after the close
        delays = sorted(at - c.close_time for c, at in seen if c.source == "rest")
        assert delays[len(delays) // 2] < 2_000, delays
    else:
        assert feed.fast_plan.fast == () and stats.fast_closes == 0


@pytest.mark.parametrize("venue", FLAGGED)
async def test_a_rest_answer_that_was_not_final_is_corrected_and_stored(
        tmp_path: Path, venue: str) -> None:
    """REST shows a candle's final values only 5 s after its close, the fast margin is 300
    ms: each fast close carries the values of 5 s before the close, the closing frame that
    follows corrects it (``CandleCorrected``, counted), and the sink stores the correction:
    storage equals the truth exactly."""
    symbols = list(SYMBOLS[:3])
    keys = [StreamKey(venue, s, "1m") for s in symbols]
    db = tmp_path / "candles.sqlite"
    async with Simulator(venues=(venue,), symbols=symbols, intervals=("1m",), speed=SPEED,
                         seed=6, min_pushes_per_candle=4, rest_final_delay_ms=5_000) as sim:
        service = Service(service_config(sim, db, {venue: symbols}, intervals=("1m",),
                                         close_policy="fast"), clock=sim.clock)

        def corrected() -> int:
            return sum(s.metrics.corrections for f in service.feeds for s in f.stats())

        def closed() -> int:
            return sum(s.closed for f in service.feeds for s in f.stats())

        def settled() -> bool:
            """Every stream's newest close has had its closing frame (a fast close stays
            uncorrected if the process stops before the frame comes: the trade-off of
            ``fast``, in docs/guarantees.md). The next close is a second of wall time away."""
            newest = [s.last_closed for f in service.feeds for s in f.stats()]
            return all(c is not None and c.source == "ws" for c in newest)

        marks_final = await rest_marks_forming_rows(sim, venue, symbols[0])
        # a venue whose REST rows say they are not final yet (OKX's ``confirm``) never hands
        # the fast close a non-final row: nothing to correct, the closing frame closes
        wanted = 0 if marks_final else 6
        report = await run_until(
            service, lambda: corrected() >= wanted and closed() >= 12 and settled(), timeout=90)
    assert report.writers["sqlite"].dropped == 0
    await assert_storage_equals_truth(sim, db, keys)
    if marks_final:
        assert corrected() == 0
    else:
        assert corrected() >= 6


async def rest_marks_forming_rows(sim: Simulator, venue: str, symbol: str) -> bool:
    """Does the venue's REST answer mark the forming candle as not final (``closed=False``)?"""
    codec = history_codec(venue)
    async with RestClient(codec, sim.rest_base(venue)) as client:
        body = await client.fetch(codec.klines_request(symbol, "1m", limit=2))
    return any(not c.closed for c in codec.decode_klines(body, symbol, "1m"))
