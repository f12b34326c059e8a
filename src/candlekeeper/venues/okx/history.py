"""Sans-I/O OKX v5 REST codec: candles, instruments, server time, error classification
(protocols-more-venues.md §E.7-E.10).

**Which endpoint.** ``market/candles`` serves only the latest 1,440 rows but at 40 requests
per 2 s; ``market/history-candles`` serves years at 20 per 2 s. The codec has no clock, so it
learns where "now" is from the answers it decodes (the newest row of every candles answer, the
server time) and asks ``candles`` only for pages that start within :data:`RECENT_ROWS` rows of
it, ``history-candles`` for everything else, and for everything until it has learnt a time.
A page sent to ``candles`` is therefore always inside its 1,440 rows unless the learnt time is
more than ~1,380 candles stale, and an unknown time costs speed, never data.

**Cursors** are exclusive: ``after=T`` returns rows older than ``T``, ``before=T`` rows newer
than ``T`` (§E.7), so ``[start, end]`` becomes ``before=start-1&after=end+1``; the venue then
answers the newest ``limit`` rows of that range, newest first.

**Rows** are newest first and include the forming candle with ``confirm`` "0" (§E.7). Decoded
rows are ascending and unique; a row the venue marks final (``confirm`` "1") is ``closed=True``,
the forming one ``closed=False``: the fetcher never stores a row the venue says is not final,
whatever the clock says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import INTERVAL_MS
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
from candlekeeper.venues.okx import schemas
from candlekeeper.venues.okx.endpoints import (
    BARS,
    CANDLES_PATH,
    HISTORY_CANDLES_PATH,
    INST_TYPE,
    INSTRUMENTS_PATH,
    RATE_LIMITED_CODE,
    SERVER_TIME_PATH,
    UNKNOWN_INSTRUMENT_CODE,
)
from candlekeeper.venues.okx.stream import inst_id, row_problem, row_to_candle, symbol_of_inst

#: a page starting within this many rows of the newest known candle goes to ``market/candles``
RECENT_ROWS: Final = 60
#: body codes that mean the venue's own trouble (retry with backoff): service unavailable,
#: endpoint timeout, system busy, system error (OKX error table)
SERVER_ERROR_CODES: Final = frozenset({"50001", "50004", "50013", "50026"})
#: the settlement currency of the swaps this venue lists (USDT-margined perpetuals)
SWAP_SETTLE: Final = "USDT"


class Precision(msgspec.Struct, frozen=True):
    """An instrument's price tick and size lot, as the venue's decimal text."""

    tick_size: str
    lot_size: str


class OkxHistoryCodec:
    """History codec of one OKX venue (``okx-swap`` or ``okx-spot``)."""

    def __init__(self, spec: VenueSpec) -> None:
        self.spec = spec
        self.venue = spec.id
        self._candles = msgspec.json.Decoder(schemas.CandlesResponse)
        self._instruments = msgspec.json.Decoder(schemas.InstrumentsResponse)
        self._time = msgspec.json.Decoder(schemas.TimeResponse)
        self._error = msgspec.json.Decoder(schemas.ErrorBody)
        self._intervals = frozenset(spec.intervals)
        #: the newest venue time (ms) seen in an answer; 0 until one was decoded
        self.latest_ms = 0
        #: tick and lot size of every instrument of the last symbols answer
        self.precision: dict[str, Precision] = {}

    def native_symbol(self, symbol: str) -> str:
        return inst_id(self.venue, symbol)

    # -- requests ---------------------------------------------------------------------------
    def path_for(self, interval: str, start_time: int | None) -> str:
        """``market/candles`` for a page near the newest known candle, else ``history-``."""
        if start_time is None:
            return CANDLES_PATH
        if self.latest_ms and start_time >= self.latest_ms - RECENT_ROWS * INTERVAL_MS[interval]:
            return CANDLES_PATH
        return HISTORY_CANDLES_PATH

    def klines_request(self, symbol: str, interval: str, *, start_time: int | None = None,
                       end_time: int | None = None, limit: int | None = None) -> RestRequest:
        if interval not in self._intervals:
            raise ConfigError(f"{self.venue} has no interval {interval!r}")
        limit = self.spec.rest_max_limit if limit is None else limit
        if not 1 <= limit <= self.spec.rest_max_limit:
            raise ConfigError(f"limit must be in [1, {self.spec.rest_max_limit}], got {limit}")
        params: dict[str, str | int] = {"instId": self.native_symbol(symbol),
                                        "bar": BARS[interval], "limit": limit}
        if end_time is not None:
            params["after"] = end_time + 1  # exclusive: rows with ts <= end_time
        if start_time is not None:
            params["before"] = max(start_time - 1, 0)  # exclusive: rows with ts >= start_time
        return RestRequest("GET", self.path_for(interval, start_time), params,
                           klines_weight(self.spec, limit))

    def symbols_request(self) -> RestRequest:
        return RestRequest("GET", INSTRUMENTS_PATH, {"instType": INST_TYPE[self.venue]}, 1)

    def server_time_request(self) -> RestRequest:
        return RestRequest("GET", SERVER_TIME_PATH, {}, 1)

    # -- answers ----------------------------------------------------------------------------
    def decode_klines(self, body: bytes, symbol: str, interval: str) -> list[Candle]:
        try:
            resp = self._candles.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise DecodeError(f"{self.venue} candles body: {exc}: {body[:120]!r}") from exc
        if resp.code != "0":
            raise DecodeError(f"{self.venue} candles: code {resp.code[:20]}: {resp.msg[:200]}")
        sym = symbol_of_inst(self.venue, inst_id(self.venue, symbol))
        if sym is None:
            raise DecodeError(f"{self.venue}: bad symbol {symbol!r}")
        by_time: dict[int, Candle] = {}
        for row in resp.data:
            problem = row_problem(row)
            if problem is not None:
                raise DecodeError(f"{self.venue} candles: {problem}: {str(row)[:120]}")
            c = row_to_candle(self.venue, sym, interval, row, "rest")
            by_time.setdefault(c.open_time, c)
        if by_time:
            self.latest_ms = max(self.latest_ms, max(by_time))
        return [by_time[t] for t in sorted(by_time)]

    def decode_symbols(self, body: bytes) -> list[str]:
        """Canonical symbols of the live instruments: spot pairs, or USDT-settled linear
        swaps. Their tick and lot sizes are kept in :attr:`precision`."""
        try:
            resp = self._instruments.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise DecodeError(f"{self.venue} instruments body: {exc}: {body[:120]!r}") from exc
        if resp.code != "0":
            raise DecodeError(f"{self.venue} instruments: code {resp.code[:20]}: "
                              f"{resp.msg[:200]}")
        want = INST_TYPE[self.venue]
        out: set[str] = set()
        for inst in resp.data:
            if inst.instType != want or inst.state != "live":
                continue
            if want == "SWAP" and (inst.settleCcy != SWAP_SETTLE or inst.ctType == "inverse"):
                continue
            symbol = symbol_of_inst(self.venue, inst.instId)
            if symbol is None:
                continue
            out.add(symbol)
            self.precision[symbol] = Precision(inst.tickSz, inst.lotSz)
        return sorted(out)

    def decode_server_time(self, body: bytes) -> int:
        try:
            resp = self._time.decode(body)
            ts = resp.data[0].ts
        except (msgspec.DecodeError, ValueError, IndexError) as exc:
            raise DecodeError(f"{self.venue} server time body: {exc}: {body[:120]!r}") from exc
        if resp.code != "0" or not ts.isascii() or not ts.isdigit() or len(ts) > 15:
            raise DecodeError(f"{self.venue} server time: {body[:120]!r}")
        now = int(ts)
        self.latest_ms = max(self.latest_ms, now)
        return now

    def rate_usage(self, headers: Mapping[str, str]) -> RateUsage:
        return NO_USAGE  # OKX sends no rate-limit headers (§E.10)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes,
                 now_s: float) -> RestFailure | None:
        code: str | None = None
        msg = ""
        if body[:1] == b"{":
            try:
                env = self._error.decode(body)
                code, msg = str(env.code)[:20], env.msg[:300]
            except (msgspec.DecodeError, ValueError):
                pass
        if status < 300 and code == "0":
            return None
        number = int(code) if code is not None and code.isdigit() and len(code) < 10 else None
        retry = retry_after_s(headers, now_s)
        detail = (f"code {code}: {msg}" if code is not None
                  else body[:200].decode("utf-8", "replace"))
        if status == 418:
            return RestFailure(RestErrorKind.BANNED, f"IP banned ({detail})", number, retry)
        if status == 429 or code == RATE_LIMITED_CODE:
            return RestFailure(RestErrorKind.RATE_LIMITED, f"rate limited ({detail})", number,
                               retry)
        if code == UNKNOWN_INSTRUMENT_CODE:
            return RestFailure(RestErrorKind.UNKNOWN_SYMBOL, f"unknown instrument ({detail})",
                               number)
        if code in SERVER_ERROR_CODES:
            return RestFailure(RestErrorKind.SERVER_ERROR, detail, number, retry)
        if status < 300:
            if code is None:
                return RestFailure(RestErrorKind.BAD_REQUEST, f"not an OKX answer: {detail}")
            return RestFailure(RestErrorKind.BAD_REQUEST, detail, number)
        return failure_for_status(status, f"HTTP {status} ({detail})", code=number,
                                  retry_after=retry)
