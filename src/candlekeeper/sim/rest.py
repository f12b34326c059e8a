"""The simulated REST API: klines, exchangeInfo, ping and time, with request weights
(protocols.md §A.6, §B.4, §B.5).

Weight is counted per client IP in fixed **wall-clock** windows (60 s by default, aligned to the
minute like the exchange's counters). Wall rather than venue time because the limit protects the
server's real capacity, and because at a speed-up of 1000 a venue-time minute would last 60 ms
and no client could ever hit the limit. Every response carries ``X-MBX-USED-WEIGHT-1M``. A request
that would go over the limit gets HTTP 429 with ``Retry-After`` (seconds to the next window) and
``{"code":-1003,...}``; a client that sends another request in the same window after a 429 is
banned: HTTP 418 with ``Retry-After`` until ``ban_s`` has passed (§B.5).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import msgspec
from aiohttp import web

from candlekeeper.core.clock import ScaledClock
from candlekeeper.sim.exchange_info import exchange_info
from candlekeeper.sim.market import Market
from candlekeeper.sim.venues.binance_frames import rest_rows
from candlekeeper.venues.binance.endpoints import REST_PATHS
from candlekeeper.venues.contract import VenueSpec, klines_weight

if TYPE_CHECKING:
    from candlekeeper.sim.rest_faults import RestFaults

_encoder = msgspec.json.Encoder()


BINANCE_5XX: dict[int, tuple[bytes, str]] = {
    500: (b'{"code":-1000,"msg":"An unknown error occurred while processing the request."}',
          "application/json"),
    502: (b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
          b"Gateway</h1></center></body></html>", "text/html"),
    503: (b'{"code":-1008,"msg":"Server is currently overloaded with other requests. Please '
          b'try again in a few minutes."}', "application/json"),
    504: (b'{"code":-1007,"msg":"Timeout waiting for response from backend server. Send status '
          b'unknown; execution status unknown."}', "application/json"),
}


class Verdict(NamedTuple):
    status: int  # 200, 429 or 418
    used: int  # weight used in the current window, after this request
    retry_after: int | None


class _IpState:
    __slots__ = ("banned_until", "used", "warned", "window")

    def __init__(self) -> None:
        self.window = -1
        self.used = 0
        self.warned = False
        self.banned_until = 0.0


class WeightLimiter:
    """Pure request-weight accounting; ``now`` is wall seconds (``time.time()``)."""

    def __init__(self, limit: int, window_s: float = 60.0, ban_s: float = 120.0) -> None:
        self.limit, self.window_s, self.ban_s = limit, window_s, ban_s
        self._ips: dict[str, _IpState] = {}

    def charge(self, ip: str, weight: int, now: float) -> Verdict:
        st = self._ips.setdefault(ip, _IpState())
        window = int(now // self.window_s)
        if window != st.window:
            st.window, st.used, st.warned = window, 0, False
        if now < st.banned_until:
            return Verdict(418, st.used, math.ceil(st.banned_until - now))
        if st.used + weight > self.limit:
            if st.warned:
                st.banned_until = now + self.ban_s
                return Verdict(418, st.used, math.ceil(self.ban_s))
            st.warned = True
            return Verdict(429, st.used, max(1, math.ceil((window + 1) * self.window_s - now)))
        st.used += weight
        return Verdict(200, st.used, None)

    def used(self, ip: str, now: float) -> int:
        st = self._ips.get(ip)
        if st is None or st.window != int(now // self.window_s):
            return 0
        return st.used


class RestStats(msgspec.Struct):
    requests: int = 0
    klines: int = 0
    errors_400: int = 0
    rejected_429: int = 0
    banned_418: int = 0


class BadRequest(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


class RestApi:
    """aiohttp handlers for one venue; ``prefix`` is ``/fapi/v1`` or ``/api/v3``."""

    def __init__(self, spec: VenueSpec, market: Market, clock: ScaledClock,
                 limiter: WeightLimiter, wall: Callable[[], float] = time.time) -> None:
        self.spec, self.market, self.clock, self.limiter = spec, market, clock, limiter
        paths = REST_PATHS[spec.id]
        self.prefix = paths.klines.rsplit("/", 1)[0]
        self.stats = RestStats()
        self._wall = wall
        #: REST faults of this venue (``sim.rest_faults``), set once a fault plan touches REST
        self.faults: RestFaults | None = None
        self._routes: dict[str, tuple[Callable[[web.Request], int], Callable[
            [web.Request], bytes]]] = {
            paths.klines: (self._klines_weight, self._klines),
            self.prefix + "/uiKlines": (self._klines_weight, self._klines),
            paths.exchange_info: (lambda _: paths.exchange_info_weight, self._info),
            self.prefix + "/ping": (lambda _: 1, lambda _: b"{}"),
            self.prefix + "/time": (lambda _: 1, self._time),
        }

    def handles(self, path: str) -> bool:
        return path in self._routes

    def fault_headers(self, ip: str) -> dict[str, str]:
        return {"X-MBX-USED-WEIGHT-1M": str(self.limiter.used(ip, self._wall()))}

    def fault_answer(self, status: int, retry_after_s: int) -> tuple[bytes, str]:
        """Binance's own bodies (errors.md): -1003 for 429/418, -1000 for 500, -1008 for 503,
        -1007 for 504; 502 is the HTML page a proxy in front of the API returns."""
        if status == 429:
            return _encoder.encode({"code": -1003, "msg": (
                "Too much request weight used; current limit is exceeded. Please use WebSocket "
                "Streams for live updates to avoid polling the API.")}), "application/json"
        if status == 418:
            until = int((self._wall() + retry_after_s) * 1000)
            return _encoder.encode({"code": -1003, "msg": (
                f"Way too much request weight used; IP banned until {until}. Please use "
                "WebSocket Streams for live updates to avoid bans.")}), "application/json"
        return BINANCE_5XX[status]

    async def handle(self, request: web.Request) -> web.Response:
        self.stats.requests += 1
        faults = self.faults
        if faults is not None and faults.active:
            answer = await faults.intercept(request)
            if answer is not None:
                return answer
        weigh, serve = self._routes[request.path]
        ip = request.remote or "?"
        now = self._wall()
        try:
            weight = weigh(request)
        except BadRequest:
            weight = 1
        verdict = self.limiter.charge(ip, weight, now)
        headers = {"X-MBX-USED-WEIGHT-1M": str(verdict.used)}
        if verdict.status != 200:
            headers["Retry-After"] = str(verdict.retry_after)
            if verdict.status == 429:
                self.stats.rejected_429 += 1
                msg = (f"Too much request weight used; current limit is {self.limiter.limit} "
                       "request weight per 1 MINUTE. Please use WebSocket Streams for live "
                       "updates to avoid polling the API.")
            else:
                self.stats.banned_418 += 1
                until = int((now + (verdict.retry_after or 0)) * 1000)
                msg = (f"Way too much request weight used; IP banned until {until}. Please use "
                       "WebSocket Streams for live updates to avoid bans.")
            return self._json(verdict.status, {"code": -1003, "msg": msg}, headers)
        try:
            body = serve(request)
        except BadRequest as exc:
            self.stats.errors_400 += 1
            return self._json(400, {"code": exc.code, "msg": exc.msg}, headers)
        return web.Response(body=body, headers=headers, content_type="application/json")

    @staticmethod
    def _json(status: int, obj: object, headers: dict[str, str]) -> web.Response:
        return web.Response(status=status, body=_encoder.encode(obj), headers=headers,
                            content_type="application/json")

    # -- endpoints --------------------------------------------------------------------------
    def _limit(self, request: web.Request) -> int:
        raw = request.query.get("limit")
        if raw is None or raw == "":
            return 500
        if not raw.isdigit() or len(raw) > 20:
            raise BadRequest(-1100, "Illegal characters found in parameter 'limit'; legal range "
                             "is '^[0-9]{1,20}$'.")
        limit = int(raw)
        if limit < 1:
            raise BadRequest(-1130, "Invalid data sent for a parameter.")
        return min(limit, self.spec.rest_max_limit)

    def _klines_weight(self, request: web.Request) -> int:
        return klines_weight(self.spec, self._limit(request))

    def _klines(self, request: web.Request) -> bytes:
        q = request.query
        symbol = _mandatory(q.get("symbol"), "symbol")
        interval = _mandatory(q.get("interval"), "interval")
        start, end = _time_param(q.get("startTime"), "startTime"), _time_param(
            q.get("endTime"), "endTime")
        limit = self._limit(request)
        if symbol not in self.market.symbols:
            raise BadRequest(-1121, "Invalid symbol.")
        if interval not in self.market.intervals_of(symbol):
            raise BadRequest(-1120, "Invalid interval.")
        if start is not None and end is not None and start > end:
            raise BadRequest(-1023, "Start time is greater than end time.")
        self.stats.klines += 1
        rows = self.market.klines(symbol, interval, self.clock.time_ms(), start=start, end=end,
                                  limit=limit)
        return rest_rows(rows)

    def _info(self, request: web.Request) -> bytes:
        symbols = list(self.market.symbols)
        wanted = request.query.get("symbol")
        if wanted is not None:
            if wanted not in symbols:
                raise BadRequest(-1121, "Invalid symbol.")
            symbols = [wanted]
        return _encoder.encode(exchange_info(self.spec, symbols, self.clock.time_ms()))

    def _time(self, _: web.Request) -> bytes:
        return b'{"serverTime":%d}' % self.clock.time_ms()


def _mandatory(value: str | None, name: str) -> str:
    if not value:
        raise BadRequest(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or "
                         "malformed.")
    return value


def _time_param(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 20:
        raise BadRequest(-1100, f"Illegal characters found in parameter '{name}'; legal range "
                         "is '^[0-9]{1,20}$'.")
    return int(value)
