"""The simulated BingX perpetual-swap REST API (protocols.md §C.4), on the WebSocket's port.

Routes: ``GET /openApi/swap/v3/quote/klines`` (``symbol=BTC-USDT``, ``interval``, ``startTime``,
``endTime``, ``limit`` default 500, max 1440; rows ``{"open","close","high","low","volume",
"time"}`` with ``time`` = open time, ascending, the forming candle last when in range, like
Binance), the older ``/openApi/swap/v2/quote/klines`` (same, but with neither ``startTime`` nor
``endTime`` it returns only the latest candle as a single *object*, the BX-2023 quirk),
``/openApi/swap/v2/quote/contracts`` (the JKorf fixture's shape), and
``/openApi/swap/v2/server/time``. ``/openApi/spot/v1/common/symbols`` and
``/openApi/cswap/v1/market/contracts`` answer empty catalogues so a multi-market client (ccxt's
``load_markets``) can start; they are not part of this venue.

Bad parameters get HTTP 200 with ``{"code":80014,"msg":"Invalid parameters, err:…"}`` (the swap
API's code and wording in ccxt's captures); a ``limit`` over 1440 is clamped (inference).

**Rate limits** (§C.4): the Market API group allows 500 requests per 10 s and 1000 per minute
per IP; every request counts 1. Windows are fixed and start at an IP's first request after the
previous one ended, which reproduces the one live observation (``Remain 499``, ``Expire 10000``
on a first request). Every answer carries ``X-RateLimit-Requests-Remain`` (requests left in the
10 s window) and ``X-RateLimit-Requests-Expire`` (ms until it ends). Over a limit: HTTP 429 with
``{"code":100410,...}``; a client that sends again while still over the limit after that is
banned: HTTP 418 for ``ban_s`` (300 s: "restore after 5 minutes"). No ``Retry-After`` header
(none is documented). The windows are the spec's ``rest_limits``.

The generic dispatcher (``sim.rest.RestApp``) routes, charges and applies faults; this module is
the BingX part: the handlers, the request limiter and the bodies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import msgspec
from aiohttp import web

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.sim.market import Market
from candlekeeper.sim.rest import Admission, BadRequest, RestApp, RestStats, Route, weight_one
from candlekeeper.sim.venues.bingx.session import native_symbol
from candlekeeper.venues.bingx import schemas
from candlekeeper.venues.bingx.endpoints import (
    CONTRACTS_PATH,
    EXPIRE_HEADER,
    KLINES_PATH,
    KLINES_V2_PATH,
    RATE_LIMITED_CODE,
    REMAIN_HEADER,
    SERVER_TIME_PATH,
)
from candlekeeper.venues.bingx.history import candle_to_rest_kline
from candlekeeper.venues.contract import VenueSpec

BAD_PARAMS = 80014
_encoder = msgspec.json.Encoder()
_BUSY = "The current system is busy, please try again later"
_5XX: dict[int, tuple[bytes, str]] = {
    500: (b'{"code":100500,"msg":"' + _BUSY.encode() + b'","debugMsg":""}', "application/json"),
    502: (b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
          b"Gateway</h1></center></body></html>", "text/html"),
    503: (b'{"code":80012,"msg":"service unavailable"}', "application/json"),
    504: (b'{"code":100500,"msg":"' + _BUSY.encode() + b'","debugMsg":""}', "application/json"),
}


class Verdict(NamedTuple):
    status: int  # 200, 429 or 418
    remain: int  # requests left in the shortest window
    expire_ms: int  # until the shortest window ends


class _Window:
    __slots__ = ("count", "start")

    def __init__(self) -> None:
        self.start = -math.inf
        self.count = 0


class _Ip:
    __slots__ = ("banned_until", "warned", "windows")

    def __init__(self, n: int) -> None:
        self.windows = [_Window() for _ in range(n)]
        self.warned = False
        self.banned_until = 0.0


class RequestLimiter:
    """Pure per-IP request counting in several fixed windows; ``now`` is wall seconds."""

    def __init__(self, windows: tuple[tuple[float, int], ...] = ((10.0, 500), (60.0, 1000)),
                 ban_s: float = 300.0) -> None:
        self.windows = tuple(sorted(windows))  # shortest first: its numbers go in the headers
        self.ban_s = ban_s
        self._ips: dict[str, _Ip] = {}

    def _state(self, ip: str, now: float) -> _Ip:
        st = self._ips.get(ip)
        if st is None:
            st = self._ips[ip] = _Ip(len(self.windows))
        for w, (length, _) in zip(st.windows, self.windows, strict=True):
            if now >= w.start + length:
                w.start, w.count = now, 0
        return st

    def _headers(self, st: _Ip, now: float) -> tuple[int, int]:
        (length, limit), w = self.windows[0], st.windows[0]
        return max(0, limit - w.count), max(0, math.ceil((w.start + length - now) * 1000))

    def charge(self, ip: str, now: float) -> Verdict:
        st = self._state(ip, now)
        if now < st.banned_until:
            return Verdict(418, *self._headers(st, now))
        if st.banned_until:  # a ban that ended starts over: 429 before the next ban
            st.banned_until, st.warned = 0.0, False
        over = any(w.count >= limit for w, (_, limit) in zip(st.windows, self.windows,
                                                               strict=True))
        if over:
            if st.warned:
                st.banned_until = now + self.ban_s
                return Verdict(418, *self._headers(st, now))
            st.warned = True
            return Verdict(429, *self._headers(st, now))
        st.warned = False
        for w in st.windows:
            w.count += 1
        return Verdict(200, *self._headers(st, now))

    def peek(self, ip: str, now: float) -> tuple[int, int]:
        """(remain, expire_ms) without charging (for answers a fault produced)."""
        return self._headers(self._state(ip, now), now)

    def ban_left(self, ip: str, now: float) -> float:
        st = self._ips.get(ip)
        return 0.0 if st is None else max(0.0, st.banned_until - now)


def _rate_headers(remain: int, expire_ms: int) -> dict[str, str]:
    return {REMAIN_HEADER: str(remain), EXPIRE_HEADER: str(expire_ms)}


class RequestPolicy:
    """BingX's side of the REST dispatcher: every request counts 1 in every window."""

    ban_status = 418

    def __init__(self, limiter: RequestLimiter, wall: Callable[[], float] = time.time) -> None:
        self.limiter, self._wall = limiter, wall

    def admit(self, ip: str, weight: int, now: float) -> Admission:
        verdict = self.limiter.charge(ip, now)
        headers = _rate_headers(verdict.remain, verdict.expire_ms)
        if verdict.status == 200:
            return Admission(headers)
        body, ctype = self.fault_answer(verdict.status,
                                        math.ceil(self.limiter.ban_left(ip, now)))
        return Admission(headers, verdict.status, body, ctype)

    def fault_headers(self, ip: str) -> dict[str, str]:
        return _rate_headers(*self.limiter.peek(ip, self._wall()))

    def fault_answer(self, status: int, retry_after_s: int) -> tuple[bytes, str]:
        if status in (429, 418):
            what = ("rate limit exceeded" if status == 429 else
                    f"rate limit exceeded, IP banned for {retry_after_s} s")
            return _encoder.encode({"code": RATE_LIMITED_CODE, "msg": what}), "application/json"
        return _5XX[status]


def _bad(msg: str) -> BadRequest:
    """Bad parameters: HTTP 200 with code 80014, as the swap API answers."""
    return BadRequest(200, _encoder.encode({"code": BAD_PARAMS,
                                            "msg": f"Invalid parameters, err:{msg}", "data": {}}))


class BingxRest:
    """Handlers of the BingX swap REST API for one simulated venue."""

    def __init__(self, spec: VenueSpec, market: Market, clock: ScaledClock) -> None:
        self.spec, self.market, self.clock = spec, market, clock
        self.stats = RestStats()
        self._natives = {native_symbol(s): s for s in market.symbols}

    def app(self, policy: RequestPolicy) -> RestApp:
        def const(body: bytes) -> Route:
            return Route(lambda _: body, weight_one)

        routes = {
            KLINES_PATH: Route(self._klines_v3, weight_one),
            KLINES_V2_PATH: Route(self._klines_v2, weight_one),
            CONTRACTS_PATH: Route(self._contracts, weight_one),
            SERVER_TIME_PATH: Route(self._time, weight_one),
            "/openApi/spot/v1/common/symbols": const(
                b'{"code":0,"msg":"","debugMsg":"","data":{"symbols":[]}}'),
            "/openApi/cswap/v1/market/contracts": const(b'{"code":0,"msg":"","data":[]}'),
        }
        return RestApp(routes, policy, stats=self.stats)

    def _query(self, request: web.Request) -> tuple[str, str, int | None, int | None, int]:
        q = request.query
        native, interval = q.get("symbol", ""), q.get("interval", "")
        if not native:
            raise _bad("symbol: field is required")
        if not interval:
            raise _bad("interval: field is required")
        symbol = self._natives.get(native)
        if symbol is None:
            raise _bad(f"symbol: {native} does not exist")
        if interval not in self.market.intervals_of(symbol):
            raise _bad(f"interval: {interval} is not supported")
        start, end = _int(q.get("startTime"), "startTime"), _int(q.get("endTime"), "endTime")
        limit = _int(q.get("limit"), "limit")
        if limit is not None and limit < 1:
            raise _bad("limit: must be at least 1")
        if start is not None and end is not None and start > end:
            raise _bad("startTime must not be after endTime")
        lim = min(limit or 500, self.spec.rest_max_limit)
        return symbol, interval, start, end, lim

    def _rows(self, request: web.Request) -> tuple[list[Candle], bool]:
        symbol, interval, start, end, limit = self._query(request)
        self.stats.klines += 1
        rows = self.market.klines(symbol, interval, self.clock.time_ms(), start=start, end=end,
                                  limit=limit)
        return rows, start is None and end is None

    def _klines_v3(self, request: web.Request) -> bytes:
        rows, _ = self._rows(request)
        data = [candle_to_rest_kline(c) for c in rows]
        return _encoder.encode(schemas.KlinesResponse(0, "", data))

    def _klines_v2(self, request: web.Request) -> bytes:
        rows, latest_only = self._rows(request)
        if latest_only:  # BX-2023: "the latest k-line data will be returned", as an object
            data: list[schemas.RestKline] | schemas.RestKline | None = (
                candle_to_rest_kline(rows[-1]) if rows else None)
        else:
            data = [candle_to_rest_kline(c) for c in rows]
        return _encoder.encode(schemas.KlinesResponse(0, "", data))

    def _contracts(self, request: web.Request) -> bytes:
        items = []
        for i, symbol in enumerate(self.market.symbols):
            native = native_symbol(symbol)
            base, _, quote = native.partition("-")
            prof = self.market.profile(symbol)
            items.append(schemas.Contract(
                symbol=native, status=1, asset=base, currency=quote, contractId=str(100 + i),
                pricePrecision=prof.price_decimals, quantityPrecision=prof.qty_decimals,
                apiStateOpen="true", apiStateClose="true"))
        return _encoder.encode(schemas.ContractsResponse(0, "", items))

    def _time(self, _: web.Request) -> bytes:
        return b'{"code":0,"msg":"","data":{"serverTime":%d}}' % self.clock.time_ms()


def _int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 19:
        raise _bad(f"{name}: {value!r} is not a valid integer")
    return int(value)
