"""Venue id -> (spec, codec factory). The one place that knows every venue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from candlekeeper.errors import ConfigError
from candlekeeper.venues.base import VenueCodec, VenueSpec
from candlekeeper.venues.binance.codec import BinanceCodec
from candlekeeper.venues.binance.endpoints import BINANCE_SPOT, BINANCE_USDM
from candlekeeper.venues.bingx.codec import BingxCodec
from candlekeeper.venues.bingx.endpoints import BINGX_SWAP

_CODECS: Final[dict[str, tuple[VenueSpec, Callable[[VenueSpec], VenueCodec]]]] = {
    BINANCE_USDM.id: (BINANCE_USDM, BinanceCodec),
    BINANCE_SPOT.id: (BINANCE_SPOT, BinanceCodec),
    BINGX_SWAP.id: (BINGX_SWAP, BingxCodec),
}

VENUES: Final[tuple[str, ...]] = tuple(_CODECS)


def get_spec(venue: str) -> VenueSpec:
    try:
        return _CODECS[venue][0]
    except KeyError:
        raise ConfigError(f"unknown venue {venue!r}; expected one of {', '.join(VENUES)}") from None


def make_codec(venue: str) -> VenueCodec:
    spec = get_spec(venue)
    return _CODECS[venue][1](spec)
