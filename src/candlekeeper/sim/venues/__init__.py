"""The simulator's venue personalities, found through the client's venue registry.

For every folder ``candlekeeper.venues.<package>`` listed in ``venues/registry.py`` (``PACKAGES``)
the simulator imports ``candlekeeper.sim.venues.<package>``, which exports

    PERSONALITIES: Mapping[str, Callable[[VenueSpec], Personality]]

one factory per venue id of the client package, and, for a venue that publishes a kline archive
(``Venue.archive``), optionally

    ARCHIVE_WRITERS: Mapping[str, ArchiveWriter]

the function writing an archive file's CSV member as that venue does (``sim.archive`` serves
the layout). The factory gets the venue's registered
:class:`~candlekeeper.venues.contract.VenueSpec`, so every fact a personality uses is the
client's own. Adding a venue therefore touches its client folder, its simulator folder and the
registry line; no generic simulator module changes. Loading is lazy (on first use) and strict:
a registered venue without a personality, or a personality for a venue its client package does
not register, is an error naming the folder to fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import import_module

from candlekeeper.core.candle import Candle
from candlekeeper.errors import ConfigError
from candlekeeper.sim.personality import Personality, PersonalityFactory
from candlekeeper.venues import registry
from candlekeeper.venues.contract import ArchivePeriod

#: a file's CSV member, from the final candles of its period, as the venue writes it
ArchiveWriter = Callable[[Sequence[Candle], ArchivePeriod], str]

_loaded: dict[str, PersonalityFactory] | None = None
_writers: dict[str, ArchiveWriter] = {}


def _load() -> dict[str, PersonalityFactory]:
    global _loaded
    if _loaded is not None:
        return _loaded
    out: dict[str, PersonalityFactory] = {}
    for package in registry.PACKAGES:
        module = import_module(f"{__name__}.{package}")
        table: Mapping[str, PersonalityFactory] | None = getattr(module, "PERSONALITIES", None)
        if table is None:
            raise RuntimeError(f"{module.__name__} exports no PERSONALITIES")
        client = [v for v in registry.VENUES if registry.package_of(v) == package]
        missing = [v for v in client if v not in table]
        extra = [v for v in table if v not in client]
        if missing or extra:
            raise RuntimeError(
                f"{module.__name__}: PERSONALITIES must name exactly the venues of "
                f"candlekeeper.venues.{package} ({', '.join(client)}); missing {missing}, "
                f"unknown {extra}")
        out.update(table)
        _writers.update(getattr(module, "ARCHIVE_WRITERS", {}))
    _loaded = {v: out[v] for v in registry.VENUES}  # registration order
    return _loaded


def simulated_venues() -> tuple[str, ...]:
    """Every venue the simulator speaks: every registered venue, in registration order."""
    return tuple(_load())


def personality_for(venue: str) -> Personality:
    """A fresh personality of ``venue``, built from its registered spec."""
    factory = _load().get(venue)
    if factory is None:
        raise ConfigError(f"the simulator has no venue {venue!r}; expected one of "
                          f"{', '.join(simulated_venues())}")
    return factory(registry.get_spec(venue))


def archive_writer_for(venue: str) -> ArchiveWriter | None:
    """How ``venue`` writes its archive files (None: it publishes no archive)."""
    _load()
    return _writers.get(venue)
