"""Per-symbol market parameters for the simulated random walk.

A profile fixes the things a real instrument fixes: its price level, its tick
(``price_decimals``), its lot step (``qty_decimals``) and how busy it is. The default table
holds 20 liquid USDT pairs with plausible values; any other symbol gets a profile derived
deterministically from its name, so a user can simulate ``FOOUSDT`` without configuring anything.

A venue may pad every decimal to 8 places on the wire, so a profile must keep
``price_decimals + qty_decimals <= 8`` for the quote volume (price × quantity) to stay exact.
A venue's own tick and lot decimals, where a real source shows them, are its personality's data
(``Behaviour.precision``) and override the table through :func:`profile_for`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Final

import msgspec


class SymbolProfile(msgspec.Struct, frozen=True):
    symbol: str
    price: float  # reference price the walk starts around
    price_decimals: int  # tick = 10 ** -price_decimals
    qty_decimals: int  # lot step = 10 ** -qty_decimals
    volume_per_minute: float  # typical base-asset volume traded per minute
    trades_per_minute: float  # typical number of trades per minute
    volatility: float = 0.006  # relative price move per sqrt(hour)


def _p(symbol: str, price: float, pd: int, qd: int, vol: float, trades: float) -> SymbolProfile:
    return SymbolProfile(symbol, price, pd, qd, vol, trades)


#: ~20 liquid USDT pairs; the first 20 are the simulator's default symbols.
DEFAULT_PROFILES: Final[dict[str, SymbolProfile]] = {
    p.symbol: p
    for p in (
        _p("BTCUSDT", 64000.0, 2, 3, 180.0, 1500.0),
        _p("ETHUSDT", 3100.0, 2, 3, 1500.0, 900.0),
        _p("BNBUSDT", 580.0, 2, 2, 900.0, 250.0),
        _p("SOLUSDT", 150.0, 3, 2, 9000.0, 600.0),
        _p("XRPUSDT", 0.55, 4, 1, 900000.0, 400.0),
        _p("DOGEUSDT", 0.15, 5, 0, 4000000.0, 350.0),
        _p("ADAUSDT", 0.45, 4, 0, 900000.0, 200.0),
        _p("AVAXUSDT", 35.0, 3, 1, 20000.0, 220.0),
        _p("LINKUSDT", 14.0, 3, 2, 40000.0, 200.0),
        _p("DOTUSDT", 6.5, 3, 1, 60000.0, 150.0),
        _p("LTCUSDT", 80.0, 2, 3, 5000.0, 160.0),
        _p("TRXUSDT", 0.12, 5, 0, 2000000.0, 120.0),
        _p("MATICUSDT", 0.7, 4, 0, 500000.0, 150.0),
        _p("ATOMUSDT", 8.0, 3, 2, 20000.0, 110.0),
        _p("NEARUSDT", 5.5, 3, 1, 50000.0, 140.0),
        _p("UNIUSDT", 9.0, 3, 1, 20000.0, 100.0),
        _p("APTUSDT", 9.5, 3, 1, 25000.0, 120.0),
        _p("ARBUSDT", 1.0, 4, 1, 300000.0, 160.0),
        _p("OPUSDT", 2.2, 4, 1, 100000.0, 130.0),
        _p("FILUSDT", 5.0, 3, 1, 40000.0, 90.0),
    )
}

DEFAULT_SYMBOLS: Final[tuple[str, ...]] = tuple(DEFAULT_PROFILES)


def profile_for(symbol: str,
                precision: Mapping[str, tuple[int, int]] | None = None) -> SymbolProfile:
    """The table entry, or a profile derived from a CRC of the name (stable across runs and
    Python processes, unlike ``hash()``); ``precision`` (a venue's own ``(price, quantity)``
    decimals per symbol) overrides it where it has an entry."""
    base = _profile(symbol)
    override = (precision or {}).get(symbol)
    if override is None:
        return base
    return msgspec.structs.replace(base, price_decimals=override[0], qty_decimals=override[1])


def _profile(symbol: str) -> SymbolProfile:
    found = DEFAULT_PROFILES.get(symbol)
    if found is not None:
        return found
    h = zlib.crc32(symbol.encode())
    price = 0.05 * (10 ** ((h % 5000) / 1000.0))  # 0.05 .. 5000, log-uniform
    pd = max(2, min(6, 4 - int(len(str(int(price))) - 1)))
    qd = max(0, min(8 - pd, 3 - pd // 2))
    return SymbolProfile(symbol, price, pd, qd, volume_per_minute=50_000.0 / price + 1.0,
                         trades_per_minute=50.0 + h % 200)
