"""How the generic simulator finds venues and where its numbers come from: every registered venue
has a personality, built from its registered spec; the generic modules name no venue; a venue's
defaults are its spec's facts and its personality's choices; per-run overrides and the push
pacing rule."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import candlekeeper.sim
from candlekeeper.core.clock import ScaledClock
from candlekeeper.errors import ConfigError
from candlekeeper.sim import Simulator
from candlekeeper.sim.options import defaults, paced_cadence, resolve, scaled_windows
from candlekeeper.sim.venues import personality_for, simulated_venues
from candlekeeper.venues import registry
from candlekeeper.venues.contract import RestWindow

SIM = Path(candlekeeper.sim.__file__).parent


def test_every_registered_venue_has_a_personality_built_from_its_spec() -> None:
    assert simulated_venues() == registry.VENUES
    for venue in registry.VENUES:
        persona = personality_for(venue)
        assert persona.spec is registry.get_spec(venue)
    with pytest.raises(ConfigError, match="no venue 'kraken'"):
        personality_for("kraken")


def test_personalities_live_in_the_folder_of_their_client_package() -> None:
    for venue in registry.VENUES:
        package = registry.package_of(venue)
        module = type(personality_for(venue)).__module__
        assert module.startswith(f"candlekeeper.sim.venues.{package}."), module


@pytest.mark.parametrize("venue", registry.VENUES)
def test_defaults_are_the_spec_facts_and_the_personality_choices(venue: str) -> None:
    persona = personality_for(venue)
    spec, behaviour = persona.spec, persona.behaviour
    opts = defaults(spec, behaviour)
    assert opts.update_interval_s == spec.update_cadence_ms / 1000
    assert opts.ping_interval_s == spec.server_ping_interval_s
    assert opts.max_streams == spec.max_streams_per_connection
    assert opts.connection_lifetime_s == spec.connection_lifetime_s
    assert opts.rest_limits == spec.rest_limits
    assert opts.control_rate == (spec.control_messages_per_second
                                 if behaviour.enforces_control_rate else math.inf)
    assert (opts.pong_timeout_s, opts.ban_s, opts.close_delay_s, opts.stale_last_push) == (
        behaviour.pong_timeout_s, behaviour.ban_s, behaviour.close_delay_s,
        behaviour.stale_last_push)


def test_a_simulator_runs_with_those_defaults_unless_told_otherwise() -> None:
    first, *others = registry.VENUES
    sim = Simulator(update_interval_s={first: 0.5}, ban_s=7.0, rest_weight_limit={first: 10})
    for venue in registry.VENUES:
        spec = registry.get_spec(venue)
        opts = sim.server(venue).opts
        assert opts.ban_s == 7.0
        if venue == first:
            assert opts.update_interval_s == 0.5 and opts.rest_limits[0].limit == 10
        else:
            assert opts.update_interval_s == spec.update_cadence_ms / 1000
            assert opts.rest_limits == spec.rest_limits
    assert others  # the mapping form reached only the venue it named


def test_rest_overrides_keep_the_proportions_of_every_window() -> None:
    windows = (RestWindow(60.0, 1000), RestWindow(10.0, 500))
    assert scaled_windows(windows, 20, None) == (RestWindow(60.0, 20), RestWindow(10.0, 10))
    assert scaled_windows(windows, None, 6.0) == (RestWindow(6.0, 1000), RestWindow(1.0, 500))
    venue = registry.VENUES[0]
    persona = personality_for(venue)
    opts = resolve(venue, persona.spec, persona.behaviour,
                   {"rest_weight_limit": 5, "rest_window_s": {venue: 2.0}, "ban_s": None})
    assert opts.rest_limits[0] == RestWindow(2.0, 5)
    with pytest.raises(TypeError, match="unknown venue option"):
        resolve(venue, persona.spec, persona.behaviour, {"colour": 1})


def test_paced_cadence_keeps_enough_pushes_per_candle() -> None:
    # speed 60: a 1m candle lasts 1 s of wall time; 4 pushes per candle -> at most 0.25 s
    fast = ScaledClock(1_700_000_000_000, 60.0)
    assert paced_cadence(1.0, fast, ("1m", "5m"), 4) == 0.25
    assert paced_cadence(2.0, fast, ("5m", "1m"), 4) == 0.25
    assert paced_cadence(0.1, fast, ("1m",), 4) == 0.1  # already fast enough: untouched
    real = ScaledClock(1_700_000_000_000, 1.0)
    assert paced_cadence(2.0, real, ("1m",), 4) == 2.0  # at speed 1 nothing changes
    first, second = registry.VENUES[:2]
    sim = Simulator(venues=(first, second), intervals=("1m",), speed=60.0,
                    min_pushes_per_candle=4, update_interval_s={second: 0.9})
    spec = registry.get_spec(first)
    assert sim.server(first).opts.update_interval_s == min(spec.update_cadence_ms / 1000, 0.25)
    assert sim.server(second).opts.update_interval_s == 0.9  # an explicit value wins
    with pytest.raises(ConfigError, match="min_pushes_per_candle"):
        Simulator(min_pushes_per_candle=0)


def test_unknown_venues_and_ports_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="no venue 'kraken'"):
        Simulator(venues=("kraken",))
    with pytest.raises(ConfigError, match="no venue 'kraken'"):
        Simulator(ports={"kraken": 9000})
