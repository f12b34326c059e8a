"""The simulator's Bybit v5 personalities (linear and spot).

``PERSONALITIES`` is what the generic simulator looks up (``sim.venues``): one factory per venue
id of ``candlekeeper.venues.bybit``, given that venue's registered ``VenueSpec``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from candlekeeper.sim.personality import Personality
from candlekeeper.sim.venues.bybit.personality import BybitPersonality
from candlekeeper.venues.bybit.endpoints import BYBIT_LINEAR, BYBIT_SPOT
from candlekeeper.venues.contract import VenueSpec

PERSONALITIES: Final[dict[str, Callable[[VenueSpec], Personality]]] = {
    BYBIT_LINEAR.id: BybitPersonality,
    BYBIT_SPOT.id: BybitPersonality,
}
