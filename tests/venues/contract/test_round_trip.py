"""Contract: what the simulator sends, the client decodes — for every registered venue.

A raw WebSocket client (no candlekeeper transport) subscribes with the venue's own stream codec
and decodes every frame the simulated venue sends over a real socket. Nothing may be
malformed; every subscription is acknowledged; and the candle that closes each interval equals
the simulator's truth field for field: the closing frame on a venue with a closed flag, the last
push of the candle on a venue without one. The simulator encodes with the client's own wire
schemas, so this is the proof that both sides agree; the real samples
(``test_samples.py``) are the proof that both agree with the exchange.
"""

from __future__ import annotations

import time

import aiohttp
import msgspec
import pytest

from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sim import Simulator
from candlekeeper.venues.contract import Ack, Malformed, Reply
from candlekeeper.venues.registry import VENUES, get_spec, stream_codec

pytestmark = pytest.mark.integration

SYMBOLS = ("BTCUSDT", "ETHUSDT")
SPEED = 120.0  # a 1m candle every half second of wall time
CLOSES = 4  # per stream


def _key(c: Candle) -> tuple[str, str, int]:
    return (c.symbol, c.interval, c.open_time)


@pytest.mark.parametrize("venue", VENUES)
async def test_every_frame_decodes_and_closes_equal_the_truth(venue: str) -> None:
    spec = get_spec(venue)
    codec = stream_codec(venue)
    interval = "1m"
    keys = [StreamKey(venue, s, interval) for s in SYMBOLS]
    names = [codec.stream_name(k) for k in keys]
    async with Simulator(venues=(venue,), symbols=SYMBOLS, intervals=(interval,), speed=SPEED,
                         stale_last_push=False, min_pushes_per_candle=4) as sim, \
            aiohttp.ClientSession() as http:
        ws = await http.ws_connect(codec.connect_url(sim.ws_base(venue), []))
        step = spec.max_streams_per_subscribe
        for rid, i in enumerate(range(0, len(names), step), 1):
            await ws.send_str(codec.subscribe(names[i:i + step], rid))
        acks: list[Ack] = []
        malformed: list[Malformed] = []
        finals: dict[tuple[str, str, int], Candle] = {}  # closing frame, or last push
        deadline = time.monotonic() + 30
        closed_seen = 0
        while closed_seen < CLOSES * len(keys):
            assert time.monotonic() < deadline, f"only {closed_seen} closes in 30 s"
            msg = await ws.receive(timeout=10)
            assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
            out = codec.decode(msg.data)
            for m in out if isinstance(out, list) else [out]:
                if isinstance(m, Reply):
                    await ws.send_str(m.payload)
                elif isinstance(m, Ack):
                    acks.append(m)
                elif isinstance(m, Malformed):
                    malformed.append(m)
                elif isinstance(m, Candle):
                    if spec.closed_flag:
                        if m.closed:
                            finals[_key(m)] = m
                            closed_seen += 1
                    else:
                        k = _key(m)
                        later = [f for f in finals if f[:2] == k[:2] and f[2] > k[2]]
                        assert not later, "a push for an older candle after a newer one"
                        if k not in finals and any(f[:2] == k[:2] for f in finals):
                            closed_seen += 1  # a later open time closes the previous candle
                        finals[k] = m
        await ws.close()
        assert not malformed, malformed[:3]
        assert len(acks) == -(-len(names) // step)
        compared = 0
        for k in keys:
            truth = {c.open_time: c for c in sim.closed_candles(venue, k.symbol, interval)}
            for (symbol, iv, t), got in finals.items():
                if (symbol, iv) != (k.symbol, interval) or t not in truth:
                    continue  # the candle still forming when we stopped
                final = msgspec.structs.replace(got, closed=True)  # an inferred close
                assert final.same_values(truth[t]), (got, truth[t])
                compared += 1
        assert compared >= (CLOSES - 1) * len(keys)
