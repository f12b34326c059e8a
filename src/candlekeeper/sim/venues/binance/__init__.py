"""The simulator's Binance personalities (USDⓈ-M futures and spot), one class described by data.

``PERSONALITIES`` is what the generic simulator looks up (``sim.venues``): one factory per venue
id of ``candlekeeper.venues.binance``, each given that venue's registered ``VenueSpec``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from candlekeeper.sim.personality import Personality
from candlekeeper.sim.venues import ArchiveWriter
from candlekeeper.sim.venues.binance.archive import writer
from candlekeeper.sim.venues.binance.personality import (
    SPOT_BEHAVIOUR,
    SPOT_FLAVOUR,
    USDM_BEHAVIOUR,
    USDM_FLAVOUR,
    BinancePersonality,
)
from candlekeeper.venues.binance.endpoints import BINANCE_SPOT, BINANCE_USDM
from candlekeeper.venues.contract import VenueSpec


def _usdm(spec: VenueSpec) -> Personality:
    return BinancePersonality(spec, USDM_FLAVOUR, USDM_BEHAVIOUR)


def _spot(spec: VenueSpec) -> Personality:
    return BinancePersonality(spec, SPOT_FLAVOUR, SPOT_BEHAVIOUR)


PERSONALITIES: Final[dict[str, Callable[[VenueSpec], Personality]]] = {
    BINANCE_USDM.id: _usdm,
    BINANCE_SPOT.id: _spot,
}

#: both publish a kline archive (``venues.binance.archive``)
ARCHIVE_WRITERS: Final[dict[str, ArchiveWriter]] = {v: writer(v) for v in PERSONALITIES}
