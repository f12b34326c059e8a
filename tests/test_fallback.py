"""The transport mode's decisions (``fallback.py``) with an injected clock: which streams are
polled over REST, when, and what consumers are shown — no sockets, no event loop for the
decisions themselves."""

from __future__ import annotations

import logging

import pytest

from candlekeeper.core.events import StreamState, StreamStatus
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.fallback import REST_MODE, Fallback, poll_budget, say_budget
from candlekeeper.transport.options import TransportMode, TransportOptions
from candlekeeper.venues.registry import VENUES, get_spec

KEYS = [StreamKey("v", "BTCUSDT", "1m"), StreamKey("v", "ETHUSDT", "1m")]
OPTS = TransportOptions(fallback_after_s=30.0, fallback_breaks=3, recover_after_s=60.0)


class Rig:
    def __init__(self, mode: TransportMode) -> None:
        self.t = 1000.0
        self.polled: dict[StreamKey, bool] = {}
        self.shown: list[StreamStatus] = []
        self.fb = Fallback(mode, KEYS, OPTS, poll=self.polled.__setitem__,
                           show=self.shown.append, now_ms=lambda: 0, now=lambda: self.t)

    def say(self, key: StreamKey, state: StreamState, detail: str = "") -> bool:
        return self.fb.on_transport(StreamStatus(key, state, detail))

    def at(self, t: float) -> None:
        self.t = t
        self.fb.check()


async def test_websocket_mode_never_polls() -> None:
    r = Rig(TransportMode.WEBSOCKET)
    r.fb.start()
    r.say(KEYS[0], StreamState.DISCONNECTED)
    r.at(10_000.0)
    assert r.polled == {} and r.fb.uses_websocket


async def test_rest_mode_polls_every_stream_from_the_start() -> None:
    r = Rig(TransportMode.REST)
    r.fb.start()
    assert r.polled == dict.fromkeys(KEYS, True)
    assert [(s.state, s.detail) for s in r.shown] == [(StreamState.POLLING, REST_MODE)] * 2
    assert not r.fb.uses_websocket
    await r.fb.stop()


async def test_auto_polls_a_stream_the_websocket_never_made_live_and_recovers() -> None:
    r = Rig(TransportMode.AUTO)
    r.fb.start()
    await r.fb.stop()  # drive check() by hand
    a, b = KEYS
    assert r.say(a, StreamState.SUBSCRIBING)
    assert r.say(b, StreamState.LIVE)
    r.at(1029.0)
    assert r.polled == {}
    assert r.say(a, StreamState.DISCONNECTED, "WebSocket upgrade refused: HTTP 451")
    r.at(1030.5)  # a never went live in 30 s: polled; b is fine
    assert r.polled == {a: True}
    assert r.shown[-1].state is StreamState.POLLING and "HTTP 451" in r.shown[-1].detail
    # while polled, the transport's states are recorded, not shown
    assert not r.say(a, StreamState.LIVE)
    r.at(1060.0)
    assert r.polled == {a: True}  # live for 29.5 s: not yet
    r.at(1091.0)
    assert r.polled == {a: False}
    assert r.shown[-1].state is StreamState.LIVE and r.shown[-1].detail == "websocket back"
    assert (r.fb.fallbacks, r.fb.recoveries) == (1, 1)


async def test_auto_polls_a_stream_whose_connection_keeps_breaking() -> None:
    r = Rig(TransportMode.AUTO)
    r.fb.start()
    await r.fb.stop()
    a = KEYS[0]
    for i in range(3):  # live for a moment, then dropped, three times within 30 s
        r.t = 1000.0 + i * 5
        r.say(a, StreamState.LIVE)
        r.t += 1
        r.say(a, StreamState.DISCONNECTED)
        r.t += 0.5
        r.say(a, StreamState.LIVE)
    r.at(r.t)
    assert r.polled == {a: True}
    assert "broke 3 times" in r.shown[-1].detail


async def test_a_silent_subscription_falls_back_too() -> None:
    r = Rig(TransportMode.AUTO)
    r.fb.start()
    await r.fb.stop()
    a = KEYS[0]
    r.say(a, StreamState.SUBSCRIBED)
    r.say(a, StreamState.SILENT, "no first message for 65 s")
    r.at(1031.0)
    assert r.polled.get(a) is True


@pytest.mark.parametrize("venue", VENUES)
def test_poll_budget_says_what_the_venue_sustains(venue: str) -> None:
    spec = get_spec(venue)
    few = [StreamKey(venue, f"S{i}USDT", "1m") for i in range(10)]
    need, allowed, sustains = poll_budget(spec, few)
    assert need < allowed and sustains["1m"] > 10
    many = [StreamKey(venue, f"S{i}USDT", "1m") for i in range(sustains["1m"] + 1)]
    need, allowed, _ = poll_budget(spec, many)
    assert need > allowed


async def test_a_stream_waiting_for_its_first_frame_after_the_ack_is_not_polled() -> None:
    """A quiet symbol's stream: acknowledged, then nothing for 50 s (its first trade, or its
    closing frame, comes later). Not a failure — the watchdog would call it SILENT if its
    first frame never came, and only then does the stream fall back (at once: it has been
    down since before its subscription)."""
    r = Rig(TransportMode.AUTO)
    r.fb.start()
    await r.fb.stop()
    a = KEYS[0]
    r.say(a, StreamState.SUBSCRIBING)
    r.say(a, StreamState.SUBSCRIBED)
    r.at(1050.0)
    assert a not in r.polled  # (the other stream, never heard of, is polled)
    r.say(a, StreamState.SILENT, "no first message for 65 s")
    r.at(1066.0)
    assert r.polled.get(a) is True


def test_the_start_line_counts_only_the_polls_share_of_the_budget(
        caplog: pytest.LogCaptureFixture) -> None:
    """Polls may use ``poll_budget_share`` of the venue's budget (the rest stays for fills):
    streams the whole budget would sustain but half of it does not get the warning."""
    venue = VENUES[0]
    spec = get_spec(venue)
    _, whole, sustains = poll_budget(spec, [StreamKey(venue, "S0USDT", "1m")])
    _, half, _ = poll_budget(spec, [StreamKey(venue, "S0USDT", "1m")], 0.5)
    assert half == pytest.approx(whole / 2)
    keys = [StreamKey(venue, f"S{i}USDT", "1m") for i in range(sustains["1m"] * 3 // 4)]
    with caplog.at_level(logging.INFO, "candlekeeper.fallback"):
        assert say_budget(venue, spec, keys)
        assert not say_budget(venue, spec, keys, 0.5)
    warning = caplog.records[-1].getMessage()
    assert caplog.records[-1].levelno == logging.WARNING
    assert f"but the polls may use {half:.0f} (50% of the venue's budget)" in warning, warning
