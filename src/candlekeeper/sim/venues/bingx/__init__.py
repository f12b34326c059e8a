"""The simulator's BingX perpetual-swap personality.

``PERSONALITIES`` is what the generic simulator looks up (``sim.venues``): one factory per venue
id of ``candlekeeper.venues.bingx``, given that venue's registered ``VenueSpec``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from candlekeeper.sim.personality import Personality
from candlekeeper.sim.venues.bingx.personality import BingxPersonality
from candlekeeper.venues.bingx.endpoints import BINGX_SWAP
from candlekeeper.venues.contract import VenueSpec

PERSONALITIES: Final[dict[str, Callable[[VenueSpec], Personality]]] = {
    BINGX_SWAP.id: BingxPersonality,
}
