"""Sans-I/O Hyperliquid REST codec: ``POST /info`` (§F.7-§F.10).

**Candles**: ``{"type":"candleSnapshot","req":{"coin","interval","startTime","endTime"}}``;
all four fields are required (the SDK). The answer is an ascending array of
``{"t","T","s","i","o","c","h","l","v","n"}`` and includes the candles overlapping *both* ends
of the window (the 2023 cassette), and the forming candle. A request names the ``end`` of the
``limit``-th candle from ``start`` so the window never holds more rows than asked (the 500-row
cap, if it applies to candles, is then never hit). Only the **most recent 5,000 candles** of a
coin and interval exist (``VenueSpec.rest_history_candles``): the fetcher does not ask for
older ones and the gap filler reports them unfillable.

**Symbols**: ``{"type":"meta"}``; the universe's ``name`` is the coin, ``szDecimals`` its size
decimals; the price decimals follow the venue's rule, at most ``6 - szDecimals`` places and 5
significant figures (§F.8) — kept in :attr:`HyperliquidHistoryCodec.precision`. Delisted coins
are not listed.

**Server time**: none is documented; ccxt reads ``time`` of ``{"type":"exchangeStatus"}``.

**Errors** (§F.10): HTTP 429 is the rate limit (its status is undocumented; every third-party
client assumes 429), a malformed body is HTTP 422 with a plain-text reason, and an error on an
HTTP 200 is ``{"status":"err","response":"<text>"}`` — an unknown coin reads "Unknown coin"
(the simulator's wording: the real answer for ``candleSnapshot`` was not found, §F.10).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import (
    INTERVAL_MS,
    MONTH_NAME,
    align,
    close_time,
    next_open,
    prev_open,
)
from candlekeeper.errors import ConfigError, DecodeError
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
from candlekeeper.venues.hyperliquid import schemas, symbols
from candlekeeper.venues.hyperliquid.endpoints import (
    CANDLE_SNAPSHOT,
    EXCHANGE_STATUS,
    INFO_PATH,
    INFO_WEIGHT,
    LIGHT_WEIGHT,
    META,
)

#: intervals of a fixed length (every one but the calendar month)
FIXED_MS: Final = {k: v for k, v in INTERVAL_MS.items() if k != MONTH_NAME}
#: ``MAX_DECIMALS`` of the price rule for perpetuals (§F.8)
PERP_MAX_DECIMALS: Final = 6
#: the latest endTime we ever send (year 2286): "up to now"
FAR_END_MS: Final = 9_999_999_999_999

_encoder = msgspec.json.Encoder()


def price_decimals(sz_decimals: int) -> int:
    """The most decimal places a perpetual's price may have: ``6 - szDecimals`` (§F.8)."""
    return max(0, PERP_MAX_DECIMALS - sz_decimals)


def info_body(request: schemas.InfoRequest) -> bytes:
    return _encoder.encode(request)


def candle_to_row(c: Candle, coin: str, trades: int) -> schemas.Candle:
    """``Candle`` -> a candleSnapshot row (used by the simulator)."""
    return schemas.Candle(t=c.open_time, T=c.close_time, s=coin, i=c.interval, o=c.open_str,
                          c=c.close_str, h=c.high_str, l=c.low_str, v=c.volume_str, n=trades)


class HyperliquidHistoryCodec:
    """History codec for ``hyperliquid-perp``."""

    def __init__(self, spec: VenueSpec) -> None:
        self.spec = spec
        self.venue = spec.id
        self._rows = msgspec.json.Decoder(list[schemas.Candle])
        self._meta = msgspec.json.Decoder(schemas.Meta)
        self._status = msgspec.json.Decoder(schemas.ExchangeStatus)
        self._error = msgspec.json.Decoder(schemas.ActionError)
        self._intervals = frozenset(spec.intervals)
        #: canonical symbol -> (price decimals, size decimals), from the last meta answer
        self.precision: dict[str, tuple[int, int]] = {}

    def native_symbol(self, symbol: str) -> str:
        return symbols.native(symbol)

    # -- requests ---------------------------------------------------------------------------
    def klines_request(self, symbol: str, interval: str, *, start_time: int | None = None,
                       end_time: int | None = None, limit: int | None = None) -> RestRequest:
        if interval not in self._intervals:
            raise ConfigError(f"{self.venue} has no interval {interval!r}")
        limit = self.spec.rest_max_limit if limit is None else limit
        if not 1 <= limit <= self.spec.rest_max_limit:
            raise ConfigError(f"limit must be in [1, {self.spec.rest_max_limit}], got {limit}")
        if start_time is None:
            # no start: the window's last ``limit`` candles (or, with no end either, the
            # oldest ``limit`` the venue still has: it answers from the start of its memory)
            start = 0 if end_time is None else _nth_open_back(end_time, interval, limit)
            end = FAR_END_MS if end_time is None else end_time
        else:
            start = start_time
            last = _nth_open(start_time, interval, limit)
            end = last if end_time is None else min(end_time, last)
        req = schemas.CandleSnapshotReq(coin=symbols.native(symbol), interval=interval,
                                        startTime=start, endTime=end)
        body = info_body(schemas.InfoRequest(type=CANDLE_SNAPSHOT, req=req))
        return RestRequest("POST", INFO_PATH, {}, klines_weight(self.spec, limit), body)

    def symbols_request(self) -> RestRequest:
        return RestRequest("POST", INFO_PATH, {}, INFO_WEIGHT,
                           info_body(schemas.InfoRequest(type=META)))

    def server_time_request(self) -> RestRequest:
        return RestRequest("POST", INFO_PATH, {}, LIGHT_WEIGHT,
                           info_body(schemas.InfoRequest(type=EXCHANGE_STATUS)))

    # -- answers ----------------------------------------------------------------------------
    def decode_klines(self, body: bytes, symbol: str, interval: str) -> list[Candle]:
        """Rows ascending and unique by open time, all ``closed=True``: the fetcher drops the
        forming one by the clock."""
        try:
            rows = self._rows.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise DecodeError(f"{self.venue} candleSnapshot body: {exc}: {body[:120]!r}") \
                from exc
        venue, sym = self.venue, symbols.canonical(symbol)
        by_time: dict[int, Candle] = {}
        for r in rows:
            if r.i != interval or symbols.of_coin(r.s) != sym:
                raise DecodeError(f"{self.venue} candleSnapshot: a {r.s[:40]!r} {r.i[:10]!r} "
                                  f"row in an answer for {sym} {interval}")
            if r.t < 0 or r.t > FAR_END_MS:
                raise DecodeError(f"{self.venue} candleSnapshot: bad open time {r.t}")
            if r.n < 0:
                raise DecodeError(f"{self.venue} candleSnapshot: a negative trade count {r.n}")
            by_time[r.t] = Candle(venue, sym, interval, r.t, close_time(r.t, interval), r.o,
                                  r.h, r.l, r.c, r.v, None, r.n, None, None, None, None, True,
                                  None, "rest")
        return [by_time[t] for t in sorted(by_time)]

    def decode_symbols(self, body: bytes) -> list[str]:
        """Canonical coins of the perpetuals listed now (``isDelisted`` ones are not)."""
        try:
            meta = self._meta.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise DecodeError(f"{self.venue} meta body: {exc}: {body[:120]!r}") from exc
        out: set[str] = set()
        for asset in meta.universe:
            symbol = symbols.of_coin(asset.name)
            if symbol is None:
                continue
            symbols.learn(asset.name)
            self.precision[symbol] = (price_decimals(asset.szDecimals), asset.szDecimals)
            if not asset.isDelisted:
                out.add(symbol)
        return sorted(out)

    def decode_server_time(self, body: bytes) -> int:
        try:
            status = self._status.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise DecodeError(f"{self.venue} exchangeStatus body: {exc}: {body[:120]!r}") \
                from exc
        t = status.time
        if isinstance(t, str):
            if not (t.isascii() and t.isdigit() and len(t) <= 15):
                raise DecodeError(f"{self.venue} exchangeStatus: bad time {t[:40]!r}")
            t = int(t)
        if not 0 < t < FAR_END_MS:
            raise DecodeError(f"{self.venue} exchangeStatus: bad time {t}")
        return t

    def rate_usage(self, headers: Mapping[str, str]) -> RateUsage:
        return NO_USAGE  # Hyperliquid sends no rate-limit headers

    def classify(self, status: int, headers: Mapping[str, str], body: bytes,
                 now_s: float) -> RestFailure | None:
        text = ""
        if body[:1] == b"{":
            try:
                err = self._error.decode(body)
                if err.status == "err":
                    text = str(err.response)[:300] or "error without a message"
            except (msgspec.DecodeError, ValueError):
                pass
        if status < 300 and not text:
            return None
        retry = retry_after_s(headers, now_s)
        detail = text or body[:200].decode("utf-8", "replace").strip() or "no body"
        if status == 429:
            return RestFailure(RestErrorKind.RATE_LIMITED, f"rate limited ({detail})", None,
                               retry)
        lowered = text.lower()
        if "coin" in lowered and ("unknown" in lowered or "not found" in lowered):
            return RestFailure(RestErrorKind.UNKNOWN_SYMBOL, f"unknown coin ({detail})")
        if status < 300:
            return RestFailure(RestErrorKind.BAD_REQUEST, detail)
        return failure_for_status(status, f"HTTP {status} ({detail})", retry_after=retry)


def _nth_open(start: int, interval: str, n: int) -> int:
    """Open time of the ``n``-th candle from the one containing ``start`` (Hyperliquid
    answers that one too)."""
    t = align(start, interval)
    if interval in FIXED_MS:
        return t + (n - 1) * FIXED_MS[interval]
    for _ in range(n - 1):  # calendar months
        t = next_open(t, interval)
    return t


def _nth_open_back(end: int, interval: str, n: int) -> int:
    """Open time of the ``n``-th candle counted back from the one containing ``end``."""
    t = align(end, interval)
    if interval in FIXED_MS:
        return max(0, t - (n - 1) * FIXED_MS[interval])
    for _ in range(n - 1):
        t = prev_open(t, interval)
    return max(0, t)
