"""Hyperliquid symbols: the canonical symbol of a perpetual is its **coin** (``BTC``).

Every Hyperliquid perpetual is quoted and settled in USDC, and the venue names a market by its
coin alone (``{"coin":"BTC"}``), so the coin is the one name of the series: ``BTC``, ``btc``,
``BTCUSDC``, ``BTC-USDC``, ``BTC/USDC`` and ccxt's ``BTC/USDC:USDC`` all become ``BTC``
(:func:`canonical`). Another quote asset in a separated form (``BTC/USDT``) is refused: it is
not a Hyperliquid perpetual. The venue is case-sensitive: ``k``-prefixed coins (``kPEPE``,
priced per 1,000 tokens) keep their lowercase ``k`` on the wire (:func:`native`), learnt from
the venue's ``meta`` universe and, before that, from :data:`K_COINS`.
"""

from __future__ import annotations

import re
from typing import Final

from candlekeeper.core.symbols import normalize_symbol
from candlekeeper.errors import ConfigError

#: the quote and settlement asset of every Hyperliquid perpetual
QUOTE: Final = "USDC"
#: ``k`` coins listed on Hyperliquid perps (the 2026 universe): canonical -> wire
K_COINS: Final[dict[str, str]] = {c.upper(): c for c in (
    "kPEPE", "kSHIB", "kBONK", "kFLOKI", "kLUNC", "kDOGS", "kNEIRO")}
_SEPARATED: Final = re.compile(r"[-/_]")
#: canonical -> wire names learnt from ``meta`` (bounded: a server cannot grow it forever)
_learnt: dict[str, str] = {}
_LEARNT_MAX: Final = 10_000


def canonical(text: str) -> str:
    """Any user form -> the canonical coin (``BTC/USDC:USDC`` -> ``BTC``); ConfigError for
    a malformed symbol or another quote asset."""
    raw = text.strip() if isinstance(text, str) else text
    whole = normalize_symbol(raw)  # validates the shape, raises a clear error
    body = raw.partition(":")[0]
    if _SEPARATED.search(body):
        base, quote = (p.upper() for p in _SEPARATED.split(body, maxsplit=1))
        if quote != QUOTE:
            raise ConfigError(f"bad symbol {text!r}: Hyperliquid perpetuals are quoted in "
                              f"{QUOTE} (write the coin, e.g. 'BTC', or 'BTC/USDC:USDC')")
        return base
    if whole.endswith(QUOTE) and len(whole) > len(QUOTE):
        return whole[: -len(QUOTE)]
    return whole


def native(symbol: str) -> str:
    """Canonical (or any user form) -> the coin as the venue spells it (``KPEPE`` ->
    ``kPEPE``)."""
    coin = canonical(symbol)
    return _learnt.get(coin) or K_COINS.get(coin, coin)


def of_coin(coin: str) -> str | None:
    """The venue's coin -> canonical; None when it cannot be one of our symbols (a HIP-3
    ``dex:COIN``, a spot ``@107`` or ``PURR/USDC``)."""
    if not coin or len(coin) > 40 or not coin.isascii() or not coin.isalnum():
        return None
    return coin.upper()


def learn(coin: str) -> None:
    """Remember how the venue spells a coin whose name is not all capitals."""
    upper = coin.upper()
    if upper != coin and len(_learnt) < _LEARNT_MAX:
        _learnt[upper] = coin
