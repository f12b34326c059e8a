"""The ``feeds`` section: which streams to take from which venue, and where to connect.

A feed entry is one venue at one set of endpoints, run as one
:class:`~candlekeeper.feed.CandleFeed`. Its streams are either the classic product

.. code-block:: yaml

    - venue: <venue id>
      symbols: [BTCUSDT, ETHUSDT]
      intervals: [1m, 5m]

or, when symbols need different intervals, ``groups`` (each group is such a product):

.. code-block:: yaml

    - venue: <venue id>
      groups:
        - {symbols: [BTCUSDT], intervals: [1m, 5m]}
        - {symbols: all, intervals: [1h, 4h]}

Groups are one entry rather than several entries per venue so that the endpoints, testnet flag
and connection pool are said once, and there is a single place where two groups could claim the
same ``(symbol, interval)``: that is refused with the pair and both groups named, as is a group
that repeats an interval of a ``symbols: all`` group (every symbol already has it).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from candlekeeper.config_checks import check_url
from candlekeeper.config_support import Section, did_you_mean, split_list
from candlekeeper.core.derived import DEFAULT_BASE, interval_width, looks_derived, parse_anchor
from candlekeeper.core.intervals import ALL_INTERVALS
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.core.symbols import normalize_symbol
from candlekeeper.errors import ConfigError
from candlekeeper.feed_derived import plan_streams
from candlekeeper.gapfill_options import ClosePolicy
from candlekeeper.transport.options import TransportMode
from candlekeeper.venues.contract import VenueSpec
from candlekeeper.venues.registry import VENUES, archive_codec, canonical_symbol, get_spec

__all__ = ["FeedConfig", "StreamGroup", "known_venues"]

Symbols = tuple[str, ...] | Literal["all"]
_MAX_OVERLAPS_SHOWN = 5


def known_venues() -> Mapping[str, VenueSpec]:
    """Every venue id a config may name, from :mod:`candlekeeper.venues.registry` (the one place
    that knows every venue: registering a venue there makes it valid here too)."""
    return {venue: get_spec(venue) for venue in VENUES}


def parse_symbols(value: object) -> Symbols:
    """A list of symbols in any accepted spelling (canonical, deduplicated), or ``all``."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return "all"
    items = split_list(value, "symbols (or 'all')")
    if len(items) == 1 and isinstance(items[0], str) and items[0].lower() == "all":
        return "all"
    if not items:
        raise ValueError("at least one symbol is required (or 'all')")
    seen: dict[str, None] = {}
    problems: list[str] = []
    for item in items:
        if not isinstance(item, str):
            problems.append(f"{item!r} is not a symbol (quote it in YAML)")
            continue
        try:
            seen[normalize_symbol(item)] = None
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(seen)


def parse_intervals(value: object, venue: object) -> tuple[str, ...]:
    """Intervals checked against ``venue``'s (any known interval when the venue is invalid:
    that is reported on its own), deduplicated, in ascending order."""
    items = split_list(value, "intervals")
    if not items:
        raise ValueError("at least one interval is required")
    spec = known_venues().get(venue) if isinstance(venue, str) else None
    allowed = spec.intervals if spec else ALL_INTERVALS
    bad = [i for i in items
           if not isinstance(i, str) or (i not in allowed and not looks_derived(i))]
    if bad:
        where = f" for {spec.id}" if spec else ""
        hints = "".join(
            f" ({b!r}: intervals are case-sensitive, did you mean {b.lower()!r}?)"
            for b in bad
            if isinstance(b, str) and b.lower() in allowed
        )
        names = ", ".join(repr(b) for b in bad)
        raise ValueError(
            f"unknown interval{'s' if len(bad) > 1 else ''} {names}{where}; "
            f"allowed: {', '.join(allowed)}{hints}, or one derived from them (e.g. 2m, 3h, "
            "1d+08:00; docs/derived-intervals.md)"
        )
    unique = dict.fromkeys(str(i) for i in items)
    return tuple(sorted(unique, key=interval_width))


class StreamGroup(Section):
    """Symbols that share one set of intervals: one item of a feed's ``groups``."""

    #: copied from the feed so intervals are checked against its venue (not a key users write)
    venue: str | None = Field(default=None, exclude=True, repr=False)
    symbols: Symbols
    intervals: tuple[str, ...] = ("1m",)

    @field_validator("symbols", mode="plain")
    @classmethod
    def _symbols(cls, value: object) -> Symbols:
        return parse_symbols(value)

    @field_validator("intervals", mode="plain")
    @classmethod
    def _intervals(cls, value: object, info: ValidationInfo) -> tuple[str, ...]:
        return parse_intervals(value, info.data.get("venue"))


class FeedConfig(Section):
    """One venue: which symbols and intervals to stream from it, and where to connect."""

    venue: str
    #: required unless ``groups`` is given (then None)
    symbols: Symbols | None
    intervals: tuple[str, ...] = ("1m",)
    groups: tuple[StreamGroup, ...] | None = None
    testnet: bool = False
    ws_url: str | None = None
    rest_url: str | None = None
    #: base URL of the venue's public kline archive (``candlekeeper backfill``); None: the
    #: venue's own, used only when REST is the production endpoint too (docs/history.md)
    archive_url: str | None = None
    #: ``websocket``, ``rest`` (poll every stream over REST) or ``auto`` (the WebSocket,
    #: falling back to polling while it is unavailable)
    transport: TransportMode = TransportMode.AUTO
    #: ``flag`` (a close is emitted when the venue's stream says so) or ``fast`` (as soon as
    #: the close time has passed, confirmed over REST, within ``gap_fill.fast_budget_share``)
    close_policy: ClosePolicy = ClosePolicy.FLAG
    #: the native interval a derived one (an interval the venue lacks, e.g. ``2m``, ``3h``) is
    #: built from; ``5m@1m`` names a base per interval (docs/derived-intervals.md)
    derive_from: str = DEFAULT_BASE
    #: UTC offset that day-or-longer bars open at (``UTC+8``, ``+08:00``); off UTC they are
    #: derived and named with it (``1d+08:00``)
    anchor: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _groups_or_product(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("groups") is None:
            return data
        both = [k for k in ("symbols", "intervals") if k in data]
        if both:
            raise ValueError(f"give either groups or {' and '.join(both)}, not both (with "
                             "groups, each group lists its own symbols and intervals)")
        groups = data["groups"]
        if not isinstance(groups, list):
            return data  # the field's own validation says what is wrong
        for i, group in enumerate(groups):
            if isinstance(group, dict) and "venue" in group:
                raise ValueError(f"groups[{i}].venue: a group takes symbols and intervals; the "
                                 "venue is the feed's")
        return {**data, "symbols": None,
                "groups": [{**g, "venue": data.get("venue")} if isinstance(g, dict) else g
                           for g in groups]}

    @field_validator("venue")
    @classmethod
    def _venue(cls, value: str) -> str:
        venues = known_venues()
        if value not in venues:
            raise ValueError(
                f"unknown venue {value!r}{did_you_mean(value, tuple(venues))}; "
                f"known venues: {', '.join(sorted(venues))}"
            )
        return value

    @field_validator("symbols", mode="plain")
    @classmethod
    def _symbols(cls, value: object) -> Symbols | None:
        return None if value is None else parse_symbols(value)

    @field_validator("intervals", mode="plain")
    @classmethod
    def _intervals(cls, value: object, info: ValidationInfo) -> tuple[str, ...]:
        return parse_intervals(value, info.data.get("venue"))

    @field_validator("anchor")
    @classmethod
    def _anchor(cls, value: str | None) -> str | None:
        try:
            parse_anchor(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("ws_url")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        # ws:// is allowed on purpose: the simulator and local tests listen on plain ws://.
        if value is None:
            return None
        return check_url(value, ("ws", "wss")).rstrip("/")

    @field_validator("rest_url", "archive_url")
    @classmethod
    def _rest_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_url(value, ("http", "https")).rstrip("/")

    @model_validator(mode="after")
    def _derivable(self) -> FeedConfig:
        """Every interval native or derivable from this feed's base (one line each)."""
        spec = known_venues().get(self.venue)
        if spec is None:
            return self
        problems: list[str] = []
        for group in self.groups or (None,):
            intervals = group.intervals if group is not None else self.intervals
            try:
                plan_streams(self.venue, spec.intervals,
                             [StreamKey(self.venue, "_", i) for i in intervals],
                             derive_from=self.derive_from, anchor=self.anchor)
            except ConfigError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(dict.fromkeys(problems)))
        return self

    @model_validator(mode="after")
    def _archive(self) -> FeedConfig:
        if self.archive_url is not None and archive_codec(self.venue) is None:
            raise ValueError(f"archive_url: {self.venue} publishes no kline archive")
        return self

    @model_validator(mode="after")
    def _streams(self) -> FeedConfig:
        if self.groups is None:
            if self.symbols is None:
                raise ValueError("symbols: required (a list or 'all'), or give groups")
            return self
        if not self.groups:
            raise ValueError("groups: at least one group is required")
        overlaps = _overlaps(self.groups)
        if overlaps:
            more = len(overlaps) - _MAX_OVERLAPS_SHOWN
            raise ValueError("groups overlap: " + "; ".join(overlaps[:_MAX_OVERLAPS_SHOWN])
                             + (f"; and {more} more" if more > 0 else "")
                             + " (each (symbol, interval) may be in one group only)")
        return self

    @property
    def spec(self) -> VenueSpec:
        return known_venues()[self.venue]

    @property
    def stream_groups(self) -> tuple[StreamGroup, ...]:
        """The groups, or the one group ``symbols × intervals`` of a classic entry."""
        if self.groups is not None:
            return self.groups
        assert self.symbols is not None  # guaranteed by _streams
        return (StreamGroup.model_construct(venue=self.venue, symbols=self.symbols,
                                            intervals=self.intervals),)

    @property
    def all_symbols(self) -> bool:
        """True when some group says ``symbols: all``: resolve them from exchangeInfo."""
        return any(g.symbols == "all" for g in self.stream_groups)

    @property
    def explicit_symbols(self) -> tuple[str, ...]:
        """Every symbol listed by name (in order, once each)."""
        out = dict.fromkeys(s for g in self.stream_groups if g.symbols != "all"
                            for s in g.symbols)
        return tuple(out)

    @property
    def all_intervals(self) -> tuple[str, ...]:
        """Every interval some group takes, ascending."""
        out = {i for g in self.stream_groups for i in g.intervals}
        return tuple(sorted(out, key=interval_width))

    def intervals_for(self, symbol: str) -> tuple[str, ...]:
        """The intervals configured for ``symbol`` (via its groups or a ``symbols: all``
        group); every interval of the feed for a symbol the config does not mention."""
        found = {i for g in self.stream_groups if g.symbols == "all" or symbol in g.symbols
                 for i in g.intervals}
        return tuple(sorted(found, key=interval_width)) or self.all_intervals

    @property
    def ws_base(self) -> str:
        """The WebSocket base URL to use: the override, else testnet or production."""
        spec = self.spec
        return self.ws_url or (spec.ws_testnet_base if self.testnet else spec.ws_base)

    @property
    def rest_base(self) -> str:
        spec = self.spec
        return self.rest_url or (spec.rest_testnet_base if self.testnet else spec.rest_base)

    def stream_keys(self, symbols: Sequence[str] | None = None) -> list[StreamKey]:
        """Every ``(venue, symbol, interval)`` of the feed, in config order, once each.

        ``symbols`` stands for ``all``: pass the venue's listing when a group says ``all``.
        For a classic entry (no groups) it replaces the configured symbols, as it always has."""
        if self.groups is None and symbols is not None:
            return [self._key(s, i) for s in symbols for i in self.intervals]
        if symbols is None and self.all_symbols:
            raise ConfigError(f"{self.venue}: symbols is 'all'; resolve them first")
        keys: dict[StreamKey, None] = {}
        for group in self.stream_groups:
            listed: Collection[str] = (symbols or ()) if group.symbols == "all" else group.symbols
            keys.update((self._key(s, i), None) for s in listed for i in group.intervals)
        return list(keys)

    def _key(self, symbol: str, interval: str) -> StreamKey:
        """The stream of a configured symbol, in the venue's canonical form (a venue that
        names markets by coin turns ``BTC/USDC:USDC`` into ``BTC``)."""
        return StreamKey(self.venue, canonical_symbol(self.venue, symbol), interval)

    def explicit_keys(self) -> list[StreamKey]:
        """The streams of the groups that list their symbols by name."""
        return [self._key(s, i) for g in self.stream_groups if g.symbols != "all"
                for s in g.symbols for i in g.intervals]


def _overlaps(groups: Sequence[StreamGroup]) -> list[str]:
    """One phrase per ``(symbol, interval)`` claimed by two groups."""
    out: list[str] = []
    every: dict[str, int] = {}  # interval -> the group taking it for every symbol
    for gi, group in enumerate(groups):
        if group.symbols == "all":
            for interval in group.intervals:
                if interval in every:
                    out.append(f"groups[{gi}] and groups[{every[interval]}] both take every "
                               f"symbol on {interval}")
                every.setdefault(interval, gi)
    seen: dict[tuple[str, str], int] = {}
    for gi, group in enumerate(groups):
        if group.symbols == "all":
            continue
        for symbol in group.symbols:
            for interval in group.intervals:
                if (symbol, interval) in seen:
                    out.append(f"{symbol} {interval} is in groups[{seen[symbol, interval]}] "
                               f"and groups[{gi}]")
                elif interval in every:
                    out.append(f"{symbol} {interval} in groups[{gi}] is already in "
                               f"groups[{every[interval]}] (symbols: all)")
                seen.setdefault((symbol, interval), gi)
    return out
