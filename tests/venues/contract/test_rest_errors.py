"""Contract: each venue's history codec reads the venue's own error answers right — for every
registered venue, against the simulator's REST personality (the venue's real bodies, status
codes and headers) through the generic REST client.

Rate limited and banned are waited out by every caller; the venue's own trouble is retried;
an unknown symbol and a bad request are not (they cannot succeed on retry).
"""

from __future__ import annotations

import pytest

from candlekeeper.backfill.http import RestClient
from candlekeeper.errors import RestError, RestErrorKind
from candlekeeper.sim import Simulator
from candlekeeper.sim.faults import Fault
from candlekeeper.venues.contract import RestRequest
from candlekeeper.venues.registry import VENUES, history_codec

pytestmark = pytest.mark.integration

M = 60_000


async def fetch_error(sim: Simulator, venue: str, request: RestRequest | None = None,
                      fault: Fault | None = None) -> RestError:
    codec = history_codec(venue)
    if fault is not None:
        sim.inject(fault)
    request = request or codec.klines_request("BTCUSDT", "1m", limit=5)
    async with RestClient(codec, sim.rest_base(venue), timeout_s=5.0) as client:
        with pytest.raises(RestError) as info:
            await client.fetch(request)
        return info.value


@pytest.mark.parametrize("venue", VENUES)
async def test_the_venues_error_answers_are_classified(venue: str) -> None:
    codec = history_codec(venue)
    async with Simulator(venues=(venue,), symbols=("BTCUSDT",), intervals=("1m",),
                         speed=60.0) as sim:
        async with RestClient(codec, sim.rest_base(venue)) as client:
            # a window with a start: a venue whose every request names one
            # has no "latest rows" query
            since = sim.clock.time_ms() - 20 * M
            rows = codec.decode_klines(await client.fetch(codec.klines_request(
                "BTCUSDT", "1m", start_time=since, limit=5)), "BTCUSDT", "1m")
            assert len(rows) == 5
            symbols = codec.decode_symbols(await client.fetch(codec.symbols_request()))
            assert symbols == ["BTCUSDT"]
            server = codec.decode_server_time(await client.fetch(codec.server_time_request()))
            assert abs(server - sim.clock.time_ms()) < 60 * 1000 * 60  # a minute of wall

        limited = await fetch_error(sim, venue, fault=Fault(
            kind="rest_429", venue=venue, count=1, params={"retry_after_s": 1}))
        assert limited.kind is RestErrorKind.RATE_LIMITED and limited.retry_after == 1.0
        for status in (500, 502, 503, 504):
            busy = await fetch_error(sim, venue, fault=Fault(
                kind="rest_5xx", venue=venue, count=1, params={"status": status}))
            assert busy.kind is RestErrorKind.SERVER_ERROR, (status, busy)
        unknown = await fetch_error(sim, venue, codec.klines_request("NOSUCHUSDT", "1m"))
        assert unknown.kind is RestErrorKind.UNKNOWN_SYMBOL, unknown
        now = sim.clock.time_ms()
        backwards = codec.klines_request("BTCUSDT", "1m", start_time=now, end_time=now - 10 * M)
        bad = await fetch_error(sim, venue, backwards)
        assert bad.kind is RestErrorKind.BAD_REQUEST, bad
        banned = await fetch_error(sim, venue, fault=Fault(kind="rest_418", venue=venue,
                                                           duration_s=2.0))
        assert banned.kind is RestErrorKind.BANNED, banned
        assert banned.retry_after is not None and 0 < banned.retry_after <= 2.0
