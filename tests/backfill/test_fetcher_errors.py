"""429 / Retry-After / 418 / 5xx / timeouts / dropped connections / bad bodies, against a small
scripted server (real socket), and the "never a partial result" rule."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest
from backfillkit import T0, ScriptedVenue, Step, make_candles, rest_fields

from candlekeeper.backfill import KlineFetcher, RestClient
from candlekeeper.core.clock import ScaledClock
from candlekeeper.core.intervals import MINUTE
from candlekeeper.errors import BackfillError
from candlekeeper.venues.binance.endpoints import BINANCE_USDM
from candlekeeper.venues.binance.history import BinanceHistoryCodec

N = 300
CANDLES = make_candles("BTCUSDT", N) + make_candles("ETHUSDT", N)
END = T0 + N * MINUTE
#: venue time well after the last candle closed
CLOCK = ScaledClock(END + 10 * MINUTE)


def fetcher(venue: ScriptedVenue, *, timeout_s: float = 5.0, max_attempts: int = 8,
            client: RestClient | None = None, **kw: float) -> KlineFetcher:
    rest = client or RestClient(BinanceHistoryCodec(BINANCE_USDM), venue.base, timeout_s=timeout_s,
                                backoff_initial_s=0.1, backoff_max_s=0.4)
    return KlineFetcher(BinanceHistoryCodec(BINANCE_USDM), rest, clock=CLOCK,
                        max_attempts=max_attempts,
                        backoff_initial_s=kw.get("backoff_initial_s", 0.01),
                        backoff_max_s=kw.get("backoff_max_s", 0.05))


def truth(symbol: str = "BTCUSDT") -> list[tuple[object, ...]]:
    return [rest_fields(c) for c in CANDLES if c.symbol == symbol]


async def test_429_honours_retry_after_for_every_caller() -> None:
    script = [Step(429, {"Retry-After": "0.6"})]
    async with ScriptedVenue(CANDLES, script) as venue:
        f = fetcher(venue)
        first = asyncio.create_task(f.fetch("BTCUSDT", "1m", T0, END))
        while f.client.rate_limited == 0:  # the 429 has been received and applied
            await asyncio.sleep(0.005)
        hit_429 = venue.hits[0].at
        # a second caller that starts now must wait too, although it never saw the 429
        other = KlineFetcher(BinanceHistoryCodec(BINANCE_USDM), f.client, clock=CLOCK)
        eth = await other.fetch("ETHUSDT", "1m", T0, END)
        btc = await first
        assert [rest_fields(c) for c in btc] == truth() and [rest_fields(c) for c in eth] == \
            truth("ETHUSDT")
        later = [h.at - hit_429 for h in venue.hits[1:]]
        assert len(later) == 2 and min(later) >= 0.55, later
        assert f.stats.rate_limited == 1 and f.stats.retries == 1 and f.stats.errors == 1
        assert other.stats.rate_limited == 0 and other.stats.retries == 0
        await f.client.close()


async def test_429_without_retry_after_backs_off_exponentially_into_the_next_window() -> None:
    script = [Step(429), Step(429), Step(429)]
    async with ScriptedVenue(CANDLES, script) as venue:
        client = RestClient(BinanceHistoryCodec(BINANCE_USDM), venue.base, window_s=0.25,
                            backoff_initial_s=0.1,
                            backoff_max_s=0.4)
        f = fetcher(venue, client=client)
        got = await f.fetch("BTCUSDT", "1m", T0, END)
        await f.client.close()
    assert [rest_fields(c) for c in got] == truth()
    hits = venue.hits
    gaps = [b.at - a.at for a, b in itertools.pairwise(hits)]
    # client backoff 0.1, 0.2, 0.4 (capped at 0.4) ...
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.39, gaps
    # ... and never again inside the window that answered 429
    windows = [int(h.wall // 0.25) for h in hits]
    assert all(b > a for a, b in itertools.pairwise(windows)), windows
    assert f.stats.rate_limited == 3 and f.stats.retries == 3


async def test_418_logs_one_error_and_blocks_everyone_until_the_ban_ends(
        caplog: pytest.LogCaptureFixture) -> None:
    script = [Step(418, {"Retry-After": "0.5"}, b'{"code":-1003,"msg":"Way too much request '
                   b'weight used; IP banned until 1."}')]
    async with ScriptedVenue(CANDLES, script) as venue:
        f = fetcher(venue)
        with caplog.at_level(logging.ERROR, logger="candlekeeper.backfill"):
            results = await asyncio.gather(f.fetch("BTCUSDT", "1m", T0, END),
                                           f.fetch("ETHUSDT", "1m", T0, END))
        await f.client.close()
    assert [rest_fields(c) for c in results[0]] == truth()
    assert [rest_fields(c) for c in results[1]] == truth("ETHUSDT")
    banned = [r for r in caplog.records if "IP banned until" in r.getMessage()]
    assert len(banned) == 1 and banned[0].levelno == logging.ERROR
    assert "binance-usdm" in banned[0].getMessage()
    ban_at = venue.hits[0].at
    # the other request was already in flight when the ban arrived; every later one waited
    after = [h.at - ban_at for h in venue.hits if h.at > ban_at + 0.01]
    assert after and min(after) >= 0.45, after
    assert f.stats.banned == 1


async def test_418_without_retry_after_uses_the_banned_until_time() -> None:
    until_ms = int((time.time() + 0.5) * 1000)
    body = f'{{"code":-1003,"msg":"Way too much request weight used; IP banned until ' \
           f'{until_ms}. Please use WebSocket Streams."}}'.encode()
    async with ScriptedVenue(CANDLES, [Step(418, body=body)]) as venue:
        f = fetcher(venue)
        got = await f.fetch("BTCUSDT", "1m", T0, END)
        await f.client.close()
    assert len(got) == N
    assert venue.hits[1].at - venue.hits[0].at >= 0.4
    assert f.client.budget.blocked_until == pytest.approx(until_ms / 1000, abs=0.05)


async def test_5xx_timeouts_and_garbage_are_retried() -> None:
    script = [Step(503), Step(500), Step(sleep=1.0), Step(garbage=True), Step(502), Step(504),
              Step(408)]
    async with ScriptedVenue(CANDLES, script) as venue:
        f = fetcher(venue, timeout_s=0.3, max_attempts=8)
        got = await f.fetch("BTCUSDT", "1m", T0, END)
        await f.client.close()
    assert [rest_fields(c) for c in got] == truth()
    assert f.stats.retries == 7 and f.stats.errors == 7 and f.stats.requests == 8
    assert f.stats.rate_limited == 0 and f.stats.banned == 0


async def test_dropped_connections_are_retried() -> None:
    # aiohttp itself retries a request once when a kept-alive connection is dropped, so a run
    # of drops is needed for the fetcher to see one
    async with ScriptedVenue(CANDLES, [Step(drop=True)] * 3) as venue:
        f = fetcher(venue)
        got = await f.fetch("BTCUSDT", "1m", T0, END)
        await f.client.close()
    assert [rest_fields(c) for c in got] == truth()
    assert not venue.script and f.stats.errors >= 1 and f.stats.retries == f.stats.errors


async def test_connection_refused_is_retried_then_reported() -> None:
    async with ScriptedVenue(CANDLES) as venue:
        base = venue.base  # the port is free again once the server is gone
    rest = RestClient(BinanceHistoryCodec(BINANCE_USDM), base)
    f = KlineFetcher(BinanceHistoryCodec(BINANCE_USDM), rest, clock=CLOCK, max_attempts=3,
                     backoff_initial_s=0.01, backoff_max_s=0.02)
    with pytest.raises(BackfillError, match=r"gave up after 3 attempts.*ClientConnectorError"):
        await f.fetch("BTCUSDT", "1m", T0, END)
    await rest.close()
    assert f.stats.requests == 3 and f.stats.weight_used == 0


async def test_gives_up_after_max_attempts_with_a_clear_error() -> None:
    async with ScriptedVenue(CANDLES, [Step(503)] * 10) as venue:
        f = fetcher(venue, max_attempts=3)
        with pytest.raises(BackfillError, match=r"gave up after 3 attempts.*HTTP 503"):
            await f.fetch("BTCUSDT", "1m", T0, END)
        await f.client.close()
    assert len(venue.hits) == 3


async def test_a_400_is_not_retried() -> None:
    body = b'{"code":-1121,"msg":"Invalid symbol."}'
    async with ScriptedVenue(CANDLES, [Step(400, body=body)]) as venue:
        f = fetcher(venue)
        with pytest.raises(BackfillError, match=r"Invalid symbol"):
            await f.fetch("BTCUSDT", "1m", T0, END)
        await f.client.close()
    assert len(venue.hits) == 1 and f.stats.retries == 0


async def test_one_failing_page_fails_the_whole_fetch_no_partial_result() -> None:
    long = make_candles("BTCUSDT", 2000)
    end = T0 + 2000 * MINUTE
    clock = ScaledClock(end + MINUTE)
    # the first window succeeds, then every later request fails
    async with ScriptedVenue(long, [Step()] + [Step(500)] * 50) as venue:
        rest = RestClient(BinanceHistoryCodec(BINANCE_USDM), venue.base)
        f = KlineFetcher(BinanceHistoryCodec(BINANCE_USDM), rest, clock=clock, max_attempts=2,
                         backoff_initial_s=0.01, backoff_max_s=0.02)
        with pytest.raises(BackfillError, match="gave up after 2 attempts"):
            await f.fetch("BTCUSDT", "1m", T0, end)
        await rest.close()
    assert f.stats.candles == 0


async def test_sloppy_answers_are_sorted_deduplicated_and_clipped() -> None:
    # the server ignores startTime/endTime, answers unsorted with duplicates; the forming candle
    # (closing after the fetcher's clock) is among the rows
    clock = ScaledClock(T0 + (N - 1) * MINUTE + 30_000)  # inside the last candle
    async with ScriptedVenue(CANDLES, sloppy=True) as venue:
        rest = RestClient(BinanceHistoryCodec(BINANCE_USDM), venue.base)
        f = KlineFetcher(BinanceHistoryCodec(BINANCE_USDM), rest, clock=clock)
        got = await f.fetch("BTCUSDT", "1m", T0 + 10 * MINUTE, T0 + 400 * MINUTE)
        await rest.close()
    assert [rest_fields(c) for c in got] == truth()[10:N - 1]
    assert f.stats.unexpected_rows > 0


async def test_a_server_capping_the_limit_is_paged_through() -> None:
    async with ScriptedVenue(CANDLES, cap=70) as venue:
        rest = RestClient(BinanceHistoryCodec(BINANCE_USDM), venue.base)
        f = KlineFetcher(BinanceHistoryCodec(BINANCE_USDM), rest, clock=CLOCK)
        got = await f.fetch("BTCUSDT", "1m", T0, END)
        await rest.close()
    assert [rest_fields(c) for c in got] == truth()
    assert f.stats.requests == 5  # 300 candles, 70 at a time


async def test_a_burst_of_429s_to_requests_already_in_flight_is_one_refusal(
        caplog: pytest.LogCaptureFixture) -> None:
    """Six requests sent together, all answered 429: the wait they set is the first step of
    the backoff, not its sixth (it escalated per answer, up to the cap, in a millisecond)."""
    burst = 6
    script = [Step(429, sleep=0.2) for _ in range(burst)]
    async with ScriptedVenue(CANDLES, script) as venue:
        client = RestClient(BinanceHistoryCodec(BINANCE_USDM), venue.base, window_s=0.25,
                            backoff_initial_s=0.1, backoff_max_s=3.2)
        f = KlineFetcher(BinanceHistoryCodec(BINANCE_USDM), client, clock=CLOCK,
                         max_concurrency=burst)
        with caplog.at_level(logging.WARNING, logger="candlekeeper.backfill.http"):
            got = await asyncio.gather(*(f.fetch("BTCUSDT", "1m", T0, END)
                                         for _ in range(burst)))
        await f.client.close()
    assert all([rest_fields(c) for c in g] == truth() for g in got)
    refused = [h for h in venue.hits if h.status == 429]
    retried = [h for h in venue.hits if h.status == 200]
    assert len(refused) == burst and len(retried) == burst
    # one refusal: the retries go after one backoff step (0.1 s, into the next 0.25 s
    # window), not after 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s
    assert max(h.at for h in retried) - max(h.at for h in refused) < 0.8
    warned = [r for r in caplog.records
              if r.name.endswith(".http") and "rate limited" in r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    assert client.rate_limited == burst
