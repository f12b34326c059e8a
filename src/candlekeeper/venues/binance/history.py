"""Sans-I/O Binance REST codec (klines, exchangeInfo, server time, errors), USDⓈ-M and spot.

Error answers (errors.md, protocols.md §A.6, §B.5): ``429`` rate limited with ``Retry-After``;
``418`` IP banned, ``Retry-After`` or "banned until <ms>" in the message; ``400`` with code
``-1121`` is an unknown symbol, other 4xx a request that cannot succeed (``403`` is the WAF);
5xx the venue's own trouble. Every answer carries ``X-MBX-USED-WEIGHT-1M``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.errors import ConfigError, DecodeError
from candlekeeper.venues.binance import schemas
from candlekeeper.venues.binance.endpoints import (
    INVALID_SYMBOL,
    REST_PATHS,
    USED_WEIGHT_HEADER,
)
from candlekeeper.venues.binance.stream import native_symbol
from candlekeeper.venues.contract import (
    RateUsage,
    RestErrorKind,
    RestFailure,
    RestRequest,
    VenueSpec,
    failure_for_status,
    klines_weight,
    retry_after_s,
)

_BANNED_UNTIL: Final = re.compile(r"banned until (\d{10,16})")
#: a ban without Retry-After or a "banned until" time: Binance's shortest ban (§A.6)
DEFAULT_BAN_S: Final = 120.0


class _ErrorBody(msgspec.Struct):
    code: int = 0
    msg: str = ""


class _ServerTime(msgspec.Struct):
    serverTime: int


class BinanceHistoryCodec:
    """History codec for one Binance venue."""

    def __init__(self, spec: VenueSpec) -> None:
        self.spec = spec
        self.venue = spec.id
        self.paths = REST_PATHS[spec.id]
        self._rows = msgspec.json.Decoder(list[schemas.RestKlineRow])
        self._info = msgspec.json.Decoder(schemas.ExchangeInfo)
        self._time = msgspec.json.Decoder(_ServerTime)
        self._error = msgspec.json.Decoder(_ErrorBody)
        self._intervals = frozenset(spec.intervals)

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
        params: dict[str, str | int] = {"symbol": native_symbol(symbol), "interval": interval,
                                        "limit": limit}
        if start_time is not None:
            params["startTime"] = start_time
        if end_time is not None:
            params["endTime"] = end_time
        return RestRequest("GET", self.paths.klines, params, klines_weight(self.spec, limit))

    def symbols_request(self) -> RestRequest:
        return RestRequest("GET", self.paths.exchange_info, {}, self.paths.exchange_info_weight)

    def server_time_request(self) -> RestRequest:
        return RestRequest("GET", self.paths.time, {}, 1)

    # -- answers ----------------------------------------------------------------------------
    def decode_klines(self, body: bytes, symbol: str, interval: str) -> list[Candle]:
        """12-element rows, oldest first; every row is final except possibly the last (the
        forming candle), which the fetcher drops by the clock."""
        try:
            rows = self._rows.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise DecodeError(f"{self.venue} klines body: {exc}: {body[:120]!r}") from exc
        venue, sym = self.venue, native_symbol(symbol)
        by_time = {r[0]: r for r in rows}
        return [
            Candle(venue, sym, interval, t, r[6], r[1], r[2], r[3], r[4], r[5], r[7], r[8],
                   r[9], r[10], None, None, True, None, "rest")
            for t, r in sorted(by_time.items())
        ]

    def decode_symbols(self, body: bytes) -> list[str]:
        """Symbols currently trading (perpetuals only on USDⓈ-M)."""
        try:
            info = self._info.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise DecodeError(f"{self.venue} exchangeInfo body: {exc}") from exc
        return sorted(
            s.symbol for s in info.symbols
            if s.status == "TRADING" and s.contractType in (None, "PERPETUAL")
        )

    def decode_server_time(self, body: bytes) -> int:
        try:
            return self._time.decode(body).serverTime
        except (msgspec.DecodeError, ValueError) as exc:
            raise DecodeError(f"{self.venue} time body: {exc}: {body[:120]!r}") from exc

    def rate_usage(self, headers: Mapping[str, str]) -> RateUsage:
        used = headers.get(USED_WEIGHT_HEADER)
        if used is not None and used.isdigit() and len(used) < 12:
            return RateUsage(used=int(used))
        return RateUsage()

    def classify(self, status: int, headers: Mapping[str, str], body: bytes,
                 now_s: float) -> RestFailure | None:
        if status < 300:
            return None
        try:
            err = self._error.decode(body)
            detail, code = f"code {err.code}: {err.msg[:300]}", err.code
        except (msgspec.DecodeError, ValueError):
            detail, code = body[:200].decode("utf-8", "replace"), None
        retry = retry_after_s(headers, now_s)
        if status == 418:
            if retry is None:
                match = _BANNED_UNTIL.search(detail)
                retry = (max(0.0, int(match.group(1)) / 1000 - now_s) if match
                         else DEFAULT_BAN_S)
            return RestFailure(RestErrorKind.BANNED, f"IP banned ({detail})", code, retry)
        if status == 429:
            return RestFailure(RestErrorKind.RATE_LIMITED, f"rate limited ({detail})", code,
                               retry)
        if code == INVALID_SYMBOL:
            return RestFailure(RestErrorKind.UNKNOWN_SYMBOL, f"unknown symbol ({detail})", code)
        return failure_for_status(status, f"HTTP {status} ({detail})", code=code,
                                  retry_after=retry)
