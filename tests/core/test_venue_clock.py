"""``VenueClock``: the venue's offset estimated from REST server times and WebSocket event
times, without an event loop (the estimator is Sans-I/O: every time is passed in)."""

from __future__ import annotations

import random

import pytest

from candlekeeper.core.clock import Clock
from candlekeeper.core.venue_clock import REST_WINDOW, WS_WINDOW, VenueClock


class HostClock:
    """A host clock the test sets by hand (the base a VenueClock corrects)."""

    def __init__(self, now_ms: int = 1_000_000, speed: float = 1.0) -> None:
        self.now_ms = now_ms
        self.speed = speed

    def time_ms(self) -> int:
        return self.now_ms

    def wall_seconds(self, venue_ms: float) -> float:
        return venue_ms / 1000.0 / self.speed


def ask(clock: VenueClock, host: HostClock, theta: int, out_ms: int, back_ms: int) -> None:
    """One REST round trip: the request takes ``out_ms``, the answer ``back_ms``; the venue
    stamps its server time (host + ``theta``) when the request arrives."""
    sent = host.now_ms
    host.now_ms += out_ms
    server = host.now_ms + theta
    host.now_ms += back_ms
    assert clock.add_server_time(server, sent, host.now_ms)
    host.now_ms += 1_000


def test_before_any_sample_it_is_the_host_clock() -> None:
    host = HostClock(speed=4.0)
    clock = VenueClock(host)
    assert clock.time_ms() == host.now_ms
    assert clock.speed == 4.0 and clock.wall_seconds(8_000) == 2.0
    est = clock.estimate()
    assert (est.offset_ms, est.source, est.rest_samples, est.ws_samples) == (0.0, "none", 0, 0)
    assert est.uncertainty_ms is None and not clock.synced and not clock.unsettled


def test_a_venue_clock_is_a_clock() -> None:
    def now(clock: Clock) -> int:
        return clock.time_ms()

    host = HostClock()
    clock = VenueClock(host)
    ask(clock, host, 15_000, 5, 5)
    assert now(clock) == clock.time_ms() == host.now_ms + 14_995


def test_one_rest_sample_midpoint_estimate_low_edge_decision() -> None:
    host = HostClock()
    clock = VenueClock(host)
    sent = host.now_ms
    # stamped 5 ms after sending by a venue 15 s ahead; answered 10 ms after sending
    assert clock.add_server_time(sent + 5 + 15_000, sent, sent + 10)
    est = clock.estimate()
    assert est.offset_ms == 15_000 and est.uncertainty_ms == 5 and est.source == "rest"
    assert clock.decision_offset_ms == 14_995 == est.decision_offset_ms
    assert clock.time_ms() == host.now_ms + 14_995
    assert clock.synced


@pytest.mark.parametrize("theta", [15_000, -15_000, 0, 123, -7])
def test_noisy_round_trips_estimate_within_the_uncertainty_and_never_ahead(theta: int) -> None:
    """Asymmetric, jittery delays: the estimate stays within its own uncertainty of the truth,
    and the decision offset is never above the truth (venue time never overestimated)."""
    rng = random.Random(theta)
    host = HostClock()
    clock = VenueClock(host)
    for _ in range(200):
        ask(clock, host, theta, rng.randint(1, 80), rng.randint(1, 80))
        est = clock.estimate()
        assert est.uncertainty_ms is not None
        assert abs(est.offset_ms - theta) <= est.uncertainty_ms
        assert clock.decision_offset_ms <= theta
        assert theta - clock.decision_offset_ms <= 2 * est.uncertainty_ms + 1


def test_a_slow_answer_does_not_move_the_estimate() -> None:
    host = HostClock()
    clock = VenueClock(host)
    for _ in range(4):
        ask(clock, host, 15_000, 10, 10)
    before = clock.estimate()
    ask(clock, host, 15_000, 5, 3_000)  # stuck on the way back: a wide, lopsided interval
    after = clock.estimate()
    assert (after.offset_ms, after.decision_offset_ms) == (before.offset_ms,
                                                           before.decision_offset_ms)
    assert after.rest_samples == 5


def test_a_single_wild_answer_is_held_not_applied() -> None:
    host = HostClock()
    clock = VenueClock(host)
    for _ in range(3):
        ask(clock, host, 15_000, 10, 10)
    ask(clock, host, 15_000 - 60_000, 10, 10)  # a cached or broken answer a minute off
    assert clock.offset_ms == 15_000 and clock.unsettled
    assert clock.estimate().rest_samples == 3
    ask(clock, host, 15_000, 10, 10)  # the next one agrees with the window: forgotten
    assert not clock.unsettled and clock.offset_ms == 15_000 and clock.steps == 0


def test_a_host_clock_step_is_followed_after_two_agreeing_answers() -> None:
    host = HostClock()
    clock = VenueClock(host)
    for _ in range(REST_WINDOW):
        ask(clock, host, 15_000, 10, 10)
    clock.add_event_time(host.now_ms + 14_990, host.now_ms)
    # NTP steps the host 20 s forward: the venue is now 5 s behind the host
    ask(clock, host, -5_000, 10, 10)
    assert clock.offset_ms == 15_000 and clock.unsettled
    ask(clock, host, -5_000, 10, 10)
    est = clock.estimate()
    assert clock.steps == 1 and not clock.unsettled
    assert est.offset_ms == -5_000 and est.rest_samples == 2 and est.ws_samples == 0
    assert clock.decision_offset_ms == -5_010


def test_an_answer_before_its_question_is_refused() -> None:
    clock = VenueClock(HostClock())
    assert not clock.add_server_time(5_000, 2_000, 1_999)
    assert clock.rejected == 1 and clock.estimate().source == "none"


def test_websocket_bounds_alone_estimate_from_below() -> None:
    """Event times only (no REST): the upper envelope of E - t, which is below the truth by the
    freshest frame's delay."""
    rng = random.Random(3)
    host = HostClock()
    clock = VenueClock(host)
    theta = -15_000
    for _ in range(WS_WINDOW):
        host.now_ms += 1_000
        age = rng.randint(3, 400)  # the newest frame was received this long before the tick
        clock.add_event_time(host.now_ms - age + theta, host.now_ms)
    est = clock.estimate()
    assert est.source == "ws" and est.uncertainty_ms is None and est.ws_samples == WS_WINDOW
    # below the truth by the 1/8 quantile (WS_TRIM) of the ages: about 50 ms of 3..400
    assert theta - 100 <= est.offset_ms <= theta - 3
    assert clock.decision_offset_ms == est.offset_ms
    assert clock.time_ms() == host.now_ms + clock.decision_offset_ms


def test_a_frame_stamped_in_the_future_is_trimmed_from_the_envelope() -> None:
    host = HostClock()
    clock = VenueClock(host)
    for i in range(16):
        host.now_ms += 1_000
        future = 3_600_000 if i == 5 else 0  # one frame claims to be an hour ahead
        clock.add_event_time(host.now_ms - 20 + future, host.now_ms)
    assert clock.offset_ms == -20


def test_a_websocket_bound_inside_the_rest_interval_tightens_it() -> None:
    host = HostClock()
    clock = VenueClock(host)
    ask(clock, host, 15_000, 100, 100)  # REST: [14_900, 15_100]
    assert clock.decision_offset_ms == 14_900
    clock.add_event_time(host.now_ms + 15_050, host.now_ms)  # proves >= 15_050
    assert clock.decision_offset_ms == 15_050 and clock.offset_ms == 15_050


def test_a_websocket_bound_far_above_rest_is_ignored() -> None:
    host = HostClock()
    clock = VenueClock(host)
    ask(clock, host, 15_000, 100, 100)
    clock.add_event_time(host.now_ms + 60_000, host.now_ms)  # contradicts REST by 45 s
    assert clock.decision_offset_ms == 14_900 and clock.offset_ms == 15_000


def test_a_websocket_bound_just_above_rest_is_capped_at_its_high_edge() -> None:
    host = HostClock()
    clock = VenueClock(host)
    ask(clock, host, 15_000, 100, 100)
    clock.add_event_time(host.now_ms + 15_150, host.now_ms)  # 50 ms above REST's high edge
    assert clock.decision_offset_ms == 15_100


def test_the_decision_offset_is_floored() -> None:
    host = HostClock()
    clock = VenueClock(host)
    sent = host.now_ms
    assert clock.add_server_time(sent - 15_000, sent, sent + 1)  # low edge -15_001
    assert clock.decision_offset_ms == -15_001
    clock2 = VenueClock(host)
    clock2.add_event_time(-5, 0)
    clock2.add_event_time(-4, 0)
    assert clock2.decision_offset_ms == -4


def test_memory_is_bounded() -> None:
    host = HostClock()
    clock = VenueClock(host, rest_window=4, ws_window=5)
    for _ in range(10_000):
        ask(clock, host, 1_000, 2, 2)
        clock.add_event_time(host.now_ms + 990, host.now_ms)
    est = clock.estimate()
    assert (est.rest_samples, est.ws_samples) == (4, 5)
    with pytest.raises(ValueError, match="at least one sample"):
        VenueClock(host, rest_window=0)
