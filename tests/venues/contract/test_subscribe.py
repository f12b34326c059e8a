"""Contract: the client's session and the venue's own subscription rules agree, for every
registered venue — over the in-memory connector, with the simulator's Sans-I/O personality
playing the venue (no sockets, no clocks).

The client subscribes two listed streams and one the venue does not list: the listed ones are
acknowledged (SUBSCRIBED), the other is refused and only it is REJECTED (a venue that refuses a
whole batch for one bad name is bisected; a venue that drops the socket instead is reconnected
to and the stream isolated). The venue's heartbeat is answered the way the venue
expects: an in-band ping with the venue's pong text, a protocol ping with an echoing pong.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from candlekeeper.core.events import StreamState
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sim.personality import Personality, WsPath
from candlekeeper.sim.venues import personality_for
from candlekeeper.transport.memory import MemoryConnector, MemoryPeer
from candlekeeper.transport.options import TransportOptions
from candlekeeper.transport.pool import ConnectionPool
from candlekeeper.venues.registry import VENUES, get_spec, stream_codec
from transport.helpers import Recorder

FAST = TransportOptions(backoff_initial_s=0.01, backoff_max_s=0.05, ack_timeout_s=2.0,
                        watchdog_period_s=0.01)


def payload(persona: Personality, body: bytes) -> bytes:
    """What arrives at the client for ``body``: the venue's framing (gzip, ...) applied."""
    return persona.framing.payload(persona.framing.frame(body))


async def play_venue(peer: MemoryPeer, persona: Personality, valid: set[str],
                     pongs: list[str | bytes]) -> None:
    session = persona.new_session(valid.__contains__, path=WsPath(True, True, ()),
                                  max_streams=persona.spec.max_streams_per_connection,
                                  now_ms=lambda: 1_700_000_000_000)
    while not peer.closed:
        try:
            sent = await peer.recv(timeout=30)
        except TimeoutError:
            return
        if sent.kind == "pong":
            pongs.append(sent.payload)
            continue
        if sent.kind != "text":
            continue
        text = sent.payload if isinstance(sent.payload, str) else sent.payload.decode()
        if persona.in_band_ping and persona.is_pong(text):
            pongs.append(text)
            continue
        ctl = session.handle(text)
        if ctl.drop:  # a venue that answers an unknown name by dropping the socket
            peer.drop("the venue dropped the connection")
            return
        if ctl.reply:
            peer.send(payload(persona, ctl.reply))


async def play_every_connection(connector: MemoryConnector, persona: Personality,
                                valid: set[str], pongs: list[str | bytes],
                                peers: list[MemoryPeer]) -> None:
    """The venue's side of every connection the client opens (it reconnects after a drop)."""
    async with asyncio.TaskGroup() as tg:
        while True:
            peer = await connector.accept()
            peers.append(peer)
            tg.create_task(play_venue(peer, persona, valid, pongs))


@pytest.mark.parametrize("venue", VENUES)
async def test_acks_refusals_and_heartbeat_follow_the_venues_rules(venue: str) -> None:
    persona = personality_for(venue)
    codec = stream_codec(venue)
    interval = get_spec(venue).intervals[0]
    good = [StreamKey(venue, "BTCUSDT", interval), StreamKey(venue, "ETHUSDT", interval)]
    bad = StreamKey(venue, "NOSUCHUSDT", interval)
    valid = {codec.stream_name(k) for k in good}
    rec = Recorder()
    connector = MemoryConnector()
    pool = ConnectionPool(codec, [*good, bad], rec, ws_base=get_spec(venue).ws_base,
                          options=FAST, connector=connector)
    task = asyncio.create_task(pool.run())
    pongs: list[str | bytes] = []
    peers: list[MemoryPeer] = []
    try:
        venue_task = asyncio.create_task(
            play_every_connection(connector, persona, valid, pongs, peers))
        await rec.until(lambda: rec.state_of(bad) is StreamState.REJECTED
                        and all(rec.state_of(k) is StreamState.SUBSCRIBED for k in good),
                        timeout=10)
        assert [s.key for s in rec.streams if s.state is StreamState.REJECTED] == [bad]
        peer = peers[-1]
        # the venue's heartbeat, answered the venue's way
        if persona.in_band_ping:
            peer.send(payload(persona, persona.ping_payload()))
        else:
            peer.ping(b"hb-1")
        async with asyncio.timeout(5):
            while not pongs:
                await asyncio.sleep(0.01)
        if not persona.in_band_ping:
            assert pongs == [b"hb-1"]
        venue_task.cancel()
    finally:
        await pool.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
