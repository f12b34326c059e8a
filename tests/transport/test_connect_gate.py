"""New connections paced under a venue's per-IP handshake limits (``VenueSpec.connect_limits``).

The gate itself is pure and tested with explicit times; then a pool that needs seven connections
to OKX (3 handshakes per second per IP) opens them all against the simulator, which refuses a
handshake over the limit with HTTP 429 exactly as a venue would — none is refused, and a burst
that ignores the gate is refused, so the simulator really does enforce it.
"""

from __future__ import annotations

import msgspec
import pytest
from picows import WSHandshakeError, WSListener, ws_connect

from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sim import Simulator
from candlekeeper.transport.connect_gate import WINDOW_MARGIN, ConnectGate, gate_for
from candlekeeper.transport.options import TransportOptions
from candlekeeper.transport.pool import ConnectionPool
from candlekeeper.venues.contract import RestWindow
from candlekeeper.venues.registry import get_spec, venue

from .helpers import Recorder, seconds_until_live

OKX = "okx-swap"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "LTCUSDT")


def test_a_burst_is_granted_up_to_the_limit_then_one_window_later() -> None:
    gate = ConnectGate((RestWindow(1.0, 3),))
    waits = [gate.reserve(100.0) for _ in range(7)]
    step = 1.0 * (1 + WINDOW_MARGIN)
    assert waits == pytest.approx([0, 0, 0, step, step, step, 2 * step])
    assert gate.delayed == 4


def test_every_window_holds_and_an_idle_gate_grants_at_once() -> None:
    gate = ConnectGate((RestWindow(1.0, 2), RestWindow(10.0, 3)), margin=0.0)
    assert [gate.reserve(0.0) for _ in range(4)] == pytest.approx([0, 0, 1.0, 10.0])
    # 11 s later the short window is free but the long one still holds the grants at 1 and 10
    assert gate.reserve(21.0) == pytest.approx(0.0)
    assert gate.reserve(21.0) == pytest.approx(0.0)
    assert gate.reserve(21.0) == pytest.approx(1.0)


def test_grants_never_go_back_in_time() -> None:
    gate = ConnectGate((RestWindow(1.0, 3),), margin=0.0)
    granted = [t + gate.reserve(t) for t in (0.0, 0.0, 0.0, 0.0, 0.5, 0.9, 3.0, 3.0)]
    assert granted == sorted(granted)
    for i, t in enumerate(granted):  # no one-second window ever holds more than three
        assert sum(1 for u in granted if t - 1.0 < u <= t) <= 3, (i, granted)


def test_one_gate_per_venue_and_none_without_limits() -> None:
    spec = get_spec(OKX)
    assert gate_for(spec) is gate_for(spec)
    assert gate_for(msgspec.structs.replace(spec, connect_limits=())) is None
    with pytest.raises(ValueError, match="bad connection limits"):
        ConnectGate((RestWindow(1.0, 0),))


async def test_a_pool_of_seven_connections_to_okx_is_never_refused() -> None:
    spec = get_spec(OKX)
    assert spec.connect_limits == (RestWindow(1.0, 3),)
    async with Simulator(venues=(OKX,), symbols=SYMBOLS, intervals=("1m",), speed=60.0,
                         history=5) as sim:
        rec = Recorder()
        keys = [StreamKey(OKX, s, "1m") for s in SYMBOLS]
        codec = venue(OKX).stream_codec(spec)
        pool = ConnectionPool(codec, keys, rec, ws_base=sim.ws_base(OKX), clock=sim.clock,
                              options=TransportOptions(max_streams_per_connection=1))
        assert len(pool.sessions) == len(SYMBOLS)
        took = await seconds_until_live(pool, rec, len(SYMBOLS), timeout=20)
        stats = sim.stats()[OKX]
    assert stats.handshakes_refused == 0
    assert stats.connections_total == len(SYMBOLS)
    assert took >= 2.0  # seven handshakes at three per second span at least two seconds


async def test_the_simulator_refuses_a_burst_over_the_limit() -> None:
    async with Simulator(venues=(OKX,), symbols=SYMBOLS[:1], intervals=("1m",),
                         history=5) as sim:
        url = sim.ws_base(OKX)

        async def one() -> int:
            try:
                transport, _ = await ws_connect(WSListener, url)
            except WSHandshakeError as exc:
                return exc.response.status if exc.response is not None else -1
            transport.disconnect()
            return 101

        statuses = [await one() for _ in range(6)]
        refused = sim.stats()[OKX].handshakes_refused
    assert statuses[:3] == [101, 101, 101]
    assert 429 in statuses[3:]
    assert refused == statuses.count(429)


def test_more_connections_than_the_venue_allows_per_ip_is_refused_at_once() -> None:
    from candlekeeper.errors import ConfigError

    spec = msgspec.structs.replace(get_spec(OKX), max_connections_per_ip=2)
    keys = [StreamKey(OKX, s, "1m") for s in SYMBOLS[:3]]
    codec = venue(OKX).stream_codec(spec)
    with pytest.raises(ConfigError, match=r"3 streams need 3 connections at 1 streams each, "
                                          r"but the venue allows 2 per IP"):
        ConnectionPool(codec, keys, Recorder(), ws_base="ws://127.0.0.1:9/ws/v5/business",
                       options=TransportOptions(max_streams_per_connection=1))
    ConnectionPool(codec, keys[:2], Recorder(), ws_base="ws://127.0.0.1:9/ws/v5/business",
                   options=TransportOptions(max_streams_per_connection=1))  # two fit
