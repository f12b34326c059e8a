"""Sans-I/O BingX perpetual swap REST codec (protocols.md §C.4).

Answers are ``{"code":0,"msg":"","data":...}``; a non-zero ``code`` is an error even on HTTP 200:
``100410`` rate limited (as an HTTP 429), ``100400``/``80014`` invalid parameter (an unknown
symbol says so in ``msg``: "symbol ... does not exist" — an inference, BingX documents no
dedicated code), ``80012``/``100500`` the venue's own trouble. HTTP 429 and 418 mean what they
mean on Binance. No ``Retry-After`` is documented; ``X-RateLimit-Requests-Expire`` (ms until the
10 s window ends) is the wait, and ``X-RateLimit-Requests-Remain`` the requests left in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import close_time
from candlekeeper.core.symbols import normalize_symbol
from candlekeeper.errors import ConfigError, DecodeError
from candlekeeper.venues.bingx import schemas
from candlekeeper.venues.bingx.endpoints import (
    CONTRACTS_PATH,
    EXPIRE_HEADER,
    KLINES_PATH,
    RATE_LIMITED_CODE,
    REMAIN_HEADER,
    SERVER_TIME_PATH,
)
from candlekeeper.venues.bingx.stream import describe_code, native_symbol
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

#: body codes that mean the venue's own trouble (retry with backoff)
SERVER_ERROR_CODES: Final = frozenset({80012, 100500})
#: ban length when a 418 says nothing: "restore after 5 minutes" (§C.4)
DEFAULT_BAN_S: Final = 300.0


def candle_to_rest_kline(c: Candle) -> schemas.RestKline:
    """``Candle`` -> one REST v3 klines row (used by the simulator)."""
    return schemas.RestKline(open=c.open_str, close=c.close_str, high=c.high_str,
                             low=c.low_str, volume=c.volume_str, time=c.open_time)


class _Envelope(msgspec.Struct):
    code: int = 0
    msg: str = ""


class _ServerTimeData(msgspec.Struct):
    serverTime: int


class _ServerTime(msgspec.Struct):
    code: int
    data: _ServerTimeData


class BingxHistoryCodec:
    """History codec for the BingX perpetual swap venue."""

    def __init__(self, spec: VenueSpec) -> None:
        self.spec = spec
        self.venue = spec.id
        self._klines = msgspec.json.Decoder(schemas.KlinesResponse)
        self._contracts = msgspec.json.Decoder(schemas.ContractsResponse)
        self._envelope = msgspec.json.Decoder(_Envelope)
        self._time = msgspec.json.Decoder(_ServerTime)
        self._intervals = frozenset(spec.intervals)
        #: canonical -> native, learnt from the contracts list (exact for odd listings)
        self._native: dict[str, str] = {}

    def native_symbol(self, symbol: str) -> str:
        """Any user form -> ``BTC-USDT``; exact for every contract the venue listed."""
        known = self._native.get(symbol)
        return known if known is not None else native_symbol(symbol)

    # -- requests ---------------------------------------------------------------------------
    def klines_request(self, symbol: str, interval: str, *, start_time: int | None = None,
                       end_time: int | None = None, limit: int | None = None) -> RestRequest:
        if interval not in self._intervals:
            raise ConfigError(f"{self.venue} has no interval {interval!r}")
        limit = self.spec.rest_max_limit if limit is None else limit
        if not 1 <= limit <= self.spec.rest_max_limit:
            raise ConfigError(f"limit must be in [1, {self.spec.rest_max_limit}], got {limit}")
        params: dict[str, str | int] = {"symbol": self.native_symbol(symbol),
                                        "interval": interval, "limit": limit}
        if start_time is not None:
            params["startTime"] = start_time
        if end_time is not None:
            params["endTime"] = end_time
        return RestRequest("GET", KLINES_PATH, params, klines_weight(self.spec, limit))

    def symbols_request(self) -> RestRequest:
        return RestRequest("GET", CONTRACTS_PATH, {}, 1)

    def server_time_request(self) -> RestRequest:
        return RestRequest("GET", SERVER_TIME_PATH, {}, 1)

    # -- answers ----------------------------------------------------------------------------
    def decode_klines(self, body: bytes, symbol: str, interval: str) -> list[Candle]:
        """Rows sorted by open time (BingX does not document the order), one per open time,
        all ``closed=True``: the fetcher drops the forming one by the clock."""
        try:
            resp = self._klines.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise DecodeError(f"{self.venue} klines body: {exc}: {body[:120]!r}") from exc
        if resp.code != 0:
            raise DecodeError(f"{self.venue} klines: code {resp.code}: "
                              f"{describe_code(resp.code, resp.msg)}")
        rows = resp.data
        if rows is None:
            return []
        if isinstance(rows, schemas.RestKline):
            rows = [rows]  # the v2 "latest candle" quirk
        venue, sym = self.venue, normalize_symbol(symbol)
        by_time = {r.time: r for r in rows}
        return [
            Candle(venue, sym, interval, t, close_time(t, interval), r.open, r.high, r.low,
                   r.close, r.volume, None, None, None, None, None, None, True, None, "rest")
            for t, r in sorted(by_time.items())
        ]

    def decode_symbols(self, body: bytes) -> list[str]:
        """Canonical symbols of the contracts currently trading (``status == 1``). Their native
        forms are remembered, so ``native_symbol`` is exact for every listed contract."""
        try:
            resp = self._contracts.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise DecodeError(f"{self.venue} contracts body: {exc}: {body[:120]!r}") from exc
        if resp.code != 0:
            raise DecodeError(f"{self.venue} contracts: code {resp.code}: "
                              f"{describe_code(resp.code, resp.msg)}")
        out: set[str] = set()
        for c in resp.data or ():
            try:
                canonical = normalize_symbol(c.symbol)
            except ConfigError:
                continue
            self._native[canonical] = c.symbol.upper()
            if c.status == 1:
                out.add(canonical)
        return sorted(out)

    def decode_server_time(self, body: bytes) -> int:
        try:
            resp = self._time.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise DecodeError(f"{self.venue} server time body: {exc}: {body[:120]!r}") from exc
        if resp.code != 0:
            raise DecodeError(f"{self.venue} server time: code {resp.code}")
        return resp.data.serverTime

    def rate_usage(self, headers: Mapping[str, str]) -> RateUsage:
        remain = _digits(headers.get(REMAIN_HEADER))
        expire = _digits(headers.get(EXPIRE_HEADER))
        reset_s = None
        if expire is not None:
            # milliseconds to go (``10000`` as BingX sends), or an epoch time in ms if that large
            reset_s = expire / 1000 if expire < 10**12 else None
        return RateUsage(remain=remain, reset_s=reset_s)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes,
                 now_s: float) -> RestFailure | None:
        code: int | None = None
        msg = ""
        if body[:1] == b"{":
            try:
                env = self._envelope.decode(body)
                code, msg = env.code, env.msg
            except (msgspec.DecodeError, ValueError):
                pass
        if status < 300 and not code:
            return None
        retry = retry_after_s(headers, now_s)
        if retry is None:
            retry = self.rate_usage(headers).reset_s
        detail = (f"code {code}: {describe_code(code, msg)}" if code is not None
                  else body[:200].decode("utf-8", "replace"))
        if status == 418:
            return RestFailure(RestErrorKind.BANNED, f"IP banned ({detail})", code,
                               retry_after_s(headers, now_s) or DEFAULT_BAN_S)
        if status == 429 or code == RATE_LIMITED_CODE:
            return RestFailure(RestErrorKind.RATE_LIMITED, f"rate limited ({detail})", code,
                               retry)
        if code in SERVER_ERROR_CODES:
            return RestFailure(RestErrorKind.SERVER_ERROR, detail, code, retry)
        lowered = msg.lower()
        if "symbol" in lowered and ("not exist" in lowered or "invalid" in lowered):
            return RestFailure(RestErrorKind.UNKNOWN_SYMBOL, f"unknown symbol ({detail})", code)
        if status < 300:
            return RestFailure(RestErrorKind.BAD_REQUEST, detail, code)
        return failure_for_status(status, f"HTTP {status} ({detail})", code=code,
                                  retry_after=retry)


def _digits(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() and len(value) < 16 else None
