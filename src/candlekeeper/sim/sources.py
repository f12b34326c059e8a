"""Where a simulated market's final candles come from, per symbol: a seeded walk generated
top-down (:class:`WalkSource`) or a replayed real series aggregated bottom-up
(:class:`ReplaySource`), both behind one bounded LRU per market (:class:`Caches`). ``sim.market``
asks them; nothing here knows the clock.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import (
    DAY,
    INTERVAL_MS,
    MONTH_NAME,
    align,
    close_time,
    next_open,
    open_times,
)
from candlekeeper.sim.candles import aggregate, pad_to, units_text
from candlekeeper.sim.profiles import SymbolProfile
from candlekeeper.sim.replay import ReplaySeries
from candlekeeper.sim.walk import Bar, WalkGenerator, key_of, mix

#: candles (and integer bars) cached per market, all symbols together: enough for every page a
#: client fetches at once, bounded so a 500-symbol universe fetched at the weight budget does
#: not grow without end (candles are pure functions of the seed: a miss costs only time)
_CACHE_MAX = 200_000


class Caches:
    """The market's two LRU caches, shared by all its symbols so their total stays bounded:
    final candles and the walk's integer bars, keyed by (symbol, interval, open time)."""

    def __init__(self, cap: int = _CACHE_MAX) -> None:
        self.cap = cap
        self.candles: OrderedDict[tuple[str, str, int], Candle | None] = OrderedDict()
        self.ints: OrderedDict[tuple[str, str, int], Bar] = OrderedDict()


def nests(child: str, parent: str) -> bool:
    """True when every ``parent`` candle is exactly a run of whole ``child`` candles."""
    if child == parent:
        return True
    if child == MONTH_NAME:
        return False
    cw = INTERVAL_MS[child]
    if parent == MONTH_NAME:
        return DAY % cw == 0
    pw = INTERVAL_MS[parent]
    if pw % cw:
        return False
    if parent == "1w":  # weeks open on Monday: the 4-day epoch offset must be a child multiple
        return (4 * DAY) % cw == 0
    return child != "1w"


def order(intervals: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(set(intervals), key=lambda i: INTERVAL_MS[i]))


class Source:
    """Final candles of one symbol, with an LRU cache (candles are immutable)."""

    def __init__(self, venue: str, symbol: str, chain: tuple[str, ...], pad: int | None,
                 caches: Caches) -> None:
        self.venue, self.symbol, self.chain, self.pad = venue, symbol, chain, pad
        self.caches = caches
        self.base = chain[0]
        self.key = key_of(venue, symbol, "intra")
        #: for each interval, the coarsest finer chain interval that nests in it
        self.sub: dict[str, str] = {}
        for i, iv in enumerate(chain[1:], 1):
            self.sub[iv] = max((c for c in chain[:i] if nests(c, iv)), key=INTERVAL_MS.__getitem__)
        #: the last forming candle computed per interval, with the instant it was asked for
        self.memo: dict[str, tuple[int, Candle | None]] = {}
        #: per interval: (open time, first child still forming, aggregate of the closed ones)
        self.prefix: dict[str, tuple[int, int, Candle | None]] = {}

    def bar(self, interval: str, open_time: int) -> Candle | None:
        key = (self.symbol, interval, open_time)
        cache = self.caches.candles
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        value = self._make(interval, open_time)
        cache[key] = value
        if len(cache) > self.caches.cap:
            cache.popitem(last=False)
        return value

    def _make(self, interval: str, open_time: int) -> Candle | None:
        sub = self.sub[interval]
        parts = [self.bar(sub, t) for t in open_times(open_time, next_open(open_time, interval),
                                                      sub)]
        if not parts or any(p is None for p in parts):
            return None
        return aggregate([p for p in parts if p is not None], interval, open_time, True)

    def first_open(self, interval: str, listing_ms: int) -> int:
        t = align(listing_ms, interval)
        return t if t >= listing_ms else next_open(t, interval)

    def intra(self, open_time: int) -> tuple[float, float, bool]:
        """Where inside the base candle the two extremes fall (fixed per candle)."""
        h = mix(self.key ^ open_time)
        a = 0.1 + 0.4 * ((h & 0xFFFF) / 0xFFFF)
        b = a + (0.95 - a) * (((h >> 16) & 0xFFFF) / 0xFFFF)
        return a, b, bool(h >> 63)


class WalkSource(Source):
    def __init__(self, venue: str, profile: SymbolProfile, chain: tuple[str, ...], pad: int | None,
                 seed: int, caches: Caches) -> None:
        super().__init__(venue, profile.symbol, chain, pad, caches)
        self.gen = WalkGenerator(profile, seed, venue)
        self.top = chain[-1]
        ladder = [self.top]
        for iv in reversed(chain[:-1]):
            if nests(iv, ladder[-1]):
                ladder.append(iv)
        self.parent = {child: parent for parent, child in itertools.pairwise(ladder)}
        p = self.gen.profile
        self._pd, self._qd = p.price_decimals, p.qty_decimals

    def _count(self, open_time: int, interval: str) -> int:
        return (next_open(open_time, interval) - open_time) // INTERVAL_MS[self.base]

    def ints(self, interval: str, open_time: int) -> Bar:
        key = (self.symbol, interval, open_time)
        got = self.caches.ints.get(key)
        if got is not None:
            return got
        if interval == self.top:
            step = 28 * DAY if interval == MONTH_NAME else INTERVAL_MS[interval]
            got = self.gen.top(open_time, next_open(open_time, interval),
                               self._count(open_time, interval), open_time // step)
            self._store(key, got)
            return got
        parent = self.parent[interval]
        pt = align(open_time, parent)
        kids = open_times(pt, next_open(pt, parent), interval)
        bars = self.gen.split(self.ints(parent, pt), [self._count(t, interval) for t in kids],
                              self.gen.rng("split", parent, pt))
        mine = bars[0]
        for t, b in zip(kids, bars, strict=True):
            self._store((self.symbol, interval, t), b)
            if t == open_time:
                mine = b
        return mine

    def _store(self, key: tuple[str, str, int], bar: Bar) -> None:
        ints = self.caches.ints
        ints[key] = bar
        if len(ints) > self.caches.cap:
            ints.popitem(last=False)

    def _make(self, interval: str, open_time: int) -> Candle | None:
        if interval not in self.parent and interval != self.top:
            return super()._make(interval, open_time)
        b = self.ints(interval, open_time)
        pd, qd, pad = self._pd, self._qd, self.pad
        # the text straight from the integers (``candles.units_text``): a REST page at the
        # venue's weight budget builds thousands of these a second
        return Candle(self.venue, self.symbol, interval, open_time,
                      close_time(open_time, interval), units_text(b.o, pd, pad),
                      units_text(b.h, pd, pad), units_text(b.l, pd, pad),
                      units_text(b.c, pd, pad), units_text(b.v, qd, pad),
                      units_text(b.q, pd + qd, pad), b.n, units_text(b.V, qd, pad),
                      units_text(b.Q, pd + qd, pad), b.f, b.f + b.n - 1, True)


class ReplaySource(Source):
    def __init__(self, venue: str, series: ReplaySeries, chain: tuple[str, ...],
                 pad: int | None, caches: Caches) -> None:
        super().__init__(venue, series.symbol, chain, pad, caches)
        self.series = series
        self._base: dict[int, Candle] = {}
        vols = sorted(r.volume for r in series.rows)
        avg_trade = (vols[len(vols) // 2] or Decimal(1)) / 150
        trade_id = 100_000_000 + key_of(venue, series.symbol) % 100_000_000
        for r in series.rows:
            h = mix(self.key ^ r.open_time)
            n = r.trades if r.trades is not None else max(1, int(r.volume / avg_trade))
            v = r.volume
            q = r.quote_volume if r.quote_volume is not None else v * r.close
            bv = r.taker_buy_base_volume
            if bv is None:
                ratio = Decimal(35 + h % 31) / 100
                step = Decimal(1).scaleb(min(0, _exp(v)))
                bv = (v * ratio).quantize(step, rounding=ROUND_FLOOR)
            bq = r.taker_buy_quote_volume if r.taker_buy_quote_volume is not None else bv * r.close
            self._base[r.open_time] = Candle.of(
                venue, series.symbol, series.interval, r.open_time,
                close_time(r.open_time, series.interval), pad_to(r.open, pad),
                pad_to(r.high, pad), pad_to(r.low, pad), pad_to(r.close, pad), pad_to(v, pad),
                pad_to(q, pad), n, pad_to(bv, pad), pad_to(bq, pad), trade_id,
                trade_id + n - 1, True)
            trade_id += n

    def _make(self, interval: str, open_time: int) -> Candle | None:
        if interval == self.base:
            return self._base.get(open_time)
        return super()._make(interval, open_time)


def _exp(x: Decimal) -> int:
    e = x.as_tuple().exponent
    return e if isinstance(e, int) else 0
