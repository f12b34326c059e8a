"""The knobs one simulated venue runs with, and where their defaults come from.

Every :class:`VenueOptions` field has exactly one source of truth for its default:

* a venue **fact** comes from the venue's :class:`~candlekeeper.venues.contract.VenueSpec` (push
  cadence, server ping period, incoming-message rate, streams per connection, connection
  lifetime, REST budgets);
* a **simulator choice** comes from the personality's
  :class:`~candlekeeper.sim.personality.Behaviour` (pong timeout, ban length, closing-frame
  delay, ...).

``Simulator(...)`` overrides any of them per run, with one value for every venue or a
``{venue: value}`` mapping; :func:`resolve` applies those overrides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

from candlekeeper.core.clock import ScaledClock
from candlekeeper.core.intervals import INTERVAL_MS
from candlekeeper.errors import ConfigError
from candlekeeper.sim.personality import Behaviour
from candlekeeper.venues.contract import RestWindow, VenueSpec

T = TypeVar("T")

#: a client whose unread backlog exceeds this is disconnected, as an exchange does
SLOW_CONSUMER_BYTES = 64 * 1024 * 1024


class VenueOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Behaviour knobs of one simulated venue, resolved (see the module docstring)."""

    update_interval_s: float  # forming-candle cadence, wall seconds
    ping_interval_s: float | None  # None: the server never pings
    pong_timeout_s: float
    control_rate: float  # incoming messages per rolling second; inf: not enforced
    max_streams: int
    connection_lifetime_s: float | None  # venue seconds; None: never cut
    #: per-IP WebSocket handshakes in wall-clock windows; a handshake over one gets HTTP 429
    connect_limits: tuple[RestWindow, ...]
    #: per-IP incoming WebSocket messages in wall-clock windows, across every connection; a
    #: message over one is ignored (no reply), as "a client that sends many subscribes at once
    #: receives nothing"
    ip_message_limits: tuple[RestWindow, ...]
    #: per-IP REST budgets in wall-clock windows, the first one the venue's headline budget
    rest_limits: tuple[RestWindow, ...]
    ban_s: float
    close_delay_s: tuple[float, float]
    rest_final_delay_ms: int
    #: wall seconds without a frame from the server before it closes the connection (None:
    #: never); the code and reason are the personality's (``Behaviour.idle_close``)
    idle_close_s: float | None
    stale_last_push: bool
    legacy_routes_push_klines: bool
    slow_consumer_bytes: int = SLOW_CONSUMER_BYTES

    def __post_init__(self) -> None:
        if not self.update_interval_s > 0:
            raise ConfigError(f"update_interval_s must be > 0, got {self.update_interval_s}")
        lo, hi = self.close_delay_s
        if not 0 <= lo <= hi:
            raise ConfigError(f"bad close_delay_s {self.close_delay_s}: expected 0 <= lo <= hi")
        if self.idle_close_s is not None and not self.idle_close_s > 0:
            raise ConfigError(f"bad idle_close_s {self.idle_close_s}: expected > 0")
        if self.rest_final_delay_ms < 0:
            raise ConfigError(f"bad rest_final_delay_ms {self.rest_final_delay_ms}: expected >= 0")
        if not self.rest_limits:
            raise ConfigError("a simulated venue needs at least one REST window")


def defaults(spec: VenueSpec, behaviour: Behaviour) -> VenueOptions:
    """The real venue's numbers and the personality's choices, before any override."""
    return VenueOptions(
        update_interval_s=spec.update_cadence_ms / 1000,
        ping_interval_s=spec.server_ping_interval_s,
        pong_timeout_s=behaviour.pong_timeout_s,
        control_rate=(spec.control_messages_per_second if behaviour.enforces_control_rate
                      else math.inf),
        max_streams=spec.max_streams_per_connection,
        connection_lifetime_s=spec.connection_lifetime_s,
        connect_limits=spec.connect_limits,
        ip_message_limits=spec.ip_message_limits,
        rest_limits=spec.rest_limits,
        ban_s=behaviour.ban_s,
        close_delay_s=behaviour.close_delay_s,
        rest_final_delay_ms=behaviour.rest_final_delay_ms,
        idle_close_s=None if behaviour.idle_close is None else behaviour.idle_close.seconds,
        stale_last_push=behaviour.stale_last_push,
        legacy_routes_push_klines=behaviour.legacy_routes_push_klines)


def pick(value: T | Mapping[str, T] | None, venue: str) -> T | None:
    """One override for ``venue``: the value itself, its entry in a mapping, or None."""
    if isinstance(value, Mapping):
        return value.get(venue)
    return value


def scaled_windows(windows: tuple[RestWindow, ...], limit: int | None,
                   seconds: float | None) -> tuple[RestWindow, ...]:
    """Replace the first (headline) REST window's limit and/or length and scale every other
    window by the same factors, so a venue with several windows keeps their proportions."""
    first = windows[0]
    lf = 1.0 if limit is None else limit / first.limit
    sf = 1.0 if seconds is None else seconds / first.seconds
    return tuple(RestWindow(w.seconds * sf, max(1, round(w.limit * lf))) for w in windows)


def resolve(venue: str, spec: VenueSpec, behaviour: Behaviour,
            overrides: Mapping[str, Any]) -> VenueOptions:
    """:func:`defaults` with ``overrides`` applied: each is None (keep the default), one value
    for every venue, or a ``{venue: value}`` mapping. ``rest_weight_limit`` and
    ``rest_window_s`` reshape the REST windows (:func:`scaled_windows`)."""
    opts = defaults(spec, behaviour)
    changes: dict[str, Any] = {}
    for name, value in overrides.items():
        v = pick(value, venue)
        if v is None or name in ("rest_weight_limit", "rest_window_s"):
            continue
        if name not in VenueOptions.__struct_fields__:
            raise TypeError(f"unknown venue option {name!r}")
        changes[name] = v
    limit = pick(overrides.get("rest_weight_limit"), venue)
    window = pick(overrides.get("rest_window_s"), venue)
    if limit is not None or window is not None:
        changes["rest_limits"] = scaled_windows(opts.rest_limits, limit, window)
    return msgspec.structs.replace(opts, **changes) if changes else opts


def paced_cadence(cadence_s: float, clock: ScaledClock, intervals: tuple[str, ...],
                  min_pushes: int) -> float:
    """A push cadence that gives at least ``min_pushes`` pushes per candle of the shortest
    interval at the clock's speed-up.

    A venue's push cadence is wall time (the exchange's "update speed"). At a speed-up the
    candles shrink in wall time but the cadence does not, so a venue pushing every second
    would, at 60x, push once per 1m candle: a client then sees one (already stale) value per
    candle, a regime that never happens live, and a venue that has no closed flag learns of
    every close one candle late. Keeping at least ``min_pushes`` per candle keeps the ratio a
    client meets in reality in the same range while leaving the cadence untouched whenever it
    already is fast enough (always at speed 1)."""
    shortest = min(INTERVAL_MS[i] for i in intervals)
    return min(cadence_s, clock.wall_seconds(shortest) / min_pushes)
