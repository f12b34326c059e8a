"""A realistic market universe: N symbols whose activity follows a power law.

Why: a client that subscribes to ``symbols: all`` meets hundreds of instruments, and on a real
venue they are nothing alike. A handful (BTC, ETH, ...) trade many times a second, so every
one of their kline streams pushes at the venue's full cadence; a long tail trades a few times a
minute, and their streams stay silent for seconds at a time (a venue that pushes a kline stream
only when a trade changed the candle, protocols.md §A.4), yet each of their candles still closes
with its closing frame. The default symbol table gives every symbol 50-250 trades a minute, which at
500 symbols x 15 intervals asks the simulator (and the client) for ~20,000 frames/s that no real
venue sends.

Activity by rank ``r`` (1 = busiest): ``trades_per_minute = TOP_TRADES_PER_MINUTE * r **
-ACTIVITY_EXPONENT``, floored at :data:`MIN_TRADES_PER_MINUTE`. With the defaults, the top ~8
symbols trade more than 4 times a second (their streams push on every 250 ms tick), rank 50 about
27 times a minute, rank 500 about twice a minute. Base volume scales with the trade count, so
quiet symbols also trade little. The first 20 symbols are the simulator's default liquid pairs
(their prices and decimals unchanged); the rest get deterministic, ticker-like names.

The walk gives every candle of the finest interval at least one trade (``sim.walk``), so a quiet
symbol's candle is never empty here: it is a candle with one or two trades, pushed once or twice
before its closing frame. Candles with no trade at all are not simulated.
"""

from __future__ import annotations

import string
from typing import Final

import msgspec

from candlekeeper.errors import ConfigError
from candlekeeper.sim.profiles import DEFAULT_PROFILES, SymbolProfile, profile_for
from candlekeeper.sim.walk import mix

TOP_TRADES_PER_MINUTE: Final = 3000.0
ACTIVITY_EXPONENT: Final = 1.2
MIN_TRADES_PER_MINUTE: Final = 1.0
MAX_UNIVERSE: Final = 5000

_LETTERS: Final = string.ascii_uppercase


def trades_per_minute(rank: int) -> float:
    """How many trades a minute the ``rank``-th busiest symbol makes (rank 1 = the busiest)."""
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    share: float = rank ** -ACTIVITY_EXPONENT
    return max(MIN_TRADES_PER_MINUTE, TOP_TRADES_PER_MINUTE * share)


def _ticker(i: int) -> str:
    """A deterministic 3-5 letter base asset for generated symbol ``i``."""
    h = mix(0x5EED_0000 + i)
    length = 3 + h % 3
    h //= 3
    out = []
    for _ in range(length):
        out.append(_LETTERS[h % 26])
        h //= 26
    return "".join(out)


def universe_symbols(n: int) -> tuple[str, ...]:
    """``n`` distinct symbols, busiest first: the default pairs, then generated tickers."""
    if not 1 <= n <= MAX_UNIVERSE:
        raise ConfigError(f"a universe needs 1 to {MAX_UNIVERSE} symbols, got {n}")
    out = list(DEFAULT_PROFILES)[:n]
    seen = set(out)
    i = 0
    while len(out) < n:
        sym = _ticker(i) + "USDT"
        i += 1
        if sym not in seen:
            seen.add(sym)
            out.append(sym)
    return tuple(out)


def universe_profiles(n: int) -> dict[str, SymbolProfile]:
    """The profile of every symbol of an ``n``-symbol universe, its activity set by rank. A
    symbol keeps its price level and decimals (``profile_for``); its trades and base volume per
    minute follow :func:`trades_per_minute`, the volume in proportion to the trades."""
    out: dict[str, SymbolProfile] = {}
    for rank, sym in enumerate(universe_symbols(n), 1):
        base = profile_for(sym)
        tpm = trades_per_minute(rank)
        vpm = base.volume_per_minute * tpm / base.trades_per_minute
        out[sym] = msgspec.structs.replace(base, trades_per_minute=tpm, volume_per_minute=vpm)
    return out
