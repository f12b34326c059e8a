"""The feed's gap-free guarantee with a scripted venue: the real feed, session and gap filler over
the in-memory connector, with REST history from a fake source and a hand-driven clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import msgspec
import pytest

from candlekeeper import Candle, CandleFeed, StreamKey
from candlekeeper.backfill.slots import LIVE, resume, warm_up
from candlekeeper.core.sequence import Offer, StreamSequence
from candlekeeper.core.venue_clock import VenueClock
from candlekeeper.errors import RestError
from candlekeeper.feed import FeedPlumbing
from candlekeeper.gapfill import GapFiller, GapFillOptions
from candlekeeper.gapfill_track import FetchAttempts
from candlekeeper.transport import TransportOptions
from candlekeeper.transport.memory import MemoryConnector, MemoryPeer

FAST = TransportOptions(backoff_initial_s=0.01, backoff_max_s=0.05, ack_timeout_s=1.0,
                        watchdog_period_s=0.01)
M = 60_000
T0 = 1_700_000_040_000 // M * M
KEY = StreamKey("binance-usdm", "BTCUSDT", "1m")
OPTS = GapFillOptions(history=0, close_grace_ms=2_000, close_grace_wall_s=0.0,
                      retry_initial_s=0.01, retry_max_s=0.05, max_hole_attempts=3)


class Clock:
    speed = 1000.0  # only scales the late-close watchdog's period

    def __init__(self, now: int) -> None:
        self.now = now

    def time_ms(self) -> int:
        return self.now

    def wall_seconds(self, venue_ms: float) -> float:
        return venue_ms / 1000.0 / self.speed


def truth(i: int) -> Candle:
    """The exchange's candle number i (open time T0 + i minutes)."""
    price = f"{100 + i}.50"
    return Candle("binance-usdm", "BTCUSDT", "1m", T0 + i * M, T0 + i * M + M - 1, price, price,
                  price, price, "1.000", closed=True)


class History:
    """A REST history that knows candles up to ``known`` (exclusive), can fail or miss some."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls: list[tuple[int, int]] = []
        self.fail = 0
        self.missing: set[int] = set()

    async def fetch(self, symbol: str, interval: str, start: int, end: int, *,
                    forming: object = None, margin_ms: int | None = None,
                    priority: object = None) -> list[Candle]:
        self.calls.append((start, end))
        if self.fail:
            self.fail -= 1
            raise RestError("HTTP 503", status=503)
        out = []
        t = start
        while t < end and t + M - 1 < self.clock.now:
            i = (t - T0) // M
            if i not in self.missing:
                out.append(truth(i).__class__(**{**_fields(truth(i)), "source": "rest"}))
            t += M
        return out


def _fields(c: Candle) -> dict[str, object]:
    return {f: getattr(c, f) for f in c.__struct_fields__}


def frame(i: int, closed: bool = True) -> str:
    c = truth(i)
    return json.dumps({"stream": "btcusdt@kline_1m", "data": {
        "e": "kline", "E": c.close_time + 5, "s": "BTCUSDT", "k": {
            "t": c.open_time, "T": c.close_time, "s": "BTCUSDT", "i": "1m", "f": 1, "L": 2,
            "o": c.open_str, "c": c.close_str, "h": c.high_str, "l": c.low_str,
            "v": c.volume_str, "n": 0, "x": closed, "q": "0", "V": "0", "Q": "0", "B": "0"}}})


async def ack_all(peer: MemoryPeer) -> None:
    while not peer.closed:
        try:
            sent = await peer.recv_text(timeout=30)
        except TimeoutError:
            return
        req = json.loads(sent.payload)
        if req.get("method") == "SUBSCRIBE":
            peer.send(json.dumps({"result": None, "id": req["id"]}))


class Rig:
    def __init__(self, **feed_kw: object) -> None:
        self.clock = Clock(T0 + 1 * M + 10_000)  # candle 0 closed, candle 1 forming
        self.history = History(self.clock)
        self.connector = MemoryConnector()
        opts = feed_kw.pop("gap_fill", OPTS)
        plumbing = FeedPlumbing(connector=self.connector, history_source=self.history,
                                **feed_kw)  # type: ignore[arg-type]
        self.feed = CandleFeed("binance-usdm", ["BTCUSDT"], ["1m"], ws_url="ws://v/market",
                               transport=FAST, clock=self.clock,  # type: ignore[arg-type]
                               gap_fill=opts, plumbing=plumbing)  # type: ignore[arg-type]
        self.closed: list[Candle] = []
        self.feed.on_closed(self.closed.append, inline=True)
        self.tasks: list[asyncio.Task[None]] = []

    async def peer(self) -> MemoryPeer:
        peer = await self.connector.accept()
        self.tasks.append(asyncio.create_task(ack_all(peer)))
        return peer

    def at(self, i: int, into: int = 10_000) -> None:
        """Move the clock to ``into`` ms inside candle i."""
        self.clock.now = T0 + i * M + into

    def indices(self) -> list[int]:
        return [(c.open_time - T0) // M for c in self.closed]


@pytest.fixture
async def rig() -> AsyncIterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for r in made:
        await r.feed.stop()
        for t in r.tasks:
            t.cancel()


async def until(cond: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0.005)


async def test_a_hole_is_filled_over_rest_before_newer_closes(rig: list[Rig]) -> None:
    r = Rig()
    rig.append(r)
    await r.feed.start()
    peer = await r.peer()
    peer.send(frame(0))
    await until(lambda: r.indices() == [0])
    r.at(4)
    peer.send(frame(3))  # 1 and 2 never arrived on the WebSocket
    await until(lambda: r.indices() == [0, 1, 2, 3])
    assert [c.source for c in r.closed] == ["ws", "rest", "rest", "ws"]
    assert [c.close_str for c in r.closed] == [truth(i).close_str for i in range(4)]
    assert r.feed.filler is not None and r.feed.filler.stats.holes == 1


async def test_closes_missed_during_a_disconnect_are_backfilled_on_reconnect(
        rig: list[Rig]) -> None:
    r = Rig()
    rig.append(r)
    await r.feed.start()
    peer = await r.peer()
    peer.send(frame(0))
    await until(lambda: r.indices() == [0])
    peer.drop("network cut")
    r.at(5)  # candles 1..4 closed while we were away
    peer2 = await r.peer()
    peer2.send(frame(5, closed=False))  # the stream is live again: the break triggers a fill
    await until(lambda: r.indices() == [0, 1, 2, 3, 4])
    r.at(6)
    peer2.send(frame(5))
    await until(lambda: r.indices() == [0, 1, 2, 3, 4, 5])
    assert r.feed.filler is not None and r.feed.filler.stats.breaks >= 1


async def test_a_missing_close_frame_is_confirmed_over_rest_and_never_emitted_twice(
        rig: list[Rig]) -> None:
    r = Rig()
    rig.append(r)
    await r.feed.start()
    peer = await r.peer()
    peer.send(frame(0))
    await until(lambda: r.indices() == [0])
    r.at(2, into=30_000)  # candle 1 closed 30 s ago and its x:true never came
    await until(lambda: r.indices() == [0, 1])
    assert r.closed[1].source == "rest"
    peer.send(frame(1))  # the late WebSocket close finally arrives
    peer.send(frame(2, closed=False))
    await asyncio.sleep(0.05)
    assert r.indices() == [0, 1]
    assert r.feed.stats()[0].duplicates == 1
    assert r.feed.filler is not None and r.feed.filler.stats.late_closes >= 1


async def test_warm_up_fills_the_buffer_before_the_first_live_close(rig: list[Rig]) -> None:
    r = Rig(gap_fill=GapFillOptions(history=50, close_grace_wall_s=0.0))
    rig.append(r)
    r.at(60)
    await r.feed.start()
    peer = await r.peer()
    await until(lambda: len(r.feed.latest("BTCUSDT", "1m")) == 50)
    window = r.feed.latest("BTCUSDT", "1m")
    assert [(c.open_time - T0) // M for c in window] == list(range(10, 60))
    assert r.closed == []  # history fills latest(); consumers only see new closes
    r.at(61)
    peer.send(frame(60))
    await until(lambda: r.indices() == [60])
    assert len(r.feed.latest("BTCUSDT", "1m", 500)) == 51


async def test_a_row_past_the_window_is_not_history_and_then_a_close(rig: list[Rig]) -> None:
    """A REST answer may carry a row past the window (a poll asks for the forming candle too,
    and it can become final while the request is under way). Such a row is neither warm-up
    history nor emitted by that fill; the next fill emits it, once. (It used to reach the
    history handlers, so the service stored it as history and again as a close.)"""
    r = Rig(gap_fill=GapFillOptions(history=5, close_grace_wall_s=0.0))
    rig.append(r)
    history: list[Candle] = []
    r.feed.on_history(history.extend)
    fetch = r.history.fetch

    async def one_row_too_many(symbol: str, interval: str, start: int, end: int, *,
                               forming: object = None, margin_ms: int | None = None,
                               priority: object = None) -> list[Candle]:
        rows = await fetch(symbol, interval, start, end)
        extra = truth((end - T0) // M)
        return [*rows, msgspec.structs.replace(extra, source="rest")]

    r.history.fetch = one_row_too_many  # type: ignore[method-assign]
    r.at(10)
    await r.feed.start()
    peer = await r.peer()
    await until(lambda: len(r.feed.latest("BTCUSDT", "1m")) == 5)
    assert [(c.open_time - T0) // M for c in history] == [5, 6, 7, 8, 9]
    r.at(11)
    peer.send(frame(10))
    await until(lambda: r.indices() == [10])
    assert [(c.open_time - T0) // M for c in history] == [5, 6, 7, 8, 9]


async def test_resume_emits_everything_after_the_last_stored_candle(rig: list[Rig]) -> None:
    r = Rig(resume_from={KEY: T0 + 2 * M})
    rig.append(r)
    r.at(8)
    await r.feed.start()
    await until(lambda: r.indices() == [3, 4, 5, 6, 7])
    peer = await r.peer()
    peer.send(frame(7))  # the WebSocket repeats what REST already gave: dropped
    r.at(9)
    peer.send(frame(8))
    await until(lambda: r.indices() == [3, 4, 5, 6, 7, 8])


async def test_rest_outage_is_retried_and_the_series_stays_whole(rig: list[Rig]) -> None:
    r = Rig()
    rig.append(r)
    await r.feed.start()
    peer = await r.peer()
    peer.send(frame(0))
    await until(lambda: r.indices() == [0])
    r.history.fail = 2  # the next two REST calls fail
    r.at(4)
    peer.send(frame(3))
    await until(lambda: r.indices() == [0, 1, 2, 3])
    assert r.feed.filler is not None and r.feed.filler.stats.failures == 2


async def test_a_candle_the_exchange_never_had_is_skipped_and_reported(rig: list[Rig]) -> None:
    r = Rig()
    rig.append(r)
    r.history.missing = {2}
    await r.feed.start()
    peer = await r.peer()
    peer.send(frame(0))
    await until(lambda: r.indices() == [0])
    r.at(5)
    peer.send(frame(4))
    await until(lambda: r.indices() == [0, 1, 3, 4])
    assert r.feed.filler is not None and r.feed.filler.stats.unfillable == 1


# -- impossible input (review defects 5 and 6) ------------------------------------------------


def bad_frame(i: int, **k: object) -> str:
    """Candle i's closing frame with some kline fields replaced."""
    obj = json.loads(frame(i))
    obj["data"]["k"].update(k)
    return json.dumps(obj)


async def test_a_close_from_the_far_future_is_rejected_and_never_wedges_the_stream(
        rig: list[Rig]) -> None:
    """Regression: one closed kline with a far-future open time was held, the filler slept
    until its close (years) and every later close piled up behind it."""
    r = Rig()
    rig.append(r)
    await r.feed.start()
    peer = await r.peer()
    peer.send(frame(0))
    await until(lambda: r.indices() == [0])
    future = T0 + 10 * 365 * 24 * 60 * M  # ten years ahead, on the 1m grid
    peer.send(bad_frame(1, t=future, T=future + M - 1))
    r.at(3)
    peer.send(frame(1))
    peer.send(frame(2))
    await until(lambda: r.indices() == [0, 1, 2])
    assert r.feed.metrics.errors().get("rejected_candle") == 1
    r.at(6)
    peer.send(frame(5))  # 3 and 4 never came: the filler must still be free to fetch them
    await until(lambda: r.indices() == [0, 1, 2, 3, 4, 5])
    assert [c.source for c in r.closed[3:5]] == ["rest", "rest"]


@pytest.mark.parametrize(("field", "value"), [("c", ""), ("c", "abc"), ("h", "NaN"),
                                              ("v", "1e5"), ("l", "-1")])
async def test_a_close_with_a_bad_number_is_fetched_over_rest_instead(
        rig: list[Rig], field: str, value: str) -> None:
    """Regression: a close whose price text was no decimal advanced the sequence and then
    raised in the metrics (the candle lost). Now it is dropped as malformed, counted, and the
    candle is fetched over REST at once: the series has no hole and holds REST's values."""
    r = Rig()
    rig.append(r)
    await r.feed.start()
    peer = await r.peer()
    peer.send(frame(0))
    await until(lambda: r.indices() == [0])
    r.at(2)
    peer.send(bad_frame(1, **{field: value}))
    await until(lambda: r.indices() == [0, 1])
    assert r.closed[1].source == "rest" and r.closed[1].close_str == truth(1).close_str
    assert sum(s.malformed for s in r.feed.connection_stats()) == 1
    peer.send(frame(2))  # and the stream goes on
    r.at(3)
    await until(lambda: r.indices() == [0, 1, 2])


async def test_an_off_grid_close_is_not_emitted_as_an_extra_row(rig: list[Rig]) -> None:
    r = Rig()
    rig.append(r)
    await r.feed.start()
    peer = await r.peer()
    peer.send(frame(0))
    await until(lambda: r.indices() == [0])
    r.at(2)
    off = T0 + M + 17
    peer.send(bad_frame(1, t=off, T=off + M - 1))
    await until(lambda: r.indices() == [0, 1])
    assert [c.open_time for c in r.closed] == [T0, T0 + M]
    assert r.closed[1].source == "rest"


class GatedHistory(History):
    """History whose warm-up requests (the lowest priority) wait for ``release``; every call's
    priority is recorded."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.release = asyncio.Event()
        self.priorities: list[object] = []

    async def fetch(self, symbol: str, interval: str, start: int, end: int, *,
                    forming: object = None, margin_ms: int | None = None,
                    priority: object = None) -> list[Candle]:
        self.priorities.append(priority)
        if priority == warm_up(M):
            await self.release.wait()
        return await super().fetch(symbol, interval, start, end, forming=forming,
                                   margin_ms=margin_ms)


def gated_rig(history: int) -> tuple[Rig, GatedHistory]:
    r = Rig(gap_fill=GapFillOptions(history=history, close_grace_wall_s=0.0,
                                    retry_initial_s=0.01, retry_max_s=0.05))
    gated = GatedHistory(r.clock)
    assert r.feed.filler is not None
    r.feed.filler.source = gated
    return r, gated


async def test_live_closes_do_not_wait_for_the_warm_up(rig: list[Rig]) -> None:
    """Nothing stored: the first live close goes out at once; the warm-up history arrives
    behind it, in the buffer and the history handlers, never as a close."""
    r, gated = gated_rig(history=50)
    rig.append(r)
    history: list[Candle] = []
    r.feed.on_history(history.extend)
    r.at(60)
    await r.feed.start()
    peer = await r.peer()
    await until(lambda: gated.priorities == [warm_up(M)])  # the warm-up is under way
    r.at(61)
    peer.send(frame(60))
    await until(lambda: r.indices() == [60])  # emitted while the warm-up is still blocked
    assert history == []
    gated.release.set()
    await until(lambda: len(history) == 50)
    assert [(c.open_time - T0) // M for c in history] == list(range(10, 60))
    window = r.feed.latest("BTCUSDT", "1m", 500)
    assert [(c.open_time - T0) // M for c in window] == list(range(10, 61))
    r.at(62)
    peer.send(frame(61))
    await until(lambda: r.indices() == [60, 61])
    assert r.feed.filler is not None and r.feed.filler.stats.warmups == 1


async def test_candles_that_closed_while_subscribing_are_closes_not_history(
        rig: list[Rig]) -> None:
    """The feed started while candle 60 was forming; the WebSocket's first close came three
    candles later (63: the subscription was slow, 60..62's closing frames went by): 60..62
    closed after the start, so they are filled over REST (LIVE) and emitted before 63, in
    order; the warm-up's 20 candles of history end before 60, none of them a close. (The
    close-delay benchmark missed such a candle: a start just before a close.)"""
    r, gated = gated_rig(history=20)
    rig.append(r)
    history: list[Candle] = []
    r.feed.on_history(history.extend)
    r.at(60)
    await r.feed.start()
    peer = await r.peer()
    await until(lambda: gated.priorities == [warm_up(M)])
    r.at(64)
    peer.send(frame(63))
    await until(lambda: r.indices() == [60, 61, 62, 63])
    assert LIVE in gated.priorities
    gated.release.set()
    await until(lambda: len(history) == 20)
    assert [(c.open_time - T0) // M for c in history] == list(range(40, 60))
    window = r.feed.latest("BTCUSDT", "1m", 500)
    assert [(c.open_time - T0) // M for c in window] == list(range(40, 64))


async def test_the_start_is_placed_on_the_venues_clock() -> None:
    """The host clock is 40 s ahead of the venue's. By the host the feed started in candle 61
    (61 + 10 s), by the venue in 60 (60 + 30 s): once the clock sync knows the offset, 60 is
    the first candle owed, and a first close of 61 is held behind it (a hole to fill)."""
    host = Clock(T0 + 61 * M + 10_000)
    venue = VenueClock(host)
    ready = asyncio.Event()
    filler = GapFiller(History(host), venue, GapFillOptions(history=5), clock_ready=ready.wait)
    seq = StreamSequence("1m", lambda c: None)
    filler.track(KEY, seq, resume=False, on_history=lambda rows: None)
    await filler.start()
    try:
        assert seq.live_from == T0 + 61 * M  # the host's guess until the venue's clock is known
        venue.add_server_time(host.now - 40_000, host.now, host.now)
        host.now += 5_000  # the sync's answer came a little later: the start stays put
        ready.set()
        await until(lambda: seq.live_from == T0 + 60 * M)
        assert seq.offer(truth(61)) is Offer.HELD
        assert seq.expected == T0 + 60 * M
    finally:
        await filler.stop()


def test_a_first_close_before_or_at_the_owed_candle_anchors_as_before() -> None:
    """``live_from`` only ever adds owed candles: a first close at or before it (a closing
    frame that came late, a host clock behind) is emitted at once, as always."""
    for first in (59, 60):
        out: list[Candle] = []
        seq = StreamSequence("1m", out.append)
        seq.live_from = T0 + 60 * M
        assert seq.offer(truth(first)) is Offer.EMITTED
        assert [c.open_time for c in out] == [T0 + first * M]
    held = StreamSequence("1m", lambda c: None)
    held.live_from = T0 + 60 * M
    assert held.hold(truth(62)) is Offer.HELD  # an inferred close (no closed flag) too
    assert held.expected == T0 + 60 * M and held.first == T0 + 60 * M


async def test_a_resume_asks_first_and_by_gap_size(rig: list[Rig]) -> None:
    """A stream resuming from storage fills its gap at resume priority (its gap size as the
    rank), before anything lets its live closes out; holes are LIVE."""
    r = Rig(gap_fill=GapFillOptions(history=50, close_grace_wall_s=0.0, retry_initial_s=0.01,
                                    retry_max_s=0.05),
            resume_from={KEY: T0 + 50 * M})
    rig.append(r)
    gated = GatedHistory(r.clock)
    assert r.feed.filler is not None
    r.feed.filler.source = gated
    r.at(60)
    await r.feed.start()
    peer = await r.peer()
    await until(lambda: r.indices() == list(range(51, 60)))
    assert gated.priorities[0] == resume(9)
    r.at(63)
    peer.send(frame(62))  # 60 and 61 never came: a hole, filled at LIVE priority
    await until(lambda: r.indices() == list(range(51, 63)))
    assert LIVE in gated.priorities[1:]
    assert warm_up(M) not in gated.priorities  # a resumed stream has its history stored


async def test_a_restart_short_of_its_warm_up_fetches_the_rest_behind_storage(
        rig: list[Rig]) -> None:
    """The last run stored 5 candles (45..49) before it was stopped, its warm-up unfinished:
    the restart resumes after 49 and fetches the missing 45 candles behind 45, at warm-up
    priority, to the history handlers (storage), none as a close."""
    stored = [truth(i) for i in range(45, 50)]
    r = Rig(gap_fill=GapFillOptions(history=50, close_grace_wall_s=0.0, retry_initial_s=0.01,
                                    retry_max_s=0.05),
            resume_from={KEY: T0 + 49 * M}, preload={KEY: stored})
    rig.append(r)
    gated = GatedHistory(r.clock)
    gated.release.set()
    assert r.feed.filler is not None
    r.feed.filler.source = gated
    history: list[Candle] = []
    r.feed.on_history(history.extend)
    r.at(60)
    await r.feed.start()
    await r.peer()
    await until(lambda: r.indices() == list(range(50, 60)) and len(history) == 45)
    assert [(c.open_time - T0) // M for c in history] == list(range(0, 45))
    assert sorted(gated.priorities, key=str) == sorted([resume(10), warm_up(M)], key=str)
    window = r.feed.latest("BTCUSDT", "1m", 500)
    assert [(c.open_time - T0) // M for c in window] == list(range(0, 60))


async def test_a_first_close_before_the_end_asked_for_still_gets_its_full_history(
        rig: list[Rig]) -> None:
    """The warm-up asked for the 20 candles before 60 (40..59); the first live close to arrive,
    while it waited, was 59's (its closing frame came late): 59 is a close, and the history
    reaches back to 39 so that 20 candles precede it."""
    r, gated = gated_rig(history=20)
    rig.append(r)
    history: list[Candle] = []
    r.feed.on_history(history.extend)
    r.at(60, into=30_000)
    await r.feed.start()
    peer = await r.peer()
    await until(lambda: gated.priorities == [warm_up(M)])
    peer.send(frame(59))
    await until(lambda: r.indices() == [59])
    gated.release.set()
    await until(lambda: len(history) == 20)
    assert [(c.open_time - T0) // M for c in history] == list(range(39, 59))
    assert r.indices() == [59]


async def test_a_long_fill_restarts_its_waits_after_progress_and_its_count_after_an_answer(
        ) -> None:
    """A fill that runs on (every close confirmed over REST, at speed) must not wait longer
    and longer between fetches that each made progress, nor give up on failures spread out
    between answers (the hyperliquid chaos run's streams ended 682 candles behind, each
    fill pausing 30 s between catch-up fetches)."""
    loop = asyncio.get_running_loop()
    attempts = FetchAttempts(0.05, 2.0, max_attempts=3)
    for _ in range(4):  # 0.05, 0.1, 0.2, 0.4 (jittered): REST brings nothing new
        await attempts.pause()
    attempts.progressed()
    t0 = loop.time()
    await attempts.pause()
    assert loop.time() - t0 < 0.2  # the first wait again, not 0.8 s
    assert not await attempts.failed() and not await attempts.failed()
    attempts.succeeded()  # an answer between: the next failures are a new run
    assert not await attempts.failed() and not await attempts.failed()
    assert await attempts.failed()  # three in a row
