"""The simulator's OKX personalities (USDT swaps and spot).

``PERSONALITIES`` is what the generic simulator looks up (``sim.venues``): one factory per venue
id of ``candlekeeper.venues.okx``, given that venue's registered ``VenueSpec``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from candlekeeper.sim.personality import Personality
from candlekeeper.sim.venues.okx.personality import OkxPersonality
from candlekeeper.venues.contract import VenueSpec
from candlekeeper.venues.okx.endpoints import OKX_SPOT, OKX_SWAP

PERSONALITIES: Final[dict[str, Callable[[VenueSpec], Personality]]] = {
    OKX_SWAP.id: OkxPersonality,
    OKX_SPOT.id: OkxPersonality,
}
