"""Make-before-break rotation over the in-memory connector: per-stream handover with no update
lost or repeated, and every fallback (timeout, refused or dropped new connection, old connection
lost mid-handover, stop)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable

from candlekeeper.core.events import ConnectionState, StreamState
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.transport.memory import MemoryPeer
from candlekeeper.transport.options import TransportOptions
from candlekeeper.transport.rotation import Rotation

from .helpers import Harness, keys, kline_frame, make

SHUTDOWN = '{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1700000000000}}'
#: rotations only when the test sends a shutdown notice
ON_NOTICE = TransportOptions(rotate_after_s=None, backoff_initial_s=30.0, backoff_jitter=0.0,
                             ack_timeout_s=1.0, watchdog_period_s=0.01)
T0, T1 = 1_626_992_700_000, 1_626_992_760_000
Frame = tuple[int, bool, int]  # (open_time, closed, event_time), as frame_key orders them
F = [(T0, False, 1), (T0, False, 2), (T0, True, 3), (T1, False, 4), (T1, False, 5),
     (T1, False, 6)]
LIVE_ONLY = [StreamState.SUBSCRIBING, StreamState.SUBSCRIBED, StreamState.LIVE]
#: what a break looks like to the gap-filler
BROKEN = [StreamState.DISCONNECTED, StreamState.SUBSCRIBING, StreamState.SUBSCRIBED]


def name(key: StreamKey) -> str:
    return f"{key.symbol.lower()}@kline_{key.interval}"


class Venue:
    """The venue's side of every connection: acks SUBSCRIBEs (unless told not to), remembers
    what each connection subscribed, and writes a stream's frames to the connections."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.subs: dict[MemoryPeer, set[str]] = {}
        self.changed = asyncio.Condition()
        self.tasks: list[asyncio.Task[None]] = []

    async def accept(self, *, ack: bool = True) -> MemoryPeer:
        peer = await self.h.connector.accept()
        self.subs[peer] = set()
        task = asyncio.create_task(self._respond(peer, ack))
        self.tasks.append(task)
        self.h.responders.append(task)
        return peer

    async def _respond(self, peer: MemoryPeer, ack: bool) -> None:
        while not peer.closed:
            request = json.loads((await peer.recv_text(timeout=30)).payload)
            if request.get("method") == "SUBSCRIBE" and ack:
                peer.send(json.dumps({"result": None, "id": request["id"]}))
                async with self.changed:
                    self.subs[peer].update(request["params"])
                    self.changed.notify_all()

    async def subscribed(self, peer: MemoryPeer, n: int) -> None:
        async with asyncio.timeout(5), self.changed:
            await self.changed.wait_for(lambda: len(self.subs[peer]) >= n)

    @staticmethod
    def send(peer: MemoryPeer, key: StreamKey, frame: Frame) -> None:
        open_time, closed, event_time = frame
        peer.send(kline_frame(key, open_time, closed=closed, event_time=event_time))

    def push(self, key: StreamKey, frame: Frame, order: Iterable[MemoryPeer]) -> None:
        """One venue push of ``key``, arriving on the given connections in that order."""
        for peer in order:
            assert name(key) in self.subs[peer]
            self.send(peer, key, frame)


def delivered(h: Harness, key: StreamKey) -> list[Frame]:
    return [(c.open_time, c.closed, c.event_time or 0) for c in h.rec.candles
            if (c.symbol, c.interval) == (key.symbol, key.interval)]


def rotation(h: Harness) -> Rotation:
    rot = h.pool.sessions[0].rotation
    assert rot is not None
    return rot


def detail_has(h: Harness, text: str) -> Callable[[], bool]:
    return lambda: any(text in c.detail for c in h.rec.conns)


async def start(harness: list[Harness], n: int, **opts: object) -> tuple[Harness, Venue,
                                                                          MemoryPeer]:
    options = ON_NOTICE.model_copy(update=opts)
    h = make(harness, keys(n), options=options)
    venue = Venue(h)
    old = await venue.accept()
    await venue.subscribed(old, n)
    await h.rec.until(lambda: h.rec.count(StreamState.SUBSCRIBED) == n)
    return h, venue, old


async def test_each_stream_is_handed_over_once_with_no_update_lost_or_repeated(
        harness: list[Harness]) -> None:
    h, venue, old = await start(harness, 3)
    a, b, c = h.keys
    for key in h.keys:
        venue.push(key, F[0], [old])
        venue.push(key, F[1], [old])
    old.send(SHUTDOWN)
    new = await venue.accept()
    await venue.subscribed(new, 3)
    venue.push(a, F[2], [old, new])  # the old connection's copy arrives first
    venue.push(b, F[2], [new, old])  # the new connection's copy arrives first
    rot = rotation(h)
    assert rot.switched == 2  # a and b now come from the new connection only
    # c: the new connection lags behind; the old one keeps delivering until it catches up
    venue.send(old, c, F[2])
    venue.send(old, c, F[3])
    venue.send(new, c, F[2])
    assert rot.switched == 2
    assert not old.closed
    venue.send(new, c, F[3])
    assert rot.switched == 3
    await h.rec.until(detail_has(h, "rotated"))
    await old.wait_closed()
    for key in h.keys:
        for frame in F[3:]:
            if (key, frame) != (c, F[3]):
                venue.push(key, frame, [new])
    await h.rec.until(lambda: len(h.rec.candles) == 3 * len(F))
    for key in h.keys:
        assert delivered(h, key) == F  # each frame once, in order, across the switch
        assert h.rec.states(key) == LIVE_ONLY  # never DISCONNECTED: no backfill needed
    assert h.rec.conn_states() == [ConnectionState.CONNECTING] + [ConnectionState.CONNECTED] * 3
    assert h.rec.conns[2].detail == ("rotating: the venue announced it will close this "
                                     "connection")
    assert h.rec.conns[3].detail.startswith("rotated (the venue announced it will close this "
                                            "connection): 3 of 3 streams handed over without a "
                                            "break in ")
    stats = h.pool.stats()[0]
    assert (stats.rotations, stats.reconnects, stats.unexpected) == (1, 0, 0)
    assert h.connector.attempts == [old.url, new.url]


async def test_a_close_sent_only_on_the_old_connection_is_not_lost(
        harness: list[Harness]) -> None:
    h, venue, old = await start(harness, 1)
    key = h.keys[0]
    venue.push(key, F[1], [old])
    old.send(SHUTDOWN)
    new = await venue.accept()
    await venue.subscribed(new, 1)
    # the close of T0 went out before the new connection subscribed, but the socket
    # delivers the new connection's first frame (of T1) before the old one's close
    venue.send(new, key, F[3])
    venue.send(old, key, F[2])
    venue.send(old, key, F[3])  # the old connection catches up: handover
    assert rotation(h).switched == 1
    venue.send(new, key, F[4])
    await h.rec.until(detail_has(h, "rotated"))
    assert delivered(h, key) == [F[1], F[3], F[2], F[4]]
    assert [f for f in delivered(h, key) if f[1]] == [F[2]]  # the close, once


async def test_timeout_falls_back_to_a_break_reported_for_backfill(
        harness: list[Harness]) -> None:
    h, venue, old = await start(harness, 2, handover_timeout_s=0.2)
    live, quiet = h.keys
    venue.push(live, F[0], [old])
    await h.rec.until(lambda: h.rec.state_of(live) is StreamState.LIVE)
    old.send(SHUTDOWN)
    new = await venue.accept()
    await venue.subscribed(new, 2)
    venue.push(live, F[1], [old])  # the new connection never sends a kline
    await h.rec.until(detail_has(h, "rotated"))
    await old.wait_closed()
    assert h.rec.states(live) == [*LIVE_ONLY, *BROKEN]
    gone = [s for s in h.rec.streams if s.state is StreamState.DISCONNECTED]
    assert gone[0].detail == "connection rotated: 1 stream(s) not handed over within 0.2 s"
    assert h.rec.states(quiet) == LIVE_ONLY[:2]  # never flowed: nothing to backfill
    assert "1 reported disconnected" in h.rec.conns[-1].detail
    venue.push(live, F[2], [new])
    await h.rec.until(lambda: h.rec.state_of(live) is StreamState.LIVE)
    assert delivered(h, live) == F[:3]
    stats = h.pool.stats()[0]
    assert (stats.rotations, stats.reconnects) == (1, 0)


async def test_refused_new_connection_keeps_the_old_one_and_retries(
        harness: list[Harness]) -> None:
    h, venue, old = await start(harness, 1, backoff_initial_s=0.05)
    key = h.keys[0]
    h.connector.refuse = "Connection refused"
    old.send(SHUTDOWN)
    await h.rec.until(detail_has(h, "rotation failed"))
    h.connector.refuse = None
    venue.push(key, F[0], [old])  # still served by the old connection
    assert delivered(h, key) == [F[0]]
    new = await venue.accept()
    await venue.subscribed(new, 1)
    venue.push(key, F[1], [old, new])
    await h.rec.until(detail_has(h, "rotated"))
    failed = [c.detail for c in h.rec.conns if "failed" in c.detail]
    assert failed == ["rotation failed: cannot open the new connection: cannot connect to "
                      "ws://venue.test/market/stream: Connection refused; retry in 0.05 s"]
    assert h.rec.states(key) == LIVE_ONLY
    assert delivered(h, key) == F[:2]
    assert len(h.connector.attempts) == 3


async def test_new_connection_lost_after_handover_reports_only_that_stream(
        harness: list[Harness]) -> None:
    h, venue, old = await start(harness, 2)
    moved, stayed = h.keys
    for key in h.keys:
        venue.push(key, F[0], [old])
    old.send(SHUTDOWN)
    new = await venue.accept()
    await venue.subscribed(new, 2)
    venue.push(moved, F[1], [new, old])
    assert rotation(h).switched == 1
    venue.push(moved, F[2], [new, old])  # from the new connection only now
    venue.push(stayed, F[1], [old])
    new.drop("server closed the connection (code 1011)")
    await h.rec.until(detail_has(h, "rotation failed"))
    venue.push(moved, F[3], [old])
    venue.push(stayed, F[2], [old])
    await h.rec.until(lambda: h.rec.state_of(moved) is StreamState.LIVE)
    assert h.rec.states(moved) == [*LIVE_ONLY, StreamState.DISCONNECTED, StreamState.SUBSCRIBED,
                                   StreamState.LIVE]
    assert h.rec.states(stayed) == LIVE_ONLY
    assert delivered(h, moved) == F[:4]
    assert delivered(h, stayed) == F[:3]
    assert not old.closed
    assert h.pool.stats()[0].rotations == 0


async def test_old_connection_lost_mid_handover_promotes_the_new_one(
        harness: list[Harness]) -> None:
    h, venue, old = await start(harness, 2)
    moved, late = h.keys
    for key in h.keys:
        venue.push(key, F[0], [old])
    old.send(SHUTDOWN)
    new = await venue.accept()
    await venue.subscribed(new, 2)
    venue.push(moved, F[1], [old, new])
    old.drop("server closed the connection (code 1001)")
    await h.rec.until(detail_has(h, "rotated"))
    assert "the old connection closed early (server closed the connection (code 1001))" \
        in h.rec.conns[-1].detail
    assert h.rec.states(moved) == LIVE_ONLY
    assert h.rec.states(late) == [*LIVE_ONLY, *BROKEN]
    venue.push(late, F[1], [new])
    venue.push(moved, F[2], [new])
    await h.rec.until(lambda: h.rec.state_of(late) is StreamState.LIVE)
    assert delivered(h, moved) == F[:3]
    assert delivered(h, late) == F[:2]
    stats = h.pool.stats()[0]
    assert (stats.rotations, stats.reconnects) == (1, 0)


async def test_rotates_after_rotate_after_s_without_a_break(harness: list[Harness]) -> None:
    h, venue, first = await start(harness, 1, rotate_after_s=0.1)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    second = await venue.accept()
    assert loop.time() - t0 >= 0.1 - 0.02
    await h.rec.until(detail_has(h, "rotated"))
    await first.wait_closed()
    assert h.rec.conns[2].detail.startswith("rotating: connection open for ")
    assert h.rec.conns[2].detail.endswith(" s, rotate_after_s=0.1")
    await venue.accept()  # and again, 0.1 s after the second connection opened
    await h.rec.until(lambda: sum("rotated" in c.detail for c in h.rec.conns) == 2)
    await second.wait_closed()
    assert h.rec.states(h.keys[0]) == LIVE_ONLY[:2]  # acked, never a kline: no statuses
    assert h.pool.stats()[0].reconnects == 0


async def test_stop_during_a_rotation_closes_both_connections(harness: list[Harness]) -> None:
    h, venue, old = await start(harness, 1)
    old.send(SHUTDOWN)
    new = await venue.accept(ack=False)
    await h.pool.stop()
    assert h.task is not None
    await asyncio.wait_for(h.task, 2)
    assert old.closed and new.closed
    assert h.rec.conn_states()[-1] is ConnectionState.CLOSED
