"""Outgoing messages paced under a venue's per-IP limit across all connections
(``VenueSpec.ip_message_limits``: Hyperliquid allows 2000 a minute per IP).

The window pacer is pure and tested with explicit times; then a pool of three connections to the
simulated Hyperliquid, whose per-IP limit is shrunk to 10 messages per 2 s on both sides,
subscribes 12 streams (one subscription per message) without a message ignored; and a client
that ignores the limit gets no answer to the messages over it, so the simulator really does
enforce it.
"""

from __future__ import annotations

import asyncio
import json
import math

import aiohttp
import msgspec
import pytest

from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sim import Simulator
from candlekeeper.transport.options import TransportOptions
from candlekeeper.transport.pacing import (
    RatePacer,
    SharedPacer,
    WindowPacer,
    ip_pacer_for,
    pacer_for,
)
from candlekeeper.transport.pool import ConnectionPool
from candlekeeper.venues.contract import RestWindow
from candlekeeper.venues.registry import VENUES, get_spec, venue

from .helpers import Recorder, seconds_until_live

HL = "hyperliquid-perp"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT")
SMALL = (RestWindow(2.0, 10),)


def test_a_window_holds_its_limit_and_frees_a_place_as_the_oldest_leaves() -> None:
    pacer = WindowPacer((RestWindow(1.0, 3),), margin=0.0)
    for t in (0.0, 0.1, 0.2):
        assert pacer.delay(t) == 0.0
        pacer.take(t)
    assert pacer.delay(0.3) == pytest.approx(0.7)  # the one sent at 0.0 leaves at 1.0
    assert pacer.delay(1.0) == 0.0
    pacer.take(1.0)
    assert pacer.delay(1.05) == pytest.approx(0.05)  # now the one of 0.1 is the oldest


def test_forced_messages_count_and_the_fraction_and_margin_apply() -> None:
    pacer = WindowPacer((RestWindow(60.0, 2000),), fraction=0.8)
    assert pacer.windows == ((pytest.approx(66.0), 1600),)
    small = WindowPacer((RestWindow(1.0, 2),), margin=0.0)
    small.force(0.0)  # a pong: sent whatever the count
    small.force(0.0)
    assert small.delay(0.5) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="bad message limits"):
        WindowPacer((RestWindow(1.0, 0),))


def test_a_connection_waits_for_its_own_rate_and_the_ips_window() -> None:
    shared = WindowPacer((RestWindow(1.0, 2),), margin=0.0)
    a, b = SharedPacer(RatePacer(10.0), shared), SharedPacer(RatePacer(10.0), shared)
    a.take(0.0)
    assert a.delay(0.0) == pytest.approx(0.1)  # its own spacing
    assert b.delay(0.0) == 0.0
    b.take(0.0)
    assert b.delay(0.5) == pytest.approx(0.5)  # the IP's window is full until 1.0
    assert a.delay(0.5) == pytest.approx(0.5)


def test_one_pacer_per_venue_and_none_without_a_limit() -> None:
    spec = get_spec(HL)
    assert spec.ip_message_limits == (RestWindow(60.0, 2000),)
    assert ip_pacer_for(spec, 0.8) is ip_pacer_for(spec, 0.8)
    assert isinstance(pacer_for(spec, 4.0, 0.8), SharedPacer)
    for v in VENUES:
        if not get_spec(v).ip_message_limits:
            assert isinstance(pacer_for(get_spec(v), 4.0, 0.8), RatePacer)


async def test_a_pool_of_three_connections_keeps_to_the_ips_limit() -> None:
    spec = msgspec.structs.replace(get_spec(HL), ip_message_limits=SMALL)
    intervals = ("1m", "5m", "15m")
    async with Simulator(venues=(HL,), symbols=SYMBOLS, intervals=intervals, speed=60.0,
                         history=5, ip_message_limits=SMALL) as sim:
        rec = Recorder()
        keys = [StreamKey(HL, s, i) for s in SYMBOLS for i in intervals]
        codec = venue(HL).stream_codec(spec)
        pool = ConnectionPool(codec, keys, rec, ws_base=sim.ws_base(HL), clock=sim.clock,
                              options=TransportOptions(max_streams_per_connection=4))
        assert len(pool.sessions) == 3
        took = await seconds_until_live(pool, rec, len(keys), timeout=30)
        stats = sim.stats()[HL]
    assert stats.messages_ignored == 0
    assert stats.control_messages >= len(keys)
    # 12 subscribes at 8 per 2.2 s (80 % of the limit, the window 10 % wider): the last
    # ones wait for the first to leave the window
    assert took >= 2.0


async def test_the_simulator_ignores_messages_over_the_ips_limit() -> None:
    limit = (RestWindow(30.0, 4),)
    intervals = ("1m", "5m", "15m")
    async with Simulator(venues=(HL,), symbols=SYMBOLS[:2], intervals=intervals, history=5,
                         ip_message_limits=limit, control_rate=math.inf) as sim, \
            aiohttp.ClientSession() as http:
        ws = await http.ws_connect(sim.ws_base(HL))
        for coin in SYMBOLS[:2]:  # six subscribes (the simulated coins are named as given)
            for interval in intervals:
                await ws.send_str(json.dumps({"method": "subscribe", "subscription": {
                    "type": "candle", "coin": coin, "interval": interval}}))
        answered = 0
        async with asyncio.timeout(10):
            while sim.stats()[HL].messages_ignored < 2 or answered < 4:
                msg = await ws.receive()
                assert msg.type is aiohttp.WSMsgType.TEXT, (msg, sim.stats()[HL])
                if '"subscriptionResponse"' in msg.data:
                    answered += 1
        await asyncio.sleep(0.3)  # nothing more comes for the two ignored ones
        while True:
            try:
                msg = await ws.receive(timeout=0.05)
            except TimeoutError:
                break
            answered += '"subscriptionResponse"' in msg.data
        await ws.close()
        stats = sim.stats()[HL]
    assert answered == 4
    assert stats.messages_ignored == 2
