"""Pure policy: backoff delays, error classification, pacing, watchdog rules, sharding."""

from __future__ import annotations

import itertools
import random
import socket

import pytest

from candlekeeper.core.clock import ScaledClock, SystemClock
from candlekeeper.core.events import StreamState
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError, DecodeError
from candlekeeper.transport.backoff import Verdict, backoff_delays, classify, describe
from candlekeeper.transport.base import ConnectError, ConnectionLost
from candlekeeper.transport.options import TransportOptions
from candlekeeper.transport.pacing import RatePacer
from candlekeeper.transport.pool import shard
from candlekeeper.transport.watchdog import (
    StreamSlot,
    check,
    flow_after_s,
    make_slot,
    stall_after_ms,
)
from candlekeeper.venues.registry import get_spec

from .helpers import keys


def test_backoff_without_jitter_doubles_from_one_second_and_caps_at_sixty() -> None:
    delays = list(itertools.islice(backoff_delays(jitter=0), 10))
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0]


def test_backoff_is_unlimited() -> None:
    delays = list(itertools.islice(backoff_delays(jitter=0), 10_000))
    assert len(delays) == 10_000
    assert set(delays[6:]) == {60.0}


def test_backoff_jitter_stays_within_fraction_below_base_and_never_exceeds_cap() -> None:
    rng = random.Random(7)
    bases = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0] + [60.0] * 200
    delays = list(itertools.islice(backoff_delays(jitter=0.2, rng=rng), len(bases)))
    for base, delay in zip(bases, delays, strict=True):
        assert base * 0.8 <= delay <= base
    assert max(delays) <= 60.0
    assert len(set(delays)) == len(delays)  # really jittered


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    a = list(itertools.islice(backoff_delays(rng=random.Random(1)), 8))
    b = list(itertools.islice(backoff_delays(rng=random.Random(1)), 8))
    assert a == b


def test_backoff_reset_is_a_new_generator() -> None:
    gen = backoff_delays(jitter=0)
    assert [next(gen) for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    gen = backoff_delays(jitter=0)  # what the session does after a healthy connection
    assert next(gen) == 1.0


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"factor": 0.5}, "factor"), ({"jitter": 1.5}, "jitter"), ({"initial_s": -1}, ">= 0"),
])
def test_backoff_rejects_bad_parameters(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        next(backoff_delays(**kwargs))


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError("reset"),
    socket.gaierror(-3, "Temporary failure in name resolution"),
    TimeoutError(),
    ConnectError("upgrade refused: HTTP 404", status=404),
    ConnectionLost("no reply to SUBSCRIBE"),
    DecodeError("garbage"),
    EOFError(),
])
def test_network_and_venue_failures_are_retried(exc: BaseException) -> None:
    assert classify(exc) is Verdict.RETRY


@pytest.mark.parametrize("exc", [ConfigError("invalid WebSocket URL"), TypeError("bug"),
                                 AttributeError("bug")])
def test_configuration_and_programming_errors_are_fatal(exc: BaseException) -> None:
    assert classify(exc) is Verdict.FATAL


def test_describe_gives_one_line() -> None:
    assert describe(ConnectError("cannot connect to ws://x: refused")) == \
        "cannot connect to ws://x: refused"
    assert describe(TimeoutError()) == "timed out"
    assert describe(ConnectionResetError("a\nb")) == "ConnectionResetError: a"
    assert describe(EOFError()) == "EOFError"


def test_pacer_spaces_messages_and_forced_messages_share_the_budget() -> None:
    pacer = RatePacer(8.0)
    assert pacer.delay(100.0) == 0.0
    pacer.take(100.0)
    assert pacer.delay(100.0) == pytest.approx(0.125)
    assert pacer.delay(100.125) == 0.0
    pacer.take(100.125)
    pacer.force(100.13)  # a pong: goes out now, pushes the next subscribe back
    assert pacer.delay(100.13) == pytest.approx(0.245)
    with pytest.raises(ValueError, match="rate"):
        RatePacer(0)


def test_stall_threshold_is_interval_capped_at_a_minute_plus_grace() -> None:
    assert stall_after_ms("1s", 5_000) == 6_000
    assert stall_after_ms("1m", 5_000) == 65_000
    assert stall_after_ms("1h", 5_000) == 65_000
    slot = make_slot(StreamKey("v", "BTCUSDT", "1m"), "btcusdt@kline_1m",
                     ScaledClock(speed=1000), 5_000)
    assert slot.stall_after_s == pytest.approx(0.065)
    assert make_slot(slot.key, slot.stream, SystemClock(), 5_000).stall_after_s == 65.0


def test_stall_threshold_never_undercuts_the_venues_real_push_cadence() -> None:
    """Against a 60x simulator a 5m stream's 65 s venue threshold is 1.08 s of wall time, but
    a venue pushing every 2 s (real time), and quiet for up to 2 s after a close, cannot be
    heard more often than that: the threshold is that quiet time plus four pushes. At speed 1
    the venue-time rule binds as before."""
    key = StreamKey("v", "BTCUSDT", "5m")
    fast = make_slot(key, "s", ScaledClock(speed=60), 5_000, cadence_ms=2_000,
                     close_delay_ms=2_000)
    assert fast.stall_after_s == pytest.approx(10.0)
    real = make_slot(key, "s", SystemClock(), 5_000, cadence_ms=2_000, close_delay_ms=2_000)
    assert real.stall_after_s == 65.0


def test_a_venue_that_pushes_only_with_trades_owes_a_quiet_stream_nothing_until_its_close(
) -> None:
    """Binance pushes a kline stream only when a trade changed the candle; the long tail of a
    whole universe trades a few times a minute, so its 1h streams are silent for minutes while
    healthy. Such a stream is overdue only when its close frame is: a whole interval plus grace
    (venue time) plus the venue's real close-frame delay. A venue that pushes at its cadence
    whatever happens keeps the one-minute rule."""
    assert stall_after_ms("1h", 5_000, pushes_when_quiet=False) == 3_605_000
    assert stall_after_ms("1m", 5_000, pushes_when_quiet=False) == 65_000
    assert stall_after_ms("1h", 5_000, pushes_when_quiet=True) == 65_000
    key = StreamKey("v", "QUIETUSDT", "1h")
    quiet = make_slot(key, "s", SystemClock(), 5_000, cadence_ms=250, close_delay_ms=2_000,
                      pushes_when_quiet=False)
    assert quiet.stall_after_s == pytest.approx(3_607.0)
    cadence = make_slot(key, "s", SystemClock(), 5_000, cadence_ms=1_000, close_delay_ms=2_000,
                        pushes_when_quiet=True)
    assert cadence.stall_after_s == 65.0
    # the watchdog applies it: 10 quiet minutes on a 1h stream are not a stall
    quiet.state, quiet.since_wall = StreamState.LIVE, 0.0
    quiet.count = 1
    assert check(quiet, 1.0) is None
    assert check(quiet, 601.0) is None
    assert check(quiet, 3_609.0) is StreamState.STALLED
    # a rotation does not hold two connections for an hour waiting for a quiet stream
    assert flow_after_s(SystemClock(), 5_000, 250, 2_000) == 65.0


def test_the_registered_venues_state_whether_they_push_quiet_streams() -> None:
    """Binance pushes only with trades (measured, protocols.md §A.4); BingX every second
    (documented); the others do not promise quiet pushes, so the safe assumption is no."""
    assert not get_spec("binance-usdm").pushes_when_quiet
    assert not get_spec("binance-spot").pushes_when_quiet
    assert get_spec("bingx-swap").pushes_when_quiet


def test_watchdog_flags_silent_then_live_then_stalled() -> None:
    slot = StreamSlot(StreamKey("v", "BTCUSDT", "1m"), "x", stall_after_s=10.0)
    assert check(slot, 0.0) is None  # DISCONNECTED is not watched
    slot.state, slot.since_wall = StreamState.SUBSCRIBED, 100.0
    assert check(slot, 109.9) is None
    assert check(slot, 110.0) is StreamState.SILENT
    slot.state, slot.since_wall = StreamState.LIVE, 111.0  # first frame arrived
    slot.count += 1
    assert check(slot, 112.0) is None  # progress noticed at 112
    slot.count += 1
    assert check(slot, 121.0) is None  # progress noticed at 121
    assert check(slot, 130.9) is None
    assert check(slot, 131.0) is StreamState.STALLED


def test_shard_balances_sorts_and_respects_the_limit() -> None:
    ks = keys(2500)
    parts = shard(list(reversed(ks)), 1024)
    assert [len(p) for p in parts] == [834, 833, 833]
    assert [k for p in parts for k in p] == sorted(ks)
    assert shard(ks + ks[:10], 1024) == parts  # duplicates removed, stable
    assert shard([], 1024) == []
    assert [len(p) for p in shard(keys(1024), 1024)] == [1024]
    assert [len(p) for p in shard(keys(1025), 1024)] == [513, 512]


def test_options_validate() -> None:
    assert TransportOptions().backoff_initial_s == 1.0
    assert TransportOptions().backoff_max_s == 60.0
    with pytest.raises(ValueError, match="ack_timeout_s"):
        TransportOptions(ack_timeout_s=0)
    with pytest.raises(ValueError, match="jitter"):
        TransportOptions(backoff_jitter=2)
