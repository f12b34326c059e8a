"""The simulator's Hyperliquid perpetuals personality.

``PERSONALITIES`` is what the generic simulator looks up (``sim.venues``): one factory per venue
id of ``candlekeeper.venues.hyperliquid``, given that venue's registered ``VenueSpec``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from candlekeeper.sim.personality import Personality
from candlekeeper.sim.venues.hyperliquid.personality import HyperliquidPersonality
from candlekeeper.venues.contract import VenueSpec
from candlekeeper.venues.hyperliquid.endpoints import HYPERLIQUID_PERP

PERSONALITIES: Final[dict[str, Callable[[VenueSpec], Personality]]] = {
    HYPERLIQUID_PERP.id: HyperliquidPersonality,
}
