"""Session logic over the in-memory connector: the real session code, no sockets."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from decimal import Decimal

import msgspec
import pytest

from candlekeeper.core.clock import ScaledClock
from candlekeeper.core.events import ConnectionState, StreamState
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError
from candlekeeper.transport.memory import MemoryConnector, MemoryPeer
from candlekeeper.transport.options import TransportOptions
from candlekeeper.transport.pool import ConnectionPool
from candlekeeper.venues.binance.endpoints import BINANCE_USDM
from candlekeeper.venues.binance.stream import BinanceStreamCodec
from candlekeeper.venues.contract import Heartbeat, Message, Pong, Reply

from .helpers import FAST, Harness, Recorder, keys, kline_frame, make


async def test_subscribes_in_chunks_paced_under_the_venue_rate(harness: list[Harness]) -> None:
    h = make(harness, keys(1000))
    peer = await h.connector.accept()
    assert peer.url == "ws://venue.test/market/stream"
    sent = [await peer.recv_text() for _ in range(5)]
    requests = [json.loads(s.payload) for s in sent]
    assert [r["method"] for r in requests] == ["SUBSCRIBE"] * 5
    assert [len(r["params"]) for r in requests] == [200] * 5  # spec.max_streams_per_subscribe
    assert sorted(p for r in requests for p in r["params"]) == \
        sorted(f"s{i:04d}usdt@kline_1m" for i in range(1000))
    assert len({r["id"] for r in requests}) == 5
    gaps = [b.at - a.at for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 0.125 - 0.005  # 10/s venue limit x 0.8 headroom = 8/s
    # no one-second window holds more than the venue's 10 messages
    times = [s.at for s in sent]
    assert all(sum(1 for t in times if t0 <= t < t0 + 1.0) <= 8 for t0 in times)


async def test_acks_matched_by_id_then_first_kline_makes_the_stream_live(
        harness: list[Harness]) -> None:
    ks = keys(3)
    h = make(harness, ks)
    peer = await h.accept(ack=False)
    req = json.loads((await peer.recv_text()).payload)
    peer.send(json.dumps({"result": None, "id": req["id"] + 100}))  # someone else's id
    peer.send(kline_frame(ks[0], close="7.6170"))  # data may precede the ack
    await h.rec.until(lambda: len(h.rec.candles) == 1)
    assert h.rec.state_of(ks[1]) is StreamState.SUBSCRIBING
    peer.send(json.dumps({"result": None, "id": req["id"]}))
    await h.rec.until(lambda: h.rec.state_of(ks[1]) is StreamState.SUBSCRIBED)
    assert h.rec.states(ks[0]) == [StreamState.SUBSCRIBING, StreamState.LIVE]  # not downgraded
    assert h.rec.states(ks[2]) == [StreamState.SUBSCRIBING, StreamState.SUBSCRIBED]
    candle = h.rec.candles[0]
    assert (candle.symbol, candle.interval, candle.close) == ("S0000USDT", "1m",
                                                              Decimal("7.6170"))
    assert str(candle.close) == "7.6170"
    assert h.rec.conn_states() == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]


async def test_rejected_stream_is_isolated_and_the_connection_kept(
        harness: list[Harness]) -> None:
    ks = keys(8)
    bad = "s0005usdt@kline_1m"
    h = make(harness, ks)
    peer = await h.accept(reject=[bad])
    await h.rec.until(lambda: h.rec.count(StreamState.SUBSCRIBED) == 7
                      and h.rec.count(StreamState.REJECTED) == 1)
    rejected = [s for s in h.rec.streams if s.state is StreamState.REJECTED]
    assert [s.key for s in rejected] == [ks[5]]
    assert rejected[0].detail == "code 2: Invalid request: invalid stream"
    stats = h.pool.stats()[0]
    assert stats.rejected == 1
    assert stats.error_frames == 4  # refused: all 8, then 4, 2 and finally the bad 1
    assert stats.stream_states == {"subscribed": 7, "rejected": 1}
    peer.send(kline_frame(ks[4]))
    await h.rec.until(lambda: h.rec.state_of(ks[4]) is StreamState.LIVE)
    assert len(h.connector.attempts) == 1
    assert not peer.closed


async def test_malformed_frames_are_counted_logged_and_the_connection_kept(
        harness: list[Harness], caplog: pytest.LogCaptureFixture) -> None:
    ks = keys(1)
    h = make(harness, ks)
    peer = await h.accept()
    await h.rec.until(lambda: h.rec.state_of(ks[0]) is StreamState.SUBSCRIBED)
    with caplog.at_level(logging.WARNING, "candlekeeper.transport"):
        for _ in range(3):
            peer.send('{"stream":"s0000usdt@kline_1m","data":{"e":"kline","E":')
        peer.send(b"\x00\xffnot json")
        peer.send(kline_frame(ks[0], close="1.5"))
        await h.rec.until(lambda: len(h.rec.candles) == 1)
    assert h.rec.candles[0].close == Decimal("1.5")
    stats = h.pool.stats()[0]
    assert stats.malformed == 4
    assert stats.messages >= 6  # 4 bad + 1 kline + the ack
    malformed_lines = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(malformed_lines) == 1  # rate limited
    assert "invalid JSON" in malformed_lines[0].getMessage()
    assert len(h.connector.attempts) == 1
    assert not peer.closed


async def test_server_ping_is_answered_with_a_pong_echoing_the_payload(
        harness: list[Harness]) -> None:
    h = make(harness, keys(1))
    peer = await h.connector.accept()
    await peer.recv_text()  # the SUBSCRIBE
    peer.ping(b"1626992760203")
    pong = await peer.recv()
    assert (pong.kind, pong.payload) == ("pong", b"1626992760203")
    assert h.pool.stats()[0].pings == 1


class PingPongCodec(BinanceStreamCodec):
    """A venue whose heartbeat is a text ``Ping`` to be answered with ``Pong`` (BingX-style)."""

    def decode(self, frame: bytes | str) -> Message:
        if frame in ("Ping", b"Ping"):
            return Reply("Pong")
        return super().decode(frame)


class AppPingCodec(BinanceStreamCodec):
    """A venue whose client must send ``{"op":"ping"}`` (answered by ``{"op":"pong"}``)."""

    def __init__(self, beat: Heartbeat) -> None:
        super().__init__(BINANCE_USDM)
        self.heartbeat = beat

    def decode(self, frame: bytes | str) -> Message:
        if frame in ('{"op":"pong"}', b'{"op":"pong"}'):
            return Pong()
        return super().decode(frame)


async def play(peer: MemoryPeer, pings: list[float], *, answer: bool) -> None:
    """Ack SUBSCRIBEs; record (and, if ``answer``, answer) the client's application pings."""
    while not peer.closed:
        try:
            sent = await peer.recv_text(timeout=30)
        except TimeoutError:
            return
        if sent.payload == '{"op":"ping"}':
            pings.append(sent.at)
            if answer:
                peer.send('{"op":"pong"}')
            continue
        request = json.loads(sent.payload)
        if request.get("method") == "SUBSCRIBE":
            peer.send(json.dumps({"result": None, "id": request["id"]}))


async def test_application_heartbeat_is_sent_on_its_period_and_answered(
        harness: list[Harness]) -> None:
    beat = Heartbeat(payload='{"op":"ping"}', every_s=0.1, timeout_s=0.5, idle_only=False)
    h = make(harness, keys(1), codec=AppPingCodec(beat))
    peer = await h.connector.accept()
    pings: list[float] = []
    task = asyncio.create_task(play(peer, pings, answer=True))
    try:
        async with asyncio.timeout(5):
            while len(pings) < 5:
                await asyncio.sleep(0.01)
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert all(0.09 <= g <= 0.6 for g in gaps), gaps  # on its period, never early
        assert not peer.closed and h.pool.stats()[0].reconnects == 0
    finally:
        task.cancel()


async def test_unanswered_application_heartbeat_replaces_the_connection(
        harness: list[Harness]) -> None:
    beat = Heartbeat(payload='{"op":"ping"}', every_s=0.05, timeout_s=0.2, idle_only=False)
    h = make(harness, keys(1), codec=AppPingCodec(beat))
    first = await h.connector.accept()
    pings: list[float] = []
    silent = asyncio.create_task(play(first, pings, answer=False))
    try:
        second = await h.connector.accept()  # the client gave up on the first connection
        assert pings and first.closed and second is not first
        assert any("no answer to the venue heartbeat within 0.2 s" in c.detail
                   for c in h.rec.conns), [c.detail for c in h.rec.conns]
    finally:
        silent.cancel()


async def test_idle_only_heartbeat_waits_for_silence(harness: list[Harness]) -> None:
    """OKX-style: ping only after ``every_s`` without any frame from the venue."""
    beat = Heartbeat(payload='{"op":"ping"}', every_s=0.6, timeout_s=2.0, idle_only=True)
    ks = keys(1)
    h = make(harness, ks, codec=AppPingCodec(beat))
    peer = await h.connector.accept()
    pings: list[float] = []
    task = asyncio.create_task(play(peer, pings, answer=True))
    try:
        loop = asyncio.get_running_loop()
        busy_until = loop.time() + 1.5
        while loop.time() < busy_until:  # the venue keeps talking: no ping is needed
            peer.send(kline_frame(ks[0]))
            await asyncio.sleep(0.05)
        assert pings == []
        async with asyncio.timeout(3):  # then it falls silent: a ping follows the silence
            while not pings:
                await asyncio.sleep(0.01)
        assert pings[0] - busy_until >= 0.5
    finally:
        task.cancel()


async def test_reply_messages_are_sent_back_at_once(harness: list[Harness]) -> None:
    h = make(harness, keys(1), codec=PingPongCodec(BINANCE_USDM))
    peer = await h.connector.accept()
    await peer.recv_text()  # the SUBSCRIBE
    peer.send(b"Ping")
    reply = await peer.recv()
    assert (reply.kind, reply.payload) == ("text", "Pong")


async def test_missing_ack_reconnects_and_resubscribes(harness: list[Harness]) -> None:
    ks = keys(2)
    opts = TransportOptions(backoff_initial_s=0.01, ack_timeout_s=0.1, watchdog_period_s=0.01)
    h = make(harness, ks, options=opts)
    first = await h.accept(ack=False)
    await first.recv_text()
    second = await h.accept()
    await h.rec.until(lambda: h.rec.count(StreamState.SUBSCRIBED) == 2)
    assert first.closed
    assert not second.closed
    reconnecting = [c for c in h.rec.conns if c.state is ConnectionState.RECONNECTING]
    assert len(reconnecting) == 1
    assert reconnecting[0].detail.startswith("no reply to SUBSCRIBE id=1 (2 streams) within")
    assert reconnecting[0].reconnects == 1
    assert h.rec.states(ks[0]) == [StreamState.SUBSCRIBING, StreamState.DISCONNECTED,
                                   StreamState.SUBSCRIBING, StreamState.SUBSCRIBED]


async def test_server_drop_reconnects_with_status_events(harness: list[Harness]) -> None:
    ks = keys(2)
    h = make(harness, ks)
    first = await h.accept()
    await h.rec.until(lambda: h.rec.count(StreamState.SUBSCRIBED) == 2)
    first.drop("server closed the connection (code 1001)")
    second = await h.accept()
    await h.rec.until(lambda: h.rec.count(StreamState.SUBSCRIBED) == 2
                      and h.rec.conn_states()[-1] is ConnectionState.CONNECTED)
    assert h.rec.conn_states() == [ConnectionState.CONNECTING, ConnectionState.CONNECTED,
                                   ConnectionState.RECONNECTING, ConnectionState.CONNECTED]
    assert "code 1001" in h.rec.conns[2].detail
    second.send(kline_frame(ks[1]))
    await h.rec.until(lambda: len(h.rec.candles) == 1)
    assert h.pool.stats()[0].reconnects == 1
    # a break: what the gap-filler keys its backfill on
    assert h.rec.states(ks[1]) == [StreamState.SUBSCRIBING, StreamState.SUBSCRIBED,
                                   StreamState.DISCONNECTED, StreamState.SUBSCRIBING,
                                   StreamState.SUBSCRIBED, StreamState.LIVE]


async def test_watchdog_flags_silent_and_stalled_streams_in_venue_time(
        harness: list[Harness]) -> None:
    ks = keys(2)
    clock = ScaledClock(speed=1000.0)  # 65 s of venue time = 65 ms of wall time
    # a venue with no real-time quiet period (the real one's 2 s floor would dominate here)
    instant = msgspec.structs.replace(BINANCE_USDM, update_cadence_ms=0,
                                      close_frame_max_delay_ms=0)
    h = make(harness, ks, options=TransportOptions(watchdog_period_s=0.005), clock=clock,
             codec=BinanceStreamCodec(instant))
    peer = await h.accept()
    await h.rec.until(lambda: h.rec.state_of(ks[0]) is StreamState.SUBSCRIBED)
    peer.send(kline_frame(ks[0]))
    await h.rec.until(lambda: h.rec.state_of(ks[1]) is StreamState.SILENT
                      and h.rec.state_of(ks[0]) is StreamState.STALLED, timeout=2)
    silent = [s for s in h.rec.streams if s.state is StreamState.SILENT]
    assert [s.key for s in silent] == [ks[1]]
    assert "no first message" in silent[0].detail
    assert StreamState.LIVE in h.rec.states(ks[0])
    peer.send(kline_frame(ks[1]))
    peer.send(kline_frame(ks[0]))
    await h.rec.until(lambda: h.rec.state_of(ks[0]) is StreamState.LIVE
                      and h.rec.state_of(ks[1]) is StreamState.LIVE)


async def test_idle_connection_is_pinged_then_given_up(harness: list[Harness]) -> None:
    opts = TransportOptions(idle_ping_s=0.05, idle_timeout_s=0.15, backoff_initial_s=0.01,
                            watchdog_period_s=0.01)
    h = make(harness, keys(1), options=opts)
    first = await h.accept(ack=False)
    ping = await first.recv()
    while ping.kind != "ping":
        ping = await first.recv()
    assert ping.payload == b"candlekeeper"
    await h.accept()
    assert "no frame at all for" in h.rec.conns[2].detail


async def test_backpressure_pauses_reading_until_relieved(harness: list[Harness]) -> None:
    ks = keys(1)
    h = make(harness, ks)
    peer = await h.accept()
    await h.rec.until(lambda: h.rec.count(StreamState.SUBSCRIBED) == 1)
    h.rec.pressure = True
    for i in range(5):
        peer.send(kline_frame(ks[0], event_time=i))
    assert [c.event_time for c in h.rec.candles] == [0]  # paused after the first
    assert peer.paused
    h.rec.relieved.set()
    await h.rec.until(lambda: len(h.rec.candles) == 5)
    assert [c.event_time for c in h.rec.candles] == [0, 1, 2, 3, 4]
    assert not peer.paused


async def test_listener_errors_and_foreign_streams_are_counted_not_fatal(
        harness: list[Harness]) -> None:
    ks = keys(1)
    h = make(harness, ks)
    peer = await h.accept()
    await h.rec.until(lambda: h.rec.count(StreamState.SUBSCRIBED) == 1)
    h.rec.raise_on_candle = True
    peer.send(kline_frame(ks[0]))
    peer.send(kline_frame(StreamKey("binance-usdm", "ETHUSDT", "1m")))
    h.rec.raise_on_candle = False
    peer.send(kline_frame(ks[0], close="2"))
    await h.rec.until(lambda: len(h.rec.candles) == 1)
    stats = h.pool.stats()[0]
    assert (stats.listener_errors, stats.unexpected) == (1, 1)
    assert len(h.connector.attempts) == 1


async def test_stop_is_prompt_during_backoff_and_emits_closed(harness: list[Harness]) -> None:
    opts = TransportOptions(backoff_initial_s=60.0, backoff_jitter=0.0)
    h = make(harness, keys(1), options=opts)
    h.connector.refuse = "Connection refused"
    await h.rec.until(lambda: ConnectionState.RECONNECTING in h.rec.conn_states())
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await h.pool.stop()
    assert h.task is not None
    await asyncio.wait_for(h.task, 1)
    assert loop.time() - t0 < 0.5
    assert h.rec.conn_states()[-1] is ConnectionState.CLOSED
    await h.pool.stop()  # idempotent


async def test_configuration_errors_are_fatal_and_raised() -> None:
    class BadConnector(MemoryConnector):
        async def connect(self, url: str, handler: object) -> object:  # type: ignore[override]
            raise ConfigError(f"invalid WebSocket URL {url!r}")

    rec = Recorder()
    pool = ConnectionPool(BinanceStreamCodec(BINANCE_USDM), keys(1), rec, ws_base="nope://",
                          options=FAST, connector=BadConnector())
    with pytest.raises(ConfigError, match="invalid WebSocket URL"):
        await asyncio.wait_for(pool.run(), 2)
    assert rec.conn_states()[-1] is ConnectionState.CLOSED


def test_pool_rejects_foreign_venues_and_unknown_intervals() -> None:
    codec = BinanceStreamCodec(BINANCE_USDM)
    with pytest.raises(ConfigError, match="binance-spot"):
        ConnectionPool(codec, keys(1, venue="binance-spot"), Recorder(),
                       connector=MemoryConnector())
    with pytest.raises(ConfigError, match="1s"):
        ConnectionPool(codec, keys(1, interval="1s"), Recorder(), connector=MemoryConnector())
