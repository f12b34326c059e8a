"""Hyperliquid keeps only the most recent 5,000 candles of a coin and interval (§F.7): a hole
older than that cannot be filled from the venue. The fetcher never asks for it; the backfill
and the ``gaps`` audit/repair report it as unfillable (and fill everything younger) instead of
retrying; the simulator's ``candleSnapshot`` serves exactly that memory, with both window ends'
candles included and 500 rows at most per answer."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest

from candlekeeper.backfill import KlineFetcher, RestClient
from candlekeeper.backfill.runner import Backfiller
from candlekeeper.core.intervals import MINUTE, align
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sim import Simulator
from candlekeeper.sinks.sqlite import SQLiteSink
from candlekeeper.venues.contract import RestRequest
from candlekeeper.venues.registry import get_spec, history_codec

VENUE = "hyperliquid-perp"
T0 = 1_704_067_200_000
KEEP = 5000


async def test_holes_beyond_the_5000_candle_memory_are_unfillable(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert get_spec(VENUE).rest_history_candles == KEEP
    history = KEEP + 300
    async with Simulator(venues=(VENUE,), symbols=["BTCUSDT"], intervals=("1m",),
                         start_time_ms=T0, history=history, rest_final_delay_ms=0) as sim:
        sink = SQLiteSink(tmp_path / "candles.sqlite")
        await sink.open()
        key = StreamKey(VENUE, "BTCUSDT", "1m")
        async with RestClient(history_codec(VENUE), sim.rest_base(VENUE)) as client:
            errors: dict[str, int] = {}

            def count(kind: str, n: int) -> None:
                errors[kind] = errors.get(kind, 0) + n

            fetcher = KlineFetcher(client.codec, client, clock=sim.clock, count_error=count)
            eng = Backfiller(sink, {VENUE: fetcher})
            truth = sim.closed_candles(VENUE, "BTCUSDT", "1m")
            assert len(truth) >= history
            start = truth[0].open_time
            oldest = align(sim.clock.time_ms(), "1m") - (KEEP - 1) * MINUTE
            with caplog.at_level(logging.WARNING, "candlekeeper.backfill.fetcher"):
                result = await eng.fill(key, start)
                assert result.error is None
                # everything the venue still has is stored, exactly as the truth
                kept = [c for c in truth if c.open_time >= oldest]
                rows = sink.read(key)
                assert [c.open_time for c in rows] == [c.open_time for c in kept]
                assert all(a.same_values(b, trade_ids=False)
                           for a, b in zip(rows, kept, strict=True))
                # ... and what is older is reported unfillable, once, not retried
                assert result.unfillable == [(start, oldest)]
                lost = (oldest - start) // MINUTE
                assert fetcher.stats.beyond_history == lost
                assert errors == {"unfillable_beyond_history": lost}
                # the audit finds the hole, the repair cannot fill it and says so
                requests = fetcher.stats.requests
                audit = await eng.audit(key, start)
                assert audit.holes == [(start, oldest)]
                repaired = await eng.repair(audit)
                assert repaired.error is None and repaired.fetched == 0
                assert repaired.unfillable == [(start, oldest)]
                assert fetcher.stats.requests == requests  # nothing asked of the venue
            warnings = [r for r in caplog.records if "unfillable" in r.getMessage()]
            assert len(warnings) == 1 and "only its last 5000 candles" in warnings[0].getMessage()
        await sink.close()


async def test_candle_snapshot_serves_its_memory_both_window_ends_and_500_rows() -> None:
    async with Simulator(venues=(VENUE,), symbols=["BTCUSDT"], intervals=("1m",),
                         start_time_ms=T0, history=KEEP + 100) as sim:
        codec = history_codec(VENUE)
        now = sim.clock.time_ms()
        cur = align(now, "1m")
        async with RestClient(codec, sim.rest_base(VENUE)) as client:

            async def snapshot(start: int, end: int) -> list[int]:
                body = msgspec.json.encode({"type": "candleSnapshot", "req": {
                    "coin": "BTCUSDT", "interval": "1m", "startTime": start, "endTime": end}})
                rows = codec.decode_klines(await client.fetch(RestRequest(
                    "POST", "/info", {}, 20, body)), "BTCUSDT", "1m")
                return [c.open_time for c in rows]

            # mid-candle ends: both candles come along (the 2023 cassette)
            got = await snapshot(cur - 10 * MINUTE + 7_000, cur - 5 * MINUTE + 7_000)
            assert got == [cur - k * MINUTE for k in range(10, 4, -1)]
            # far in the past: the oldest candles kept, 500 at most
            got = await snapshot(0, now)
            assert got[0] == cur - (KEEP - 1) * MINUTE and len(got) == 500
