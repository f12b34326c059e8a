"""The simulated Hyperliquid info API (§F.7-§F.11), on the WebSocket's port: one route,
``POST /info``, whose JSON body's ``type`` picks the answer.

* ``candleSnapshot`` (``req.coin``, ``req.interval``, ``req.startTime``, ``req.endTime``, all
  required): an ascending array of ``{"t","T","s","i","o","c","h","l","v","n"}``; the candles
  overlapping **both** ends of the window are included (the 2023 cassette), the forming one
  too. Only the **most recent 5,000 candles** exist (``VenueSpec.rest_history_candles``): a
  window reaching further back starts at the oldest one kept ("a startTime far in the past
  returned the oldest available candles", ccxt#23614). At most **500** rows per answer, counted
  from the start (the pagination rule, §F.7 [!]).
* ``meta`` (``universe`` with ``name``/``szDecimals``/``maxLeverage``), ``metaAndAssetCtxs``
  (``[meta, [ctx…]]``, ``markPx`` the last price), ``exchangeStatus`` (``time`` as a string, as
  ccxt's comment prints it); ``spotMeta``, ``spotMetaAndAssetCtxs`` (empty) and ``perpDexs``
  (``[null]``): what ccxt's ``load_markets`` asks for (§F.11).

Errors: a body that is no valid request (bad JSON, a missing field, a string ``startTime``,
an unknown ``type`` or interval) is **HTTP 422** with a plain-text reason (ccxt#26071). An
unknown coin is HTTP 200 ``{"status":"err","response":"Unknown coin: X"}`` and a window that
ends before it starts ``{"status":"err","response":...}`` (inferences: the real answers were
not found, §F.10).

**Rate limit** (§F.10): 1200 weight per minute per IP in fixed wall windows; weights 2 for
``exchangeStatus``, 20 for every other type, plus one per 60 candles a snapshot asks for. Over
it: HTTP 429 (the status third-party clients assume) until the window ends. Faults: 429, 418
(not a Hyperliquid status; a proxy's) and 5xx answer plain text, as a gateway would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec
from aiohttp import web

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.core.intervals import INTERVAL_MS, MONTH_NAME, align, next_open, prev_open
from candlekeeper.sim.market import Market
from candlekeeper.sim.rest import BODY_KEY, Admission, BadRequest, RestApp, RestStats, Route
from candlekeeper.sim.venues.hyperliquid.push import trades
from candlekeeper.venues.contract import VenueSpec
from candlekeeper.venues.hyperliquid import schemas
from candlekeeper.venues.hyperliquid.endpoints import (
    CANDLE_SNAPSHOT,
    EXCHANGE_STATUS,
    INFO_PATH,
    INFO_WEIGHT,
    ITEMS_PER_EXTRA_WEIGHT,
    LIGHT_WEIGHT,
    META,
)
from candlekeeper.venues.hyperliquid.history import candle_to_row
from candlekeeper.venues.hyperliquid.symbols import native

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()
DESERIALIZE = "Failed to deserialize the JSON body into the target type"
#: the request body, read by the dispatcher (``RestApp``) before the handlers run

MAX_LEVERAGE = 50


class Verdict(NamedTuple):
    status: int  # 200 or 429
    retry_s: int


class _Ip:
    __slots__ = ("used", "window")

    def __init__(self) -> None:
        self.window, self.used = -1, 0


class WeightLimiter:
    """Weight per IP in fixed wall windows; over the limit, 429 until the window ends."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self._ips: dict[str, _Ip] = {}

    def charge(self, ip: str, weight: int, now: float) -> Verdict:
        st = self._ips.setdefault(ip, _Ip())
        window = int(now // self.window_s)
        if window != st.window:
            st.window, st.used = window, 0
        if st.used + weight > self.limit:
            return Verdict(429, max(1, math.ceil((window + 1) * self.window_s - now)))
        st.used += weight
        return Verdict(200, 0)


class WeightPolicy:
    """Hyperliquid's side of the REST dispatcher: the weight limit and the error bodies."""

    #: no ban is documented; the ``rest_418`` fault answers what a proxy in front would
    ban_status = 418

    def __init__(self, limiter: WeightLimiter, wall: Callable[[], float] = time.time) -> None:
        self.limiter, self._wall = limiter, wall

    def admit(self, ip: str, weight: int, now: float) -> Admission:
        verdict = self.limiter.charge(ip, weight, now)
        if verdict.status == 200:
            return Admission({})
        return Admission({}, 429, b"Too Many Requests", "text/plain")

    def fault_headers(self, ip: str) -> dict[str, str]:
        return {}

    def fault_answer(self, status: int, retry_after_s: int) -> tuple[bytes, str]:
        texts = {429: "Too Many Requests", 418: "I'm a teapot", 500: "Internal Server Error",
                 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
        return texts.get(status, "error").encode(), "text/plain"


def _unprocessable(detail: str) -> BadRequest:
    return BadRequest(422, f"{DESERIALIZE}: {detail}".encode(), "text/plain")


def _err(text: str) -> BadRequest:
    return BadRequest(200, _encoder.encode(schemas.ActionError(status="err", response=text)))


def request_json(request: web.Request) -> dict[str, Any]:
    """The body the dispatcher read, as a JSON object; 422 otherwise."""
    body = request.get(BODY_KEY, b"")
    try:
        obj = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise _unprocessable(f"expected a JSON object ({exc})") from None
    if not isinstance(obj, dict):
        raise _unprocessable("expected a JSON object")
    return obj


def coin_of(request: web.Request) -> str | None:
    """The coin a request names (``req.coin`` of a candleSnapshot), for symbol-scoped faults."""
    try:
        req = request_json(request).get("req")
    except BadRequest:
        return None
    coin = req.get("coin") if isinstance(req, dict) else None
    return coin if isinstance(coin, str) else None


class HyperliquidRest:
    """Handlers of the info API for one simulated venue."""

    def __init__(self, spec: VenueSpec, market: Market, clock: ScaledClock) -> None:
        self.spec, self.market, self.clock = spec, market, clock
        self.stats = RestStats()
        #: wire coin -> market symbol (the simulated coins are the market's symbols)
        self.coins = {native(s): s for s in market.symbols}

    def app(self, policy: WeightPolicy) -> RestApp:
        return RestApp({INFO_PATH: Route(self._info, self._weight)}, policy, stats=self.stats,
                       symbol_of=coin_of)

    # -- weights ----------------------------------------------------------------------------
    def _weight(self, request: web.Request) -> int:
        obj = request_json(request)
        kind = obj.get("type")
        if kind == EXCHANGE_STATUS:
            return LIGHT_WEIGHT
        if kind == CANDLE_SNAPSHOT:
            req = self._snapshot_req(obj)
            n = _count(req.startTime, req.endTime, req.interval, self.spec.rest_max_limit)
            return INFO_WEIGHT + math.ceil(n / ITEMS_PER_EXTRA_WEIGHT)
        return INFO_WEIGHT

    # -- answers ----------------------------------------------------------------------------
    def _info(self, request: web.Request) -> bytes:
        obj = request_json(request)
        kind = obj.get("type")
        if kind == CANDLE_SNAPSHOT:
            return self._candles(self._snapshot_req(obj))
        if kind == META:
            return _encoder.encode(self._meta())
        if kind == "metaAndAssetCtxs":
            return _encoder.encode([self._meta(), self._ctxs()])
        if kind == EXCHANGE_STATUS:
            return _encoder.encode({"specialStatuses": None, "time": str(self.clock.time_ms())})
        if kind == "spotMeta":
            return b'{"universe":[],"tokens":[]}'
        if kind == "spotMetaAndAssetCtxs":
            return b'[{"universe":[],"tokens":[]},[]]'
        if kind == "perpDexs":
            return b"[null]"
        raise _unprocessable(f"unknown variant `{str(kind)[:40]}`")

    def _snapshot_req(self, obj: dict[str, Any]) -> schemas.CandleSnapshotReq:
        try:
            req = msgspec.convert(obj.get("req"), schemas.CandleSnapshotReq)
        except msgspec.ValidationError as exc:
            raise _unprocessable(f"req: {exc}") from None
        if req.interval not in self.spec.intervals:
            raise _unprocessable(f"req.interval: unknown variant `{req.interval[:20]}`")
        return req

    def _candles(self, req: schemas.CandleSnapshotReq) -> bytes:
        symbol = self.coins.get(req.coin)
        if symbol is None or req.interval not in self.market.intervals_of(symbol):
            raise _err(f"Unknown coin: {req.coin[:40]}")
        if req.startTime > req.endTime:
            raise _err("startTime must not be after endTime")
        self.stats.klines += 1
        interval, now = req.interval, self.clock.time_ms()
        oldest = horizon_start(align(now, interval), interval, self.spec.rest_history_candles)
        start = max(align(req.startTime, interval), oldest)
        rows = self.market.klines(symbol, interval, now, start=start, end=req.endTime,
                                  limit=self.spec.rest_max_limit)
        return _encoder.encode([candle_to_row(c, req.coin, trades(c)) for c in rows])

    def _meta(self) -> schemas.Meta:
        return schemas.Meta(universe=[
            schemas.Asset(name=coin, szDecimals=self.market.profile(s).qty_decimals,
                          maxLeverage=MAX_LEVERAGE) for coin, s in self.coins.items()],
            marginTables=[])

    def _ctxs(self) -> list[schemas.AssetCtx]:
        now = self.clock.time_ms()
        out = []
        for s in self.coins.values():
            price = self._price(s, now)
            out.append(schemas.AssetCtx(
                funding="0.0000125", openInterest="1000.0", prevDayPx=price,
                dayNtlVlm="1000000.0", premium="0.0", oraclePx=price, markPx=price,
                midPx=price, impactPxs=[price, price], dayBaseVlm="100.0"))
        return out

    def _price(self, symbol: str, now: int) -> str:
        interval = self.market.intervals_of(symbol)[0]
        c: Candle | None = self.market.forming(symbol, interval, now)
        if c is None:
            rows = self.market.klines(symbol, interval, now, start=None, end=None, limit=1)
            c = rows[-1] if rows else None
        return c.close_str if c is not None else "1.0"


def horizon_start(cur: int, interval: str, keep: int | None) -> int:
    """Open time of the oldest of the ``keep`` most recent candles (the forming one, opening at
    ``cur``, counts); 0 when the venue keeps everything."""
    if keep is None:
        return 0
    if interval != MONTH_NAME:
        return max(0, cur - (keep - 1) * INTERVAL_MS[interval])
    t = cur
    for _ in range(keep - 1):
        t = prev_open(t, interval)
    return max(0, t)


def _count(start: int, end: int, interval: str, cap: int) -> int:
    """Candles a window holds (both end candles included), at most ``cap``."""
    if end < start:
        return 0
    if interval != MONTH_NAME:
        return min(cap, (align(end, interval) - align(start, interval)) //
                   INTERVAL_MS[interval] + 1)
    n, t = 0, align(start, interval)
    while t <= end and n < cap:
        n, t = n + 1, next_open(t, interval)
    return n
