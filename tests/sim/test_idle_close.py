"""A venue's idle rule, over real sockets, for every registered venue that has one: a connection
the server has sent nothing on for ``idle_close_s`` is closed with the venue's own code and
reason; one whose client pings (so the server answers) stays open. (OKX closes after 30 s with
4004 "No data received in 30s"; Bybit after 10 minutes; the test shortens the time.)"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from candlekeeper.sim import Simulator
from candlekeeper.sim.venues import personality_for
from candlekeeper.venues.registry import VENUES, stream_codec

IDLE_S = 0.6
WITH_RULE = [v for v in VENUES
             if personality_for(v).behaviour.idle_close is not None]


def test_the_rule_is_the_venues_own() -> None:
    """Every venue that documents an idle rule has one, none without (the docs: OKX 30 s,
    Bybit 10 min; Binance and BingX close idle connections through their own pings)."""
    for venue in VENUES:
        rule = personality_for(venue).behaviour.idle_close
        heartbeat = stream_codec(venue).heartbeat
        # a venue with an idle rule is one whose client must ping (application heartbeat)
        assert (rule is not None) == (heartbeat is not None), venue
        if rule is not None and heartbeat is not None:
            assert heartbeat.every_s < rule.seconds, venue


@pytest.mark.parametrize("venue", WITH_RULE)
async def test_a_connection_the_server_has_nothing_to_send_on_is_closed(venue: str) -> None:
    rule = personality_for(venue).behaviour.idle_close
    assert rule is not None
    codec = stream_codec(venue)
    heartbeat = codec.heartbeat
    assert heartbeat is not None
    async with Simulator(venues=(venue,), intervals=("1m",), idle_close_s=IDLE_S) as sim, \
            aiohttp.ClientSession() as http:
        url = codec.connect_url(sim.ws_base(venue), [])
        # nothing subscribed, nothing sent: closed after IDLE_S with the venue's code
        async with http.ws_connect(url) as quiet:
            t0 = time.monotonic()
            async with asyncio.timeout(10):
                async for _ in quiet:
                    pass
            # no code: dropped without a close frame, which a client reports as 1006
            assert quiet.close_code == (rule.code if rule.code is not None else 1006)
            assert time.monotonic() - t0 >= IDLE_S * 0.9
        assert sim.stats()[venue].disconnects.get("idle") == 1
        # a client that pings gets answers, and the connection stays open
        async with http.ws_connect(url) as pinging:
            answers = 0
            deadline = time.monotonic() + 3 * IDLE_S
            while time.monotonic() < deadline:
                await pinging.send_str(heartbeat.payload)
                msg = await pinging.receive(timeout=IDLE_S)
                assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
                answers += 1
                await asyncio.sleep(IDLE_S / 3)
            assert not pinging.closed and answers >= 3
        assert sim.stats()[venue].disconnects.get("idle") == 1
