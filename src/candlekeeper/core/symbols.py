"""Canonical symbol names.

Users copy symbols from wherever they saw them: a venue's REST (``BTCUSDT``), its stream names
(``btcusdt``), hyphenated forms (``BTC-USDT``), ccxt unified swaps (``BTC/USDT:USDT``) or spot pairs
(``BTC/USDT``, ``BTC_USDT``). Inside candlekeeper one series has exactly one name, so config,
storage and ``StreamKey`` all use the canonical form: uppercase, no separator (``BTCUSDT``).
Each venue codec maps that back to its wire form (``VenueCodec.native_symbol``).

This module is pure (no I/O, no registry): it checks the *shape* of a symbol. Whether a venue
actually lists it is a question for that venue's exchangeInfo, asked at runtime.
"""

from __future__ import annotations

import re
from typing import Final

from candlekeeper.errors import ConfigError

#: separators users write between base and quote asset; all are dropped
_SEPARATORS: Final = re.compile(r"[-/_]")
#: a canonical symbol: letters and digits only. ``[^\W_]`` rather than ``[A-Z0-9]`` because
#: some venues list contracts whose base asset is written in CJK characters.
_CANONICAL: Final = re.compile(r"[^\W_]+")
MAX_SYMBOL_LEN: Final = 40


def normalize_symbol(text: str) -> str:
    """Return the canonical form of ``text``, or raise :class:`ConfigError` naming the problem.

    ``BTCUSDT``, ``btcusdt``, ``BTC-USDT``, ``BTC_USDT``, ``BTC/USDT`` and ``BTC/USDT:USDT``
    all become ``BTCUSDT``. The ``:SETTLE`` suffix of ccxt's unified swap symbols names the
    settlement asset, which is not part of the venue's symbol, so it is dropped.
    """
    if not isinstance(text, str):
        raise ConfigError(f"symbol must be a string, got {type(text).__name__} {text!r}")
    raw = text.strip()
    if not raw:
        raise ConfigError("symbol must not be empty")
    body = raw
    if ":" in raw:
        body, _, settle = raw.partition(":")
        if "/" not in body or not _CANONICAL.fullmatch(settle):
            raise ConfigError(
                f"bad symbol {text!r}: a ':SETTLE' suffix is only valid in the ccxt form "
                "'BASE/QUOTE:SETTLE' (e.g. 'BTC/USDT:USDT')"
            )
    parts = _SEPARATORS.split(body)
    if len(parts) > 2 or any(not p for p in parts):
        raise ConfigError(
            f"bad symbol {text!r}: expected e.g. 'BTCUSDT', 'BTC-USDT' or 'BTC/USDT:USDT'"
        )
    canonical = "".join(parts).upper()
    if not _CANONICAL.fullmatch(canonical):
        raise ConfigError(
            f"bad symbol {text!r}: only letters and digits (with one '-', '/' or '_' "
            "between base and quote) are allowed"
        )
    if len(canonical) > MAX_SYMBOL_LEN:
        raise ConfigError(f"bad symbol {text!r}: longer than {MAX_SYMBOL_LEN} characters")
    return canonical
