"""The simulated OKX v5 REST API (protocols-more-venues.md §E.7-E.10), on the WebSocket's port.

Routes: ``GET /api/v5/market/candles`` (the latest 1,440 rows only) and
``/api/v5/market/history-candles`` (everything): ``instId``, ``bar`` (the bars the client
maps: ``1m``..``4H`` and the ``…utc`` ones), ``after`` / ``before`` exclusive cursors,
``limit`` default 100, at most 300; rows newest first,
the forming candle first with ``confirm`` "0" (§E.7), every value a string.
``/api/v5/public/instruments?instType=`` lists the venue's own type (SWAP or SPOT) and answers
the others (FUTURES, OPTION, and the other of SWAP/SPOT) with an empty list, as ccxt's
``load_markets`` asks all of them; ``/api/v5/public/time``.

Every body carries ``"code":"0"`` on success (ccxt raises otherwise). Unknown ``instId``: HTTP 200
``51001`` (§E.10); a bad parameter or an empty cursor range (``before`` not below ``after``):
HTTP 400 ``51000`` (inference: OKX documents 51000 for a bad parameter, not this case).

**Rate limits** (§E.7-E.9): per IP and per endpoint, counted in fixed wall-clock windows that
start at an IP's first request: candles 40 / 2 s, history-candles 20 / 2 s, instruments 20 / 2 s,
time 10 / 2 s, all scaled by the run's REST window override. Over a limit: HTTP 429
``{"msg":"Too Many Requests","code":"50011"}`` (the nautilus fixture); no ban and no
``Retry-After`` (none is documented) and no rate-limit headers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from decimal import Decimal

import msgspec
from aiohttp import web

from candlekeeper.core.clock import ScaledClock
from candlekeeper.core.intervals import INTERVAL_MS, align
from candlekeeper.sim.market import Market
from candlekeeper.sim.rest import Admission, BadRequest, RestApp, RestStats, Route
from candlekeeper.sim.venues.okx.session import row
from candlekeeper.venues.contract import RestWindow, VenueSpec
from candlekeeper.venues.okx import schemas
from candlekeeper.venues.okx.endpoints import (
    BAD_PARAMETER_CODE,
    BARS,
    CANDLES_DEPTH,
    CANDLES_PATH,
    ENDPOINT_LIMITS,
    HISTORY_CANDLES_PATH,
    INST_TYPE,
    INSTRUMENTS_PATH,
    RATE_LIMITED_CODE,
    SERVER_TIME_PATH,
    UNKNOWN_INSTRUMENT_CODE,
)
from candlekeeper.venues.okx.stream import inst_id

_encoder = msgspec.json.Encoder()
DEFAULT_LIMIT = 100
_TOO_MANY = _encoder.encode({"msg": "Too Many Requests", "code": RATE_LIMITED_CODE})
_5XX: dict[int, tuple[bytes, str]] = {
    500: (b'{"code":"50026","msg":"System error. Try again later","data":[]}',
          "application/json"),
    502: (b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
          b"Gateway</h1></center></body></html>", "text/html"),
    503: (b'{"code":"50001","msg":"Service temporarily unavailable. Try again later",'
          b'"data":[]}', "application/json"),
    504: (b'{"code":"50004","msg":"Endpoint request timeout. ","data":[]}',
          "application/json"),
}
_BAR_INTERVAL = {bar: iv for iv, bar in BARS.items()}


class EndpointLimiter:
    """Requests per IP and endpoint in fixed wall-clock windows; ``now`` is wall seconds."""

    def __init__(self, limits: dict[str, tuple[int, float]]) -> None:
        self.limits = limits
        self._windows: dict[tuple[str, str], list[float]] = {}  # (ip, path) -> [start, count]

    def charge(self, ip: str, path: str, now: float) -> bool:
        limit, seconds = self.limits.get(path, (math.inf, 1.0))
        w = self._windows.setdefault((ip, path), [-math.inf, 0.0])
        if now >= w[0] + seconds:
            w[0], w[1] = now, 0.0
        if w[1] >= limit:
            return False
        w[1] += 1
        return True


def scaled_limits(spec: VenueSpec, windows: tuple[RestWindow, ...]) -> dict[str, tuple[int, float]]:
    """The per-endpoint limits, scaled as the run's REST window override scales the spec's."""
    base, run = spec.rest_limits[0], windows[0]
    lf, sf = run.limit / base.limit, run.seconds / base.seconds
    return {p: (max(1, round(n * lf)), s * sf) for p, (n, s) in ENDPOINT_LIMITS.items()}


class EndpointPolicy:
    """OKX's side of the REST dispatcher: every path has its own budget per IP."""

    #: OKX documents no IP ban (only 429 50011); a ban fault answers 418 with the 50011 body
    ban_status = 418

    def __init__(self, limiter: EndpointLimiter) -> None:
        self.limiter = limiter
        self._path = ""

    def route(self, path: str) -> None:
        self._path = path

    def admit(self, ip: str, weight: int, now: float) -> Admission:
        if self.limiter.charge(ip, self._path, now):
            return Admission({})
        return Admission({}, 429, _TOO_MANY)

    def fault_headers(self, ip: str) -> dict[str, str]:
        return {}

    def fault_answer(self, status: int, retry_after_s: int) -> tuple[bytes, str]:
        if status in (429, 418):
            return _TOO_MANY, "application/json"
        return _5XX[status]


def _error(status: int, code: str, msg: str) -> BadRequest:
    return BadRequest(status, _encoder.encode({"code": code, "msg": msg, "data": []}))


def _int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 19:
        raise _error(400, BAD_PARAMETER_CODE, f"Parameter {name} error")
    return int(value)


def ct_val(symbol: str) -> Decimal:
    """Contract size of a simulated swap: 0.01 BTC and 0.1 ETH as on OKX, 1 for the rest."""
    return {"BTCUSDT": Decimal("0.01"), "ETHUSDT": Decimal("0.1")}.get(symbol, Decimal(1))


class OkxRest:
    """Handlers of the OKX REST API for one simulated venue."""

    def __init__(self, spec: VenueSpec, market: Market, clock: ScaledClock) -> None:
        self.spec, self.market, self.clock = spec, market, clock
        self.venue = spec.id
        self.inst_type = INST_TYPE[spec.id]
        self.swap = self.inst_type == "SWAP"
        self.stats = RestStats()
        self._symbols = {inst_id(self.venue, s): s for s in market.symbols}

    def app(self, policy: EndpointPolicy, wall: Callable[[], float] = time.time) -> RestApp:
        def charged(path: str, serve: Callable[[web.Request], bytes]) -> Route:
            def run(request: web.Request) -> bytes:
                return serve(request)

            def weigh(request: web.Request) -> int:
                policy.route(path)
                return 1
            return Route(run, weigh)

        routes = {
            CANDLES_PATH: charged(CANDLES_PATH, lambda r: self._candles(r, CANDLES_DEPTH)),
            HISTORY_CANDLES_PATH: charged(HISTORY_CANDLES_PATH, lambda r: self._candles(r, None)),
            INSTRUMENTS_PATH: charged(INSTRUMENTS_PATH, self._instruments),
            SERVER_TIME_PATH: charged(SERVER_TIME_PATH, self._time),
        }
        return RestApp(routes, policy, stats=self.stats, wall=wall)

    def _candles(self, request: web.Request, depth: int | None) -> bytes:
        q = request.query
        native = q.get("instId", "")
        if not native:
            raise _error(400, BAD_PARAMETER_CODE, "Parameter instId can not be empty")
        symbol = self._symbols.get(native)
        if symbol is None:
            raise _error(200, UNKNOWN_INSTRUMENT_CODE, "Instrument ID, Instrument ID code or "
                         "Spread ID doesn't exist.")
        interval = _BAR_INTERVAL.get(q.get("bar", "1m"))
        if interval is None or interval not in self.market.intervals_of(symbol):
            raise _error(400, BAD_PARAMETER_CODE, "Parameter bar error")
        after, before = _int(q.get("after"), "after"), _int(q.get("before"), "before")
        limit = _int(q.get("limit"), "limit")
        limit = DEFAULT_LIMIT if limit is None else limit
        if limit < 1:
            raise _error(400, BAD_PARAMETER_CODE, "Parameter limit error")
        limit = min(limit, self.spec.rest_max_limit)
        if after is not None and before is not None and before >= after - 1:
            raise _error(400, BAD_PARAMETER_CODE, "Parameter before error")
        self.stats.klines += 1
        now = self.clock.time_ms()
        cur = align(now - self.market.rest_lag_ms, interval)
        end = None if after is None else after - 1
        lo = before + 1 if before is not None else None
        if depth is not None:  # market/candles: the latest 1,440 rows only
            floor = cur - (depth - 1) * INTERVAL_MS[interval] if interval != "1M" else 0
            lo = floor if lo is None else max(lo, floor)
        rows = self.market.klines(symbol, interval, now, start=None, end=end,
                                  limit=limit if lo is None else limit + 1)
        if lo is not None:
            rows = [c for c in rows if c.open_time >= lo]
        rows = rows[-limit:]
        ct = ct_val(symbol) if self.swap else None
        data = [row(c, c.open_time < cur, ct) for c in reversed(rows)]
        return _encoder.encode(schemas.CandlesResponse("0", "", data))

    def _instruments(self, request: web.Request) -> bytes:
        inst_type = request.query.get("instType", "")
        if inst_type not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION", "EVENTS"):
            raise _error(400, BAD_PARAMETER_CODE, "Parameter instType error")
        items: list[schemas.Instrument] = []
        if inst_type == self.inst_type:
            for symbol in self.market.symbols:
                items.append(self._instrument(symbol))
        return _encoder.encode(schemas.InstrumentsResponse("0", "", items))

    def _instrument(self, symbol: str) -> schemas.Instrument:
        native = inst_id(self.venue, symbol)
        base, _, rest = native.partition("-")
        quote = rest.removesuffix("-SWAP")
        prof = self.market.profile(symbol)
        tick = format(Decimal(1).scaleb(-prof.price_decimals), "f")
        listed = str(self.market.listing_time(symbol, self.market.intervals_of(symbol)[0]))
        if self.swap:
            return schemas.Instrument(
                instId=native, instType="SWAP", state="live", tickSz=tick, lotSz="1",
                minSz="1", uly=f"{base}-{quote}", instFamily=f"{base}-{quote}",
                settleCcy=quote, ctVal=format(ct_val(symbol), "f"), ctValCcy=base,
                ctType="linear", ctMult="1", lever="100", listTime=listed, maxLmtSz="100000",
                maxMktSz="10000", category="1")
        lot = format(Decimal(1).scaleb(-prof.qty_decimals), "f")
        return schemas.Instrument(
            instId=native, instType="SPOT", state="live", tickSz=tick, lotSz=lot, minSz=lot,
            baseCcy=base, quoteCcy=quote, lever="10", listTime=listed,
            maxLmtSz="9999999999", maxMktSz="1000000", category="1")

    def _time(self, _: web.Request) -> bytes:
        return b'{"code":"0","msg":"","data":[{"ts":"%d"}]}' % self.clock.time_ms()
