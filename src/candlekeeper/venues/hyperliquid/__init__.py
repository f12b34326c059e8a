"""Hyperliquid perpetuals (``hyperliquid-perp``): one stream codec, one history codec, the venue
described as data (``endpoints.py``), its symbols (the coin, ``symbols.py``)."""

from __future__ import annotations

from typing import Final

from candlekeeper.venues.contract import Venue
from candlekeeper.venues.hyperliquid.endpoints import HYPERLIQUID_PERP
from candlekeeper.venues.hyperliquid.history import HyperliquidHistoryCodec
from candlekeeper.venues.hyperliquid.stream import HyperliquidStreamCodec
from candlekeeper.venues.hyperliquid.symbols import canonical

VENUES: Final = (
    Venue(HYPERLIQUID_PERP, HyperliquidStreamCodec, HyperliquidHistoryCodec,
          canonical_symbol=canonical),
)
