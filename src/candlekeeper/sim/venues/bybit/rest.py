"""The simulated Bybit v5 market REST API (§D.7-§D.10), on the WebSocket's port.

Routes:

* ``GET /v5/market/kline`` (``category``, ``symbol``, ``interval`` in Bybit's names, ``start``,
  ``end``, ``limit`` default 200, max 1000): rows ``[start, open, high, low, close, volume,
  turnover]`` as strings, **newest first**, the forming candle included (its close is the last
  price). The window holds the candle containing ``start`` and the one containing ``end`` (the
  doc's example); when more than ``limit`` candles lie in it, the **newest** ``limit`` are
  returned (ccxt#16551; undocumented for v5, the client never depends on it).
* ``GET /v5/market/instruments-info`` (``category`` required; ``limit``/``cursor`` paging for
  linear, as ccxt follows ``nextPageCursor``; ``status=PreLaunch`` lists none): the venue's own
  category lists the simulated symbols with the fields ccxt reads (§D.11); the other
  categories (``inverse``, ``option``, and spot on the linear venue or linear on spot) answer
  empty lists so a multi-market client (ccxt's ``load_markets``) can start.
* ``GET /v5/market/time``.

Every answer is the ``{"retCode","retMsg","result","retExtInfo","time"}`` envelope; a bad
parameter is HTTP 200 with ``retCode`` 10001 ("Not supported symbols" for an unknown symbol).

**Rate limit** (§D.10): 600 requests per 5 s per IP, every request counting 1, in fixed wall
windows; the request over it is answered HTTP 403 "access too frequent" and the IP is blocked
for ``ban_s`` (600 s: "wait for at least 10 minutes"); no ``Retry-After`` (none documented, and
the body of a real 403 is undocumented: a short HTML page here). Faults answer 429 with
``retCode`` 10006 and 5xx with ``retCode`` 10016 or a gateway's HTML page.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import msgspec
from aiohttp import web

from candlekeeper.core.clock import ScaledClock
from candlekeeper.core.intervals import align
from candlekeeper.sim.market import Market
from candlekeeper.sim.rest import Admission, BadRequest, RestApp, RestStats, Route, weight_one
from candlekeeper.sim.venues.bybit.session import turnover
from candlekeeper.venues.bybit import schemas
from candlekeeper.venues.bybit.endpoints import (
    CATEGORY,
    INSTRUMENTS_PATH,
    INTERVALS_BY_NAME,
    KLINES_PATH,
    SERVER_TIME_PATH,
)
from candlekeeper.venues.bybit.history import candle_to_rest_row
from candlekeeper.venues.contract import VenueSpec

_encoder = msgspec.json.Encoder()
PARAMS_ERROR = 10001
DEFAULT_LIMIT = 200
_403 = (b"<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1>"
        b"</center><p>access too frequent</p></body></html>")
_GATEWAY = (b"<html><head><title>%d</title></head><body><center><h1>%d</h1></center></body>"
            b"</html>")


def _envelope(code: int, msg: str, now_ms: int) -> bytes:
    return b'{"retCode":%d,"retMsg":%s,"result":{},"retExtInfo":{},"time":%d}' % (
        code, _encoder.encode(msg), now_ms)


class Verdict(NamedTuple):
    status: int  # 200 or 403
    ban_left_s: int


class _Ip:
    __slots__ = ("banned_until", "count", "window")

    def __init__(self) -> None:
        self.window, self.count, self.banned_until = -1, 0, 0.0


class IpLimiter:
    """Requests per IP in fixed wall windows; the request over the limit starts a ban."""

    def __init__(self, limit: int, window_s: float, ban_s: float) -> None:
        self.limit, self.window_s, self.ban_s = limit, window_s, ban_s
        self._ips: dict[str, _Ip] = {}

    def charge(self, ip: str, now: float) -> Verdict:
        st = self._ips.setdefault(ip, _Ip())
        if now < st.banned_until:
            return Verdict(403, math.ceil(st.banned_until - now))
        window = int(now // self.window_s)
        if window != st.window:
            st.window, st.count = window, 0
        if st.count >= self.limit:
            st.banned_until = now + self.ban_s
            return Verdict(403, math.ceil(self.ban_s))
        st.count += 1
        return Verdict(200, 0)


class IpPolicy:
    """Bybit's side of the REST dispatcher: the IP limit and the error bodies."""

    ban_status = 403  # "403, access too frequent" blocks the IP

    def __init__(self, limiter: IpLimiter, wall: Callable[[], float] = time.time) -> None:
        self.limiter, self._wall = limiter, wall

    def admit(self, ip: str, weight: int, now: float) -> Admission:
        verdict = self.limiter.charge(ip, now)
        if verdict.status == 200:
            return Admission({})
        return Admission({}, 403, _403, "text/html")

    def fault_headers(self, ip: str) -> dict[str, str]:
        return {}

    def fault_answer(self, status: int, retry_after_s: int) -> tuple[bytes, str]:
        now_ms = int(self._wall() * 1000)
        if status == 429:
            return _envelope(10006, "Too many visits!", now_ms), "application/json"
        if status in (403, 418):
            return _403, "text/html"
        if status in (500, 503):
            return (_envelope(10016, "System error. Please try again later.", now_ms),
                    "application/json")
        return _GATEWAY % (status, status), "text/html"


def _bad(msg: str, now_ms: int) -> BadRequest:
    return BadRequest(200, _envelope(PARAMS_ERROR, msg, now_ms))


class BybitRest:
    """Handlers of the Bybit v5 market API for one simulated venue (one category)."""

    def __init__(self, spec: VenueSpec, market: Market, clock: ScaledClock) -> None:
        self.spec, self.market, self.clock = spec, market, clock
        self.category = CATEGORY[spec.id]
        self.stats = RestStats()

    def app(self, policy: IpPolicy) -> RestApp:
        routes = {
            KLINES_PATH: Route(self._klines, weight_one),
            INSTRUMENTS_PATH: Route(self._instruments, weight_one),
            SERVER_TIME_PATH: Route(self._time, weight_one),
        }
        return RestApp(routes, policy, stats=self.stats)

    def _now(self) -> int:
        return self.clock.time_ms()

    def _int(self, value: str | None, name: str) -> int | None:
        if value is None or value == "":
            return None
        if not value.isdigit() or len(value) > 19:
            raise _bad(f"params error: {name} invalid", self._now())
        return int(value)

    def _klines(self, request: web.Request) -> bytes:
        q, now = request.query, self._now()
        category = q.get("category") or "linear"  # "When category is not passed, use linear"
        symbol, name = q.get("symbol", ""), q.get("interval", "")
        if not symbol:
            raise _bad("params error: symbol invalid", now)
        interval = INTERVALS_BY_NAME.get(name)
        if interval is None:
            raise _bad("params error: interval invalid", now)
        if category != self.category or symbol not in self.market.symbols:
            raise _bad("Not supported symbols", now)
        if interval not in self.market.intervals_of(symbol):
            raise _bad("params error: interval invalid", now)
        start, end = self._int(q.get("start"), "start"), self._int(q.get("end"), "end")
        limit = self._int(q.get("limit"), "limit")
        if limit is not None and limit < 1:
            raise _bad("params error: limit invalid", now)
        if start is not None and end is not None and start > end:
            raise _bad("params error: start must be less than end", now)
        self.stats.klines += 1
        lim = min(limit or DEFAULT_LIMIT, self.spec.rest_max_limit)
        rows = self.market.klines(symbol, interval, now, start=None, end=end, limit=lim)
        if start is not None:
            first = align(start, interval)  # the candle that contains start is included
            rows = [c for c in rows if c.open_time >= first]
        data = [candle_to_rest_row(c, turnover(c)) for c in reversed(rows)]
        return _encoder.encode(schemas.KlinesResponse(
            retCode=0, retMsg="OK", result=schemas.KlinesResult(
                category=self.category, symbol=symbol, rows=data), time=now))

    def _instruments(self, request: web.Request) -> bytes:
        q, now = request.query, self._now()
        category = q.get("category", "")
        if category not in ("spot", "linear", "inverse", "option"):
            raise _bad("params error: Category is invalid", now)
        items: list[schemas.Instrument] = []
        cursor = ""
        if category == self.category and q.get("status", "Trading") == "Trading":
            symbols = list(self.market.symbols)
            if q.get("symbol"):
                symbols = [s for s in symbols if s == q.get("symbol")]
            offset = self._int(q.get("cursor"), "cursor") or 0
            page = len(symbols) if category == "spot" else min(
                self._int(q.get("limit"), "limit") or 500, 1000)
            chunk = symbols[offset:offset + page]
            if offset + page < len(symbols):
                cursor = str(offset + page)
            items = [self._instrument(s) for s in chunk]
        return _encoder.encode(schemas.InstrumentsResponse(
            retCode=0, retMsg="OK", result=schemas.InstrumentsResult(
                category=category, items=items, nextPageCursor=cursor), time=now))

    def _instrument(self, symbol: str) -> schemas.Instrument:
        prof = self.market.profile(symbol)
        base, quote = symbol[:-4], symbol[-4:]  # the simulated symbols are all ...USDT
        tick = _step(prof.price_decimals)
        step = _step(prof.qty_decimals)
        if self.category == "spot":
            return schemas.Instrument(
                symbol=symbol, status="Trading", baseCoin=base, quoteCoin=quote,
                priceFilter=schemas.PriceFilter(tickSize=tick),
                lotSizeFilter=schemas.LotSizeFilter(
                    basePrecision=step, quotePrecision="0.0000001", minOrderQty=step,
                    maxOrderQty="1000000", minOrderAmt="5", maxOrderAmt="8000000"))
        return schemas.Instrument(
            symbol=symbol, status="Trading", baseCoin=base, quoteCoin=quote,
            contractType="LinearPerpetual", settleCoin=quote,
            priceScale=str(prof.price_decimals), launchTime="1585526400000",
            priceFilter=schemas.PriceFilter(tickSize=tick, minPrice=tick, maxPrice="1999999"),
            lotSizeFilter=schemas.LotSizeFilter(qtyStep=step, minOrderQty=step,
                                                maxOrderQty="1000000", minNotionalValue="5"))

    def _time(self, _: web.Request) -> bytes:
        now = self._now()
        return _encoder.encode(schemas.TimeResponse(
            retCode=0, retMsg="OK", result=schemas.TimeResult(
                timeSecond=str(now // 1000), timeNano=str(now * 1_000_000)), time=now))


def _step(decimals: int) -> str:
    """``10 ** -decimals`` as decimal text (``2`` -> ``"0.01"``, ``0`` -> ``"1"``)."""
    return "1" if decimals <= 0 else "0." + "0" * (decimals - 1) + "1"
