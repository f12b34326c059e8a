"""Sans-I/O Bybit v5 REST codec, linear and spot (§D.7-§D.10).

Every answer is ``{"retCode":0,"retMsg":"OK","result":{…},"retExtInfo":{},"time":ms}``; a
non-zero ``retCode`` is an error even on HTTP 200: ``10001`` a bad parameter (an unknown symbol
says "Not supported symbols"), ``10006`` too many visits, ``10016`` the venue's own trouble.
HTTP **403** is the IP limit ("access too frequent"): the IP is blocked for at least 10 minutes,
so it is ``BANNED`` with ``Retry-After`` when sent, else 600 s. 429 is "system level frequency
protection" (rate limited), 5xx the venue's trouble.

**Klines** come newest first and include the forming candle; both the ``start`` and the ``end``
candle are in the answer. What Bybit returns when more than ``limit`` candles lie in
``[start, end]`` is undocumented (ccxt#16551 saw the newest). So every request with a ``start``
also names the ``end`` of the ``limit``-th candle from ``start``: the window never holds more
rows than asked, and the answer is the same under either rule. Rows are returned ascending.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import INTERVAL_MS, MONTH_NAME, align, close_time, next_open
from candlekeeper.core.symbols import normalize_symbol
from candlekeeper.errors import ConfigError, DecodeError
from candlekeeper.venues.bybit import schemas
from candlekeeper.venues.bybit.endpoints import (
    BAN_S,
    CATEGORY,
    INSTRUMENTS_PAGE,
    INSTRUMENTS_PATH,
    INTERVAL_NAMES,
    KLINES_PATH,
    SERVER_TIME_PATH,
)
from candlekeeper.venues.bybit.stream import native_symbol
from candlekeeper.venues.contract import (
    NO_USAGE,
    RateUsage,
    RestErrorKind,
    RestFailure,
    RestRequest,
    VenueSpec,
    failure_for_status,
    klines_weight,
    retry_after_s,
)

#: body codes (BY-ERR)
PARAMS_ERROR: Final = 10001
TOO_MANY_VISITS: Final = 10006
SERVER_BUSY: Final = 10016
IP_LIMIT: Final = 10018
#: intervals of a fixed length (every one but the calendar month)
FIXED_MS: Final = {k: v for k, v in INTERVAL_MS.items() if k != MONTH_NAME}
#: requests left in the caller's window (UID limits; market endpoints may omit it)
LIMIT_STATUS_HEADER: Final = "X-Bapi-Limit-Status"


def candle_to_rest_row(c: Candle, turnover: str) -> list[str]:
    """``Candle`` -> one klines row ``[start, open, high, low, close, volume, turnover]``
    (used by the simulator)."""
    return [str(c.open_time), c.open_str, c.high_str, c.low_str, c.close_str, c.volume_str,
            turnover]


class _Envelope(msgspec.Struct):
    retCode: int | str = 0
    retMsg: str = ""


class BybitHistoryCodec:
    """History codec for ``bybit-linear`` and ``bybit-spot``."""

    def __init__(self, spec: VenueSpec) -> None:
        self.spec = spec
        self.venue = spec.id
        self.category = CATEGORY[spec.id]
        self._klines = msgspec.json.Decoder(schemas.KlinesResponse)
        self._instruments = msgspec.json.Decoder(schemas.InstrumentsResponse)
        self._time = msgspec.json.Decoder(schemas.TimeResponse)
        self._envelope = msgspec.json.Decoder(_Envelope)
        self._intervals = frozenset(spec.intervals)
        #: canonical symbol -> (price tick, quantity step) as the venue prints them, learnt
        #: from instruments-info: the exact decimals of every listed symbol
        self.precision: dict[str, tuple[str, str]] = {}

    def native_symbol(self, symbol: str) -> str:
        return native_symbol(symbol)

    # -- requests ---------------------------------------------------------------------------
    def klines_request(self, symbol: str, interval: str, *, start_time: int | None = None,
                       end_time: int | None = None, limit: int | None = None) -> RestRequest:
        if interval not in self._intervals:
            raise ConfigError(f"{self.venue} has no interval {interval!r}")
        limit = self.spec.rest_max_limit if limit is None else limit
        if not 1 <= limit <= self.spec.rest_max_limit:
            raise ConfigError(f"limit must be in [1, {self.spec.rest_max_limit}], got {limit}")
        params: dict[str, str | int] = {"category": self.category,
                                        "symbol": native_symbol(symbol),
                                        "interval": INTERVAL_NAMES[interval], "limit": limit}
        if start_time is not None:
            params["start"] = start_time
            last = _nth_open(start_time, interval, limit)
            end_time = last if end_time is None else min(end_time, last)
        if end_time is not None:
            params["end"] = end_time
        return RestRequest("GET", KLINES_PATH, params, klines_weight(self.spec, limit))

    def symbols_request(self) -> RestRequest:
        """One page of the largest size: Bybit lists ~600 linear and ~600 spot symbols
        (``nextPageCursor`` is followed by ccxt; spot "does not support pagination")."""
        params: dict[str, str | int] = {"category": self.category}
        if self.category != "spot":
            params["limit"] = INSTRUMENTS_PAGE
        return RestRequest("GET", INSTRUMENTS_PATH, params, 1)

    def server_time_request(self) -> RestRequest:
        return RestRequest("GET", SERVER_TIME_PATH, {}, 1)

    # -- answers ----------------------------------------------------------------------------
    def decode_klines(self, body: bytes, symbol: str, interval: str) -> list[Candle]:
        """Rows ascending and unique by open time, all ``closed=True``: the fetcher drops the
        forming one (Bybit's first row) by the clock."""
        try:
            resp = self._klines.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise DecodeError(f"{self.venue} klines body: {exc}: {body[:120]!r}") from exc
        if resp.retCode != 0:
            raise DecodeError(f"{self.venue} klines: retCode {resp.retCode}: "
                              f"{resp.retMsg[:200]}")
        if resp.result is None:
            return []
        venue, sym = self.venue, normalize_symbol(symbol)
        by_time: dict[int, list[str]] = {}
        for row in resp.result.rows:
            if len(row) < 6 or not row[0].isdigit() or len(row[0]) > 18:
                raise DecodeError(f"{self.venue} klines: bad row {str(row)[:120]}")
            by_time[int(row[0])] = row
        return [
            Candle(venue, sym, interval, t, close_time(t, interval), r[1], r[2], r[3], r[4],
                   r[5], r[6] if len(r) > 6 else None, None, None, None, None, None, True, None,
                   "rest")
            for t, r in sorted(by_time.items())
        ]

    def decode_symbols(self, body: bytes) -> list[str]:
        """Canonical symbols trading now: every ``Trading`` spot pair; on linear, the USDT
        perpetuals (``LinearPerpetual`` settled in USDT: not USDC perpetuals, not dated
        futures). Each symbol's tick and step are kept in :attr:`precision`."""
        try:
            resp = self._instruments.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise DecodeError(f"{self.venue} instruments body: {exc}: {body[:120]!r}") from exc
        if resp.retCode != 0:
            raise DecodeError(f"{self.venue} instruments: retCode {resp.retCode}: "
                              f"{resp.retMsg[:200]}")
        out: set[str] = set()
        for item in resp.result.items if resp.result is not None else ():
            if self.category != "spot" and (item.contractType != "LinearPerpetual"
                                            or item.settleCoin != "USDT"):
                continue
            try:
                canonical = normalize_symbol(item.symbol)
            except ConfigError:
                continue
            lot = item.lotSizeFilter
            step = lot.qtyStep or lot.basePrecision or ""
            self.precision[canonical] = (item.priceFilter.tickSize, step)
            if item.status == "Trading":
                out.add(canonical)
        return sorted(out)

    def decode_server_time(self, body: bytes) -> int:
        try:
            resp = self._time.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise DecodeError(f"{self.venue} server time body: {exc}: {body[:120]!r}") from exc
        if resp.retCode != 0:
            raise DecodeError(f"{self.venue} server time: retCode {resp.retCode}")
        if resp.result is not None and resp.result.timeNano.isdigit():
            return int(resp.result.timeNano) // 1_000_000
        if resp.time > 0:
            return resp.time
        raise DecodeError(f"{self.venue} server time without a time: {body[:120]!r}")

    def rate_usage(self, headers: Mapping[str, str]) -> RateUsage:
        value = headers.get(LIMIT_STATUS_HEADER)
        if value is not None and value.isdigit() and len(value) < 16:
            return RateUsage(remain=int(value))
        return NO_USAGE

    def classify(self, status: int, headers: Mapping[str, str], body: bytes,
                 now_s: float) -> RestFailure | None:
        code: int | None = None
        msg = ""
        if body[:1] == b"{":
            try:
                env = self._envelope.decode(body)
                raw = env.retCode
                code = int(raw) if isinstance(raw, int) or raw.lstrip("-").isdigit() else None
                msg = env.retMsg[:300]
            except (msgspec.DecodeError, ValueError):
                pass
        if status < 300 and not code:
            return None
        retry = retry_after_s(headers, now_s)
        detail = (f"retCode {code}: {msg or 'no message'}" if code is not None
                  else body[:200].decode("utf-8", "replace"))
        if status in (403, 418) or code == IP_LIMIT:
            return RestFailure(RestErrorKind.BANNED, f"IP rate limit breached, blocked "
                               f"(HTTP {status}, {detail})", code,
                               retry if retry is not None else BAN_S)
        if status == 429 or code == TOO_MANY_VISITS:
            return RestFailure(RestErrorKind.RATE_LIMITED, f"rate limited ({detail})", code,
                               retry)
        if code == SERVER_BUSY or status >= 500:
            return RestFailure(RestErrorKind.SERVER_ERROR, detail, code, retry)
        lowered = msg.lower()
        if "symbol" in lowered and ("not supported" in lowered or "invalid" in lowered
                                    or "not exist" in lowered):
            return RestFailure(RestErrorKind.UNKNOWN_SYMBOL, f"unknown symbol ({detail})", code)
        if status < 300:
            return RestFailure(RestErrorKind.BAD_REQUEST, detail, code)
        return failure_for_status(status, f"HTTP {status} ({detail})", code=code,
                                  retry_after=retry)


def _nth_open(start: int, interval: str, n: int) -> int:
    """Open time of the ``n``-th candle opening at or after ``start``."""
    t = align(start, interval)
    if t < start:
        t = next_open(t, interval)
    if interval in FIXED_MS:
        return t + (n - 1) * FIXED_MS[interval]
    for _ in range(n - 1):  # calendar months
        t = next_open(t, interval)
    return t
