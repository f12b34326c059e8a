"""The one list of venue folders, and lookups by venue id.

Each name below is a package ``candlekeeper.venues.<name>`` exporting ``VENUES`` (a tuple of
:class:`~candlekeeper.venues.contract.Venue`); the simulator finds the same venue's personality
in ``candlekeeper.sim.venues.<name>``. Adding a venue is one line here (see
docs/adding-a-venue.md); nothing else in candlekeeper names a venue.
"""

from __future__ import annotations

from importlib import import_module
from typing import Final

from candlekeeper.errors import ConfigError
from candlekeeper.venues.contract import (
    ArchiveCodec,
    HistoryCodec,
    StreamCodec,
    Venue,
    VenueSpec,
)

#: venue folders, one per line
PACKAGES: Final[tuple[str, ...]] = (
    "binance",
    "bingx",
    "okx",
    "bybit",
    "hyperliquid",
)


def _load() -> dict[str, tuple[str, Venue]]:
    out: dict[str, tuple[str, Venue]] = {}
    for package in PACKAGES:
        module = import_module(f"candlekeeper.venues.{package}")
        for venue in module.VENUES:
            if venue.spec.id in out:
                raise RuntimeError(f"venue {venue.spec.id!r} is registered twice")
            out[venue.spec.id] = (package, venue)
    return out


_VENUES: Final = _load()

#: every registered venue id, in registration order
VENUES: Final[tuple[str, ...]] = tuple(_VENUES)


def venue(venue_id: str) -> Venue:
    try:
        return _VENUES[venue_id][1]
    except KeyError:
        raise ConfigError(f"unknown venue {venue_id!r}; expected one of "
                          f"{', '.join(VENUES)}") from None


def package_of(venue_id: str) -> str:
    """The folder name of a venue (one folder may hold several venue ids)."""
    venue(venue_id)
    return _VENUES[venue_id][0]


def get_spec(venue_id: str) -> VenueSpec:
    return venue(venue_id).spec


def stream_codec(venue_id: str) -> StreamCodec:
    v = venue(venue_id)
    return v.stream_codec(v.spec)


def canonical_symbol(venue_id: str, text: str) -> str:
    """What a user wrote (``BTC-USDT``, ``BTC/USDT:USDT``, ...) as the venue's canonical symbol;
    ``ConfigError`` for a malformed one."""
    return venue(venue_id).canonical_symbol(text)


def history_codec(venue_id: str) -> HistoryCodec:
    v = venue(venue_id)
    return v.history_codec(v.spec)


def archive_codec(venue_id: str) -> ArchiveCodec | None:
    """The venue's public kline archive, or None when it publishes none."""
    v = venue(venue_id)
    return None if v.archive is None else v.archive(v.spec)
