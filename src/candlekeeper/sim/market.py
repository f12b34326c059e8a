"""Pure, clock-driven market state of one simulated venue.

``Market`` answers three questions for any (symbol, interval), given a venue time ``now``:
the final candle opening at ``t`` (:meth:`bar`), the forming candle (:meth:`forming`) and a REST
klines page (:meth:`klines`). It owns no clock and no task: the server asks it with the
``ScaledClock``'s current time, tests ask it with any time they like. Results are deterministic
per seed.

Each symbol is backed (``sim.sources``) either by a :class:`~candlekeeper.sim.walk.WalkGenerator`
(generated top-down from the coarsest configured interval) or by a replayed real series
(aggregated bottom-up from the series' own interval, whose values are served verbatim).
Intervals finer than a replayed series cannot be served; asking for them is an invalid stream,
as is any interval not configured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import (
    INTERVAL_MS,
    MONTH_NAME,
    align,
    next_open,
    open_times,
    prev_open,
)
from candlekeeper.errors import ConfigError
from candlekeeper.sim.candles import aggregate, empty, partial
from candlekeeper.sim.profiles import SymbolProfile, profile_for
from candlekeeper.sim.replay import ReplaySeries
from candlekeeper.sim.sources import (
    Caches,
    ReplaySource,
    Source,
    WalkSource,
    nests,
    order,
)

__all__ = ["Market", "nests"]

_EPOCH_FLOOR = 1_483_228_800_000  # 2017-01-01: no venue history before this


#: the optional candle fields (beyond OHLCV) a venue may or may not publish
_EXTRAS: Final = ("quote_volume_str", "trades", "taker_buy_base_volume_str",
                  "taker_buy_quote_volume_str", "first_trade_id", "last_trade_id")


class Market:
    """The market of one venue. ``pad``: print every decimal with exactly that many places (a
    venue that pads its numbers). ``published_extras`` (the fields beyond OHLCV a venue
    publishes; None: all) drops what the venue never publishes — trade counts, quote and taker
    volumes, trade ids — from every candle it hands out, so the truth equals what a client can
    know. ``precision``: the venue's own
    (price, quantity) decimals per symbol, overriding the shared profiles. ``profiles``: a
    symbol's market parameters in place of the shared table's (``sim.universe``)."""

    def __init__(self, venue: str, symbols: Sequence[str], intervals: Sequence[str], *,
                 seed: int = 1, start_ms: int, history: int = 1000,
                 replay: Sequence[ReplaySeries] = (), pad: int | None = None,
                 allowed_intervals: Sequence[str] | None = None,
                 published_extras: tuple[str, ...] | None = None,
                 precision: Mapping[str, tuple[int, int]] | None = None,
                 rest_lag_ms: int = 0,
                 profiles: Mapping[str, SymbolProfile] | None = None) -> None:
        if not intervals:
            raise ConfigError("the simulator needs at least one interval")
        allowed = set(allowed_intervals or INTERVAL_MS)
        for iv in intervals:
            if iv not in allowed:
                raise ConfigError(f"{venue} has no interval {iv!r}")
        chain = order(intervals)
        for iv in chain[1:]:
            if not nests(chain[0], iv):
                raise ConfigError(f"interval {iv} is not a whole number of {chain[0]} candles; "
                                  "the simulator derives every interval from the finest one")
        self.venue, self.intervals, self.start_ms, self.history = venue, chain, start_ms, history
        self.pad = pad
        #: the optional fields this venue never publishes, set to None on every candle
        self._unpublished: dict[str, None] = {} if published_extras is None else {
            f: None for f in _EXTRAS if f not in published_extras}
        #: a venue publishing a quote volume for every candle, where a replayed series has none:
        #: the truth gets volume x close, as the wire does
        self._fill_quote = published_extras is not None and "quote_volume_str" in published_extras
        #: REST answers as the market stood this long before (venue ms): a candle shows its
        #: final values over REST only ``rest_lag_ms`` after its close
        self.rest_lag_ms = rest_lag_ms
        self.precision = dict(precision or {})
        #: per-symbol market parameters replacing the shared table (a universe's activity)
        self.profiles = dict(profiles or {})
        self._sources: dict[str, Source] = {}
        self._listing: dict[tuple[str, str], int] = {}
        caches = Caches()
        for series in replay:
            own = (series.interval, *(iv for iv in chain if INTERVAL_MS[iv] > INTERVAL_MS[
                series.interval] and nests(series.interval, iv)))
            self._sources[series.symbol] = ReplaySource(venue, series, own, pad, caches)
        for sym in symbols:
            if sym not in self._sources:
                self._sources[sym] = WalkSource(venue, self.profile(sym), chain, pad, seed,
                                                 caches)

    # -- catalogue --------------------------------------------------------------------------
    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._sources)

    def profile(self, symbol: str) -> SymbolProfile:
        """The symbol's market parameters on this venue (its own decimals where known)."""
        given = self.profiles.get(symbol)
        if given is None:
            return profile_for(symbol, self.precision)
        own = self.precision.get(symbol)
        if own is None:
            return given
        return msgspec.structs.replace(given, price_decimals=own[0], qty_decimals=own[1])

    def has_stream(self, symbol: str, interval: str) -> bool:
        src = self._sources.get(symbol)
        return src is not None and interval in src.chain and interval in self.intervals

    def intervals_of(self, symbol: str) -> tuple[str, ...]:
        src = self._sources[symbol]
        return tuple(iv for iv in src.chain if iv in self.intervals)

    def listing_time(self, symbol: str, interval: str) -> int:
        """Open time of the first candle REST can serve (``history`` candles before start)."""
        key = (symbol, interval)
        got = self._listing.get(key)
        if got is None:
            got = self._listing[key] = self._listing_time(symbol, interval)
        return got

    def _listing_time(self, symbol: str, interval: str) -> int:
        src = self._sources[symbol]
        if isinstance(src, ReplaySource):
            return src.first_open(interval, src.series.first_open)
        t = align(self.start_ms, interval)
        if interval == MONTH_NAME:
            day = datetime.fromtimestamp(t / 1000, UTC)
            months = day.year * 12 + day.month - 1 - self.history
            if months < 12:
                return align(_EPOCH_FLOOR, interval)
            t = int(datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC).timestamp()) * 1000
        else:
            t -= self.history * INTERVAL_MS[interval]
        return max(t, align(_EPOCH_FLOOR, interval))

    # -- candles ----------------------------------------------------------------------------
    def bar(self, symbol: str, interval: str, open_time: int) -> Candle | None:
        """The final candle opening at ``open_time``; ``None`` outside the data."""
        if not self.has_stream(symbol, interval):
            return None
        src = self._sources[symbol]
        if open_time < self.listing_time(symbol, interval):
            return None
        return self._out(src.bar(interval, open_time))

    def _out(self, c: Candle | None) -> Candle | None:
        if c is None:
            return None
        if self._fill_quote and c.quote_volume_str is None:
            c = msgspec.structs.replace(c, quote_volume_str=format(
                Decimal(c.volume_str) * Decimal(c.close_str), "f"))
        return msgspec.structs.replace(c, **self._unpublished) if self._unpublished else c

    def forming(self, symbol: str, interval: str, now_ms: int) -> Candle | None:
        """The candle containing ``now_ms`` as it stands then; ``None`` before its first trade."""
        if not self.has_stream(symbol, interval):
            return None
        return self._out(self._forming(self._sources[symbol], interval, align(now_ms, interval),
                                       now_ms))

    def activity(self, symbol: str, now_ms: int) -> tuple[int, int]:
        """A stamp that changes exactly when some forming candle of ``symbol`` may have: the
        open time of its finest candle and the trades that candle has had by ``now_ms``. Every
        forming candle of the symbol is a function of that stamp (``candles.partial`` moves
        only with trades), so a pusher can skip a quiet symbol with one call per tick."""
        src = self._sources[symbol]
        base = src.base
        t0 = align(now_ms, base)
        final = src.bar(base, t0)
        if final is None or final.trades is None:
            return (t0, -1 if final is None else now_ms)
        n = final.trades
        k = int(n * ((now_ms - t0) / (next_open(t0, base) - t0)))
        return (t0, min(k, n))

    def _forming(self, src: Source, interval: str, t0: int, now: int) -> Candle | None:
        # a pusher asks every interval of a symbol at the same instant: each level of the
        # chain is computed once per instant, and the closed part of a candle once per child
        memo = src.memo.get(interval)
        if memo is not None and memo[0] == now:
            return memo[1]
        if interval == src.base:
            final = src.bar(interval, t0)
            if final is None:
                got = None
            else:
                phase = (now - t0) / (next_open(t0, interval) - t0)
                got = partial(final, phase, *src.intra(t0), self.pad)
            src.memo[interval] = (now, got)
            return got
        sub = src.sub[interval]
        cur = align(now, sub)
        done = self._closed_part(src, interval, t0, cur)
        tail = self._forming(src, sub, cur, now)
        parts = [p for p in (done, tail) if p is not None]
        got = aggregate(parts, interval, t0, closed=False) if parts else None
        src.memo[interval] = (now, got)
        return got

    def _closed_part(self, src: Source, interval: str, t0: int, cur: int) -> Candle | None:
        """The ``interval`` candle opening at ``t0`` made of its children closed before
        ``cur`` (None when there are none); cached until the next child closes. Aggregating
        that and the forming child equals aggregating every child (sums are exact)."""
        got = src.prefix.get(interval)
        if got is not None and got[0] == t0 and got[1] == cur:
            return got[2]
        sub = src.sub[interval]
        parts = [p for p in (src.bar(sub, t) for t in open_times(t0, cur, sub)) if p is not None]
        part = aggregate(parts, interval, t0, closed=True) if parts else None
        src.prefix[interval] = (t0, cur, part)
        return part

    def closed(self, symbol: str, interval: str, now_ms: int,
               since_ms: int | None = None) -> list[Candle]:
        """Every candle whose close time has passed at ``now_ms``, oldest first."""
        if not self.has_stream(symbol, interval):
            return []
        src = self._sources[symbol]
        lo = self.listing_time(symbol, interval)
        if since_ms is not None:
            lo = max(lo, since_ms)
        out = []
        for t in open_times(lo, align(now_ms, interval), interval):
            c = self._out(src.bar(interval, t))
            if c is not None:
                out.append(c)
        return out

    def klines(self, symbol: str, interval: str, now_ms: int, *, start: int | None,
               end: int | None, limit: int) -> list[Candle]:
        """A REST page with the semantics of protocols.md §B.4 (the forming candle is the last
        row when it is in range, as on the real API), as the market stood ``rest_lag_ms``
        before ``now_ms``."""
        now_ms -= self.rest_lag_ms
        src = self._sources[symbol]
        lo = self.listing_time(symbol, interval)
        cur = align(now_ms, interval)
        hi = cur if end is None else min(cur, align(end, interval))
        if start is not None:
            lo = max(lo, start)
            times: list[int] = []
            t = align(lo, interval)
            if t < lo:
                t = next_open(t, interval)
            while t <= hi and len(times) < limit:
                times.append(t)
                t = next_open(t, interval)
        else:
            times = []
            t = hi
            while t >= lo and len(times) < limit:
                times.append(t)
                t = prev_open(t, interval)
            times.reverse()
        out: list[Candle] = []
        for t in times:
            if t < cur:
                c = src.bar(interval, t)
            else:
                c = self._forming(src, interval, t, now_ms)
                if c is None and out:
                    prev = out[-1]
                    c = empty(self.venue, symbol, interval, t, prev.close, prev.volume * 0)
            if c is not None:
                out.append(c)
        if self._unpublished or self._fill_quote:
            return [c for c in map(self._out, out) if c is not None]
        return out
