"""Deterministic, random-access random walk for one symbol, generated top-down.

Why top-down: a client may ask REST for 1000 hourly candles the moment the simulator starts. A
bottom-up walk would first have to generate 60,000 one-minute candles; here the coarsest
configured interval is generated directly from a smooth fractal noise (any candle, any time, O(1),
no sequential state), and each candle is *split* into its children only when someone asks for
them. A split is exact: the children's open/close chain from the parent's open to its close, the
parent's high and low are each hit by one child, and volumes, trade counts and quote volumes add
up to the parent's to the last unit. So every interval is a consistent aggregation of the same
underlying path (sim.md), whatever order candles are requested in.

Everything here is integers: prices in ticks (``10**-price_decimals``), base volumes in lots
(``10**-qty_decimals``) and quote volumes in ``10**-(price_decimals + qty_decimals)``, which is
what makes the sums exact. ``sim.market`` turns them into ``Decimal`` strings.
"""

from __future__ import annotations

import math
import random
from typing import NamedTuple

from candlekeeper.sim.profiles import SymbolProfile

_M64 = (1 << 64) - 1
_OCTAVES = 11  # noise scales 1 h .. 1024 h: random-walk-like up to ~6 weeks, bounded beyond
_HOUR_MS = 3_600_000


class Bar(NamedTuple):
    """One candle in integer units (see module docstring)."""

    o: int
    h: int
    l: int  # noqa: E741 - the exchange's field name
    c: int
    v: int  # base volume, lots
    n: int  # trades
    V: int  # taker buy base volume, lots
    q: int  # quote volume, ticks*lots
    Q: int  # taker buy quote volume, ticks*lots
    f: int  # first trade id


def mix(x: int) -> int:
    """splitmix64 finaliser: a cheap, well-distributed integer hash."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _unit(key: int, i: int) -> float:
    """Uniform in [-1, 1), a pure function of ``(key, i)``."""
    return float(mix(key ^ mix(i & _M64))) / float(1 << 63) - 1.0


def key_of(*parts: object) -> int:
    """A stable 64-bit key from strings and ints (``hash()`` is salted per process)."""
    acc = 0x1234_5678
    for part in parts:
        data = str(part).encode()
        for i in range(0, len(data), 8):
            acc = mix(acc ^ int.from_bytes(data[i:i + 8], "little"))
    return acc


class WalkGenerator:
    """The walk of one symbol on one venue. Stateless apart from its parameters."""

    def __init__(self, profile: SymbolProfile, seed: int, venue: str) -> None:
        self.profile = profile
        self._key = key_of(seed, venue, profile.symbol)
        self._tick_scale = float(10 ** profile.price_decimals)
        self._lot_scale = float(10 ** profile.qty_decimals)
        self._amps = [profile.volatility * math.sqrt(2.0 ** m) * 0.7 for m in range(_OCTAVES)]

    def rng(self, *parts: object) -> random.Random:
        return random.Random(mix(self._key ^ key_of(*parts)))

    def price_ticks(self, ts_ms: int) -> int:
        """The path's price at ``ts_ms``: a sum of value-noise octaves in log space."""
        u = ts_ms / _HOUR_MS
        x = 0.0
        for m, amp in enumerate(self._amps):
            s = u / (1 << m)
            i = math.floor(s)
            fr = s - i
            fr = fr * fr * (3.0 - 2.0 * fr)
            a = _unit(self._key + m, i)
            b = _unit(self._key + m, i + 1)
            x += amp * (a + (b - a) * fr)
        return max(1, round(self.profile.price * math.exp(x) * self._tick_scale))

    def top(self, open_time: int, next_open: int, base_count: int, index: int) -> Bar:
        """A candle of the coarsest interval, from the path alone. ``base_count`` is the number
        of base-interval candles inside it (each needs at least one trade and one lot);
        ``index`` makes trade ids strictly increasing across candles."""
        p = self.profile
        rng = self.rng("top", open_time)
        o, c = self.price_ticks(open_time), self.price_ticks(next_open)
        hours = (next_open - open_time) / _HOUR_MS
        spread = max(2.0, p.price * self._tick_scale * p.volatility * math.sqrt(hours) * 0.6)
        h = max(o, c) + round(abs(rng.gauss(0.0, 1.0)) * spread)
        low = max(1, min(o, c) - round(abs(rng.gauss(0.0, 1.0)) * spread))
        minutes = (next_open - open_time) / 60_000
        v = base_count + round(p.volume_per_minute * minutes * rng.uniform(0.4, 1.6)
                               * self._lot_scale)
        n = base_count + round(p.trades_per_minute * minutes * rng.uniform(0.4, 1.6))
        taker = int(v * rng.uniform(0.35, 0.65))
        vwap = min(h, max(low, round((o + c) / 2 + rng.uniform(-0.25, 0.25) * (h - low))))
        stride = base_count + round(p.trades_per_minute * minutes * 1.6) + 1
        f = 1_000_000 + (self._key % 1_000_000) + index * stride
        return Bar(o, h, low, c, v, n, taker, v * vwap, taker * vwap, f)

    def split(self, parent: Bar, mins: list[int], rng: random.Random) -> list[Bar]:
        """Children of ``parent``; ``mins[i]`` is child *i*'s base-candle count (its minimum
        number of trades and lots). The children aggregate exactly to ``parent``."""
        k = len(mins)
        if k == 1:
            return [parent]
        o, h, low, c = parent.o, parent.h, parent.l, parent.c
        scale = (h - low) / (2.0 * math.sqrt(k))
        walk = [0.0]
        for _ in range(k):
            walk.append(walk[-1] + rng.gauss(0.0, 1.0))
        end = walk[-1]
        path = [o]
        for i in range(1, k):
            bridge = walk[i] - end * i / k
            path.append(min(h, max(low, round(o + (c - o) * i / k + bridge * scale))))
        path.append(c)
        highs = [min(h, max(path[i], path[i + 1]) + round(abs(rng.gauss(0.0, 0.4)) * scale))
                 for i in range(k)]
        lows = [max(low, min(path[i], path[i + 1]) - round(abs(rng.gauss(0.0, 0.4)) * scale))
                for i in range(k)]
        highs[max(range(k), key=highs.__getitem__)] = h
        lows[min(range(k), key=lows.__getitem__)] = low
        weights = [m * rng.uniform(0.3, 1.7) for m in mins]
        vs = [m + a for m, a in zip(mins, allocate(parent.v - sum(mins), weights), strict=True)]
        ns = [m + a for m, a in zip(mins, allocate(parent.n - sum(mins), vs), strict=True)]
        taker = capped_share(parent.V, parent.v, vs)
        qs = allocate(parent.q, [v * (hi + lo) for v, hi, lo in zip(vs, highs, lows, strict=True)])
        taker_q = capped_share(parent.Q, parent.q, qs)
        out: list[Bar] = []
        f = parent.f
        for i in range(k):
            out.append(Bar(path[i], highs[i], lows[i], path[i + 1], vs[i], ns[i], taker[i],
                           qs[i], taker_q[i], f))
            f += ns[i]
        return out


def allocate(total: int, weights: list[float] | list[int]) -> list[int]:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder), summing
    exactly to ``total``."""
    wsum = float(sum(weights))
    if total <= 0 or wsum <= 0:
        out = [0] * len(weights)
        if total > 0:
            out[0] = total
        return out
    raw = [total * w / wsum for w in weights]
    out = [int(r) for r in raw]
    rest = total - sum(out)
    order = sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)
    for i in order[:rest]:
        out[i] += 1
    # float rounding can leave |rest| > len in pathological cases; settle on the first slot
    out[0] += total - sum(out)
    return out


def capped_share(part: int, whole: int, caps: list[int]) -> list[int]:
    """Split ``part`` (<= ``whole`` = sum(caps)) in proportion to ``caps`` without any share
    exceeding its cap: how a taker volume is split so that ``V <= v`` holds for every child."""
    if whole <= 0:
        return [0] * len(caps)
    out = [part * cap // whole for cap in caps]
    rest = part - sum(out)
    for i, cap in enumerate(caps):
        if rest <= 0:
            break
        take = min(rest, cap - out[i])
        out[i] += take
        rest -= take
    return out
