"""The simulated Binance REST API: klines, exchangeInfo, ping and time, with request weights
(protocols.md §A.6, §B.4, §B.5). The generic dispatcher (``sim.rest.RestApp``) routes, charges
and applies faults; this module is the Binance part: the handlers, the weight limiter and the
error bodies.

Weight is counted per client IP in fixed **wall-clock** windows (the venue's REST window, 60 s,
aligned to the minute like the exchange's counters). Every response carries
``X-MBX-USED-WEIGHT-1M``. A request that would go over the limit gets HTTP 429 with
``Retry-After`` (seconds to the next window) and ``{"code":-1003,...}``; a client that sends
another request in the same window after a 429 is banned: HTTP 418 with ``Retry-After`` until
``ban_s`` has passed (§B.5).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import msgspec
from aiohttp import web

from candlekeeper.core.clock import ScaledClock
from candlekeeper.sim.market import Market
from candlekeeper.sim.rest import Admission, BadRequest, RestApp, RestStats, Route, weight_one
from candlekeeper.sim.venues.binance.exchange_info import exchange_info
from candlekeeper.sim.venues.binance.frames import rest_rows
from candlekeeper.venues.binance.endpoints import (
    INVALID_SYMBOL,
    REST_PATHS,
    USED_WEIGHT_HEADER,
)
from candlekeeper.venues.contract import VenueSpec, klines_weight

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


def _error(status: int, code: int, msg: str) -> BadRequest:
    return BadRequest(status, _encoder.encode({"code": code, "msg": msg}))


class WeightPolicy:
    """Binance's side of the REST dispatcher: weights, ``X-MBX-USED-WEIGHT-1M`` and the
    errors.md bodies (-1003 for 429/418, -1000 for 500, -1008 for 503, -1007 for 504; 502 is
    the HTML page a proxy in front of the API returns)."""

    ban_status = 418

    def __init__(self, limiter: WeightLimiter, wall: Callable[[], float] = time.time) -> None:
        self.limiter, self._wall = limiter, wall

    def admit(self, ip: str, weight: int, now: float) -> Admission:
        verdict = self.limiter.charge(ip, weight, now)
        headers = {USED_WEIGHT_HEADER: str(verdict.used)}
        if verdict.status == 200:
            return Admission(headers)
        headers["Retry-After"] = str(verdict.retry_after)
        if verdict.status == 429:
            msg = (f"Too much request weight used; current limit is {self.limiter.limit} request "
                   "weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid "
                   "polling the API.")
        else:
            until = int((now + (verdict.retry_after or 0)) * 1000)
            msg = (f"Way too much request weight used; IP banned until {until}. Please use "
                   "WebSocket Streams for live updates to avoid bans.")
        return Admission(headers, verdict.status, _encoder.encode({"code": -1003, "msg": msg}))

    def fault_headers(self, ip: str) -> dict[str, str]:
        return {USED_WEIGHT_HEADER: str(self.limiter.used(ip, self._wall()))}

    def fault_answer(self, status: int, retry_after_s: int) -> tuple[bytes, str]:
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


class BinanceRest:
    """Handlers of one Binance venue's REST API (the table in ``venues.binance.endpoints``)."""

    def __init__(self, spec: VenueSpec, futures: bool, market: Market,
                 clock: ScaledClock) -> None:
        self.spec, self.futures, self.market, self.clock = spec, futures, market, clock
        self.stats = RestStats()

    def app(self, policy: WeightPolicy) -> RestApp:
        paths = REST_PATHS[self.spec.id]
        prefix = paths.klines.rsplit("/", 1)[0]
        klines = Route(self._klines, self._klines_weight)
        routes = {
            paths.klines: klines,
            prefix + "/uiKlines": klines,
            paths.exchange_info: Route(self._info, lambda _: paths.exchange_info_weight),
            paths.ping: Route(lambda _: b"{}", weight_one),
            paths.time: Route(self._time, weight_one),
        }
        return RestApp(routes, policy, stats=self.stats)

    def _limit(self, request: web.Request) -> int:
        raw = request.query.get("limit")
        if raw is None or raw == "":
            return 500
        if not raw.isdigit() or len(raw) > 20:
            raise _error(400, -1100, "Illegal characters found in parameter 'limit'; legal "
                         "range is '^[0-9]{1,20}$'.")
        limit = int(raw)
        if limit < 1:
            raise _error(400, -1130, "Invalid data sent for a parameter.")
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
            raise _error(400, INVALID_SYMBOL, "Invalid symbol.")
        if interval not in self.market.intervals_of(symbol):
            raise _error(400, -1120, "Invalid interval.")
        if start is not None and end is not None and start > end:
            raise _error(400, -1023, "Start time is greater than end time.")
        self.stats.klines += 1
        rows = self.market.klines(symbol, interval, self.clock.time_ms(), start=start, end=end,
                                  limit=limit)
        return rest_rows(rows)

    def _info(self, request: web.Request) -> bytes:
        symbols = list(self.market.symbols)
        wanted = request.query.get("symbol")
        if wanted is not None:
            if wanted not in symbols:
                raise _error(400, INVALID_SYMBOL, "Invalid symbol.")
            symbols = [wanted]
        return _encoder.encode(exchange_info(self.spec, self.futures, symbols,
                                             self.market.profile, self.clock.time_ms()))

    def _time(self, _: web.Request) -> bytes:
        return b'{"serverTime":%d}' % self.clock.time_ms()


def _mandatory(value: str | None, name: str) -> str:
    if not value:
        raise _error(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                     "or malformed.")
    return value


def _time_param(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 20:
        raise _error(400, -1100, f"Illegal characters found in parameter '{name}'; legal range "
                     "is '^[0-9]{1,20}$'.")
    return int(value)
