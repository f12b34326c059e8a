"""The venue-agnostic RestClient on BingX's terms, against a scripted server on 127.0.0.1:
``X-RateLimit-Requests-Remain`` / ``-Expire``, the 500-per-10 s window, body code 100410 on an
HTTP 200, and 429 without Retry-After."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from candlekeeper.backfill.http import RestClient
from candlekeeper.errors import RestError, RestErrorKind
from candlekeeper.venues.bingx.endpoints import BINGX_SWAP, KLINES_PATH
from candlekeeper.venues.bingx.history import BingxHistoryCodec

CODEC = BingxHistoryCodec(BINGX_SWAP)
ROWS = {"code": 0, "msg": "", "data": [
    {"open": "0.7034", "close": "0.7065", "high": "0.7081", "low": "0.7033",
     "volume": "635494.00", "time": 1702717200000}]}


@dataclass
class Answer:
    status: int = 200
    body: object = field(default_factory=lambda: ROWS)
    headers: dict[str, str] = field(default_factory=dict)


class Server:
    """Plays ``script`` then answers ROWS; records each request's wall time and params."""

    def __init__(self, script: list[Answer] | None = None) -> None:
        self.script = list(script or [])
        self.hits: list[tuple[float, dict[str, str]]] = []
        self.base = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append((time.time(), dict(request.query)))
        answer = self.script.pop(0) if self.script else Answer()
        return web.Response(status=answer.status, body=json.dumps(answer.body).encode(),
                            headers=answer.headers, content_type="application/json")


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_get(KLINES_PATH, srv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    srv.base = f"http://127.0.0.1:{port}"
    yield srv
    await runner.cleanup()


async def test_klines_round_trip_with_native_params(server: Server) -> None:
    async with RestClient(BingxHistoryCodec(BINGX_SWAP), server.base) as client:
        body = await client.fetch(CODEC.klines_request("KNCUSDT", "1h", start_time=1, limit=5))
    rows = CODEC.decode_klines(body, "KNCUSDT", "1h")
    assert [(c.symbol, c.open_time, c.close_str) for c in rows] == \
        [("KNCUSDT", 1702717200000, "0.7065")]
    assert server.hits[0][1] == {"symbol": "KNC-USDT", "interval": "1h", "limit": "5",
                                 "startTime": "1"}


async def test_remain_header_feeds_the_ten_second_window(server: Server) -> None:
    server.script = [Answer(headers={"X-RateLimit-Requests-Remain": "120",
                                     "X-RateLimit-Requests-Expire": "9000"})]
    async with RestClient(BingxHistoryCodec(BINGX_SWAP), server.base) as client:
        await client.fetch(CODEC.klines_request("BTCUSDT", "1m"))
        (limit, ten_s), = client.extra_budgets
        assert (limit, ten_s.window_s, ten_s.limit) == (500, 10.0, 475)  # rest.headroom 0.95
        assert ten_s.used == 380  # the server's count (500 - 120) beats our own 1
        assert client.budget.used == 1 and not client.budget.blocked


async def test_no_requests_left_blocks_every_caller_until_the_window_expires(
        server: Server) -> None:
    server.script = [Answer(headers={"X-RateLimit-Requests-Remain": "0",
                                     "X-RateLimit-Requests-Expire": "400"})]
    async with RestClient(BingxHistoryCodec(BINGX_SWAP), server.base) as client:
        t0 = time.time()
        await client.fetch(CODEC.klines_request("BTCUSDT", "1m"))
        assert client.budget.blocked_until == pytest.approx(t0 + 0.4, abs=0.15)
        await client.fetch(CODEC.klines_request("BTCUSDT", "1m"))
    assert server.hits[1][0] >= client.budget.blocked_until - 0.01


async def test_code_100410_on_http_200_is_a_rate_limit(server: Server) -> None:
    server.script = [Answer(body={"code": 100410, "msg": "Rate limit exceeded"},
                            headers={"X-RateLimit-Requests-Expire": "300"})]
    async with RestClient(BingxHistoryCodec(BINGX_SWAP), server.base) as client:
        t0 = time.time()
        with pytest.raises(RestError) as info:
            await client.fetch(CODEC.klines_request("BTCUSDT", "1m"))
        err = info.value
        assert (err.kind, err.status, err.code, err.retry_after) == \
            (RestErrorKind.RATE_LIMITED, 200, 100410, 0.3)
        assert "rate limited (code 100410: rate limit exceeded: Rate limit exceeded)" in str(err)
        assert client.rate_limited == 1 and client.errors == 1
        assert client.budget.blocked_until == pytest.approx(t0 + 0.3, abs=0.15)
        # the next request waits out the block, then succeeds
        await client.fetch(CODEC.klines_request("BTCUSDT", "1m"))
    assert server.hits[1][0] - server.hits[0][0] >= 0.25


async def test_other_error_codes_on_http_200_are_bad_requests(server: Server) -> None:
    server.script = [Answer(body={"code": 80014, "msg": "bad interval"})]
    async with RestClient(BingxHistoryCodec(BINGX_SWAP), server.base) as client:
        with pytest.raises(RestError, match="code 80014: invalid parameter: bad interval") as e:
            await client.fetch(CODEC.klines_request("BTCUSDT", "1m"))
        assert e.value.kind is RestErrorKind.BAD_REQUEST
        assert client.rate_limited == 0 and not client.budget.blocked


async def test_http_429_without_retry_after_waits_for_the_expiry(server: Server) -> None:
    server.script = [Answer(status=429, body={"code": 100410, "msg": ""},
                            headers={"X-RateLimit-Requests-Expire": "250"})]
    async with RestClient(BingxHistoryCodec(BINGX_SWAP), server.base) as client:
        with pytest.raises(RestError) as info:
            await client.fetch(CODEC.klines_request("BTCUSDT", "1m"))
        assert (info.value.status, info.value.retry_after) == (429, 0.25)


async def test_the_short_window_is_enforced(server: Server) -> None:
    """weight_limit 20 / minute scales the 500-per-10 s window to 10 per 10 s (9 with headroom);
    window_s 1.2 s makes that window 0.2 s; the server never sees more than 10 in one."""
    async with RestClient(BingxHistoryCodec(BINGX_SWAP), server.base, weight_limit=20,
                          window_s=1.2) as client:
        (limit, short), = client.extra_budgets
        assert (limit, short.limit) == (10, 9) and short.window_s == pytest.approx(0.2)
        for _ in range(12):
            await client.fetch(CODEC.klines_request("BTCUSDT", "1m"))
        assert short.waits >= 1
    per_window = Counter(int(at // 0.2) for at, _ in server.hits)
    # <= the server's 10: a request granted at a window's very end may land in the next one
    assert len(server.hits) == 12 and max(per_window.values()) <= limit
