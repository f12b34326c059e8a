"""REST-only mode of a feed: every stream polled over REST just after each close, with the
forming candle offered as an update — the real feed and gap filler, a hand-driven clock and a
REST history that knows only what has closed by then (no WebSocket at all)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest

from candlekeeper import Candle, CandleFeed, StreamKey, StreamState
from candlekeeper.errors import ConfigError
from candlekeeper.feed import FeedPlumbing
from candlekeeper.gapfill import GapFillOptions
from candlekeeper.transport.memory import MemoryConnector

M = 60_000
T0 = 1_700_000_040_000 // M * M
KEY = StreamKey("binance-usdm", "BTCUSDT", "1m")
OPTS = GapFillOptions(history=0, close_margin_ms=2_000, close_grace_ms=2_000,
                      close_grace_wall_s=0.0, retry_initial_s=0.01, retry_max_s=0.05)


class Clock:
    speed = 1000.0

    def __init__(self, now: int) -> None:
        self.now = now

    def time_ms(self) -> int:
        return self.now

    def wall_seconds(self, venue_ms: float) -> float:
        return venue_ms / 1000.0 / self.speed


def truth(i: int) -> Candle:
    price = f"{100 + i}.50"
    return Candle("binance-usdm", "BTCUSDT", "1m", T0 + i * M, T0 + i * M + M - 1, price, price,
                  price, price, "1.000", closed=True, source="rest")


class History:
    """REST that returns closed candles and, when asked, the forming one."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls: list[tuple[int, int, bool]] = []

    async def fetch(self, symbol: str, interval: str, start: int, end: int, *,
                    forming: object = None, margin_ms: int | None = None,
                    priority: object = None) -> list[Candle]:
        self.calls.append((start, end, forming is not None))
        out = []
        t = start
        while t + M - 1 < self.clock.now and t < end:
            out.append(truth((t - T0) // M))
            t += M
        if callable(forming):
            i = (self.clock.now - T0) // M
            forming(msgspec.structs.replace(truth(i), closed=False, close_str="1.0"))
        return out


@pytest.fixture
async def feeds() -> AsyncIterator[list[CandleFeed]]:
    made: list[CandleFeed] = []
    yield made
    for f in made:
        await f.stop()


def rest_feed(clock: Clock, history: History, resume: int | None = None) -> CandleFeed:
    connector = MemoryConnector()  # never used: nothing connects in rest mode
    return CandleFeed("binance-usdm", ["BTCUSDT"], ["1m"], clock=clock,  # type: ignore[arg-type]
                      gap_fill=OPTS, mode="rest",
                      plumbing=FeedPlumbing(connector=connector, history_source=history,
                                            resume_from={KEY: resume} if resume else None))


async def until(cond: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0.005)


async def test_each_close_is_polled_once_in_order_with_the_forming_candle(
        feeds: list[CandleFeed]) -> None:
    clock = Clock(T0 + 10_000)  # inside candle 0
    history = History(clock)
    feed = rest_feed(clock, history, resume=T0 - M)  # storage holds everything before 0
    feeds.append(feed)
    closed: list[Candle] = []
    updates: list[Candle] = []
    feed.on_closed(closed.append, inline=True)
    feed.on_update(updates.append, inline=True)
    await feed.start()
    assert feed.stats()[0].state is StreamState.POLLING
    assert feed._task is None  # no WebSocket at all
    for i in range(1, 6):
        clock.now = T0 + i * M + 2_001  # candle i-1 final (past the close margin)
        await until(lambda i=i: len(closed) == i)
    assert [c.open_time for c in closed] == [T0 + i * M for i in range(5)]
    assert all(c.source == "rest" and c.closed for c in closed)
    # each poll asked for the candle that closed and, in the same request, the forming one
    assert updates and all(not u.closed for u in updates)
    assert updates[-1].open_time == T0 + 5 * M
    polls = [c for c in history.calls if c[2]]
    assert len(polls) >= 5 and all(end - start <= M for start, end, _ in polls[1:])


async def test_rest_mode_resumes_after_a_restart_with_no_hole_and_no_repeat(
        feeds: list[CandleFeed]) -> None:
    clock = Clock(T0 + 3 * M + 5_000)
    history = History(clock)
    feed = rest_feed(clock, history, resume=T0)  # stored through candle 0; 1 and 2 closed since
    feeds.append(feed)
    closed: list[Candle] = []
    feed.on_closed(closed.append, inline=True)
    await feed.start()
    await until(lambda: len(closed) == 2)
    clock.now = T0 + 4 * M + 2_500
    await until(lambda: len(closed) == 3)
    assert [c.open_time for c in closed] == [T0 + i * M for i in (1, 2, 3)]


def test_rest_mode_needs_gap_filling() -> None:
    with pytest.raises(ConfigError, match="needs gap filling"):
        CandleFeed("binance-usdm", ["BTCUSDT"], ["1m"], mode="rest",
                   gap_fill=GapFillOptions(enabled=False))
    with pytest.raises(ConfigError, match="unknown transport mode"):
        CandleFeed("binance-usdm", ["BTCUSDT"], ["1m"], mode="carrier-pigeon")


class BudgetedHistory(History):
    """The same REST, for any symbol, behind a budget of ``rate`` small requests a second."""

    def __init__(self, clock: Clock, rate: float) -> None:
        super().__init__(clock)
        self.rate = rate
        self.by_symbol: dict[str, int] = {}

    def requests_per_second(self, rows: int = 2) -> float:
        return self.rate

    async def fetch(self, symbol: str, interval: str, start: int, end: int, *,
                    forming: object = None, margin_ms: int | None = None,
                    priority: object = None) -> list[Candle]:
        self.by_symbol[symbol] = self.by_symbol.get(symbol, 0) + 1
        rows = await super().fetch(symbol, interval, start, end, forming=None)
        return [msgspec.structs.replace(c, symbol=symbol) for c in rows]


async def test_polls_of_many_streams_are_spaced_within_their_share_of_the_budget(
        feeds: list[CandleFeed]) -> None:
    """20 streams polled while a candle closes every 50 ms: a poll at every close would ask
    400 requests a second of a budget of 10. Each stream is polled again only after
    20 / (10 x 0.5) = 4 s, and its next poll fetches every candle closed meanwhile, once."""
    clock = Clock(T0 + 10_000)
    history = BudgetedHistory(clock, rate=10.0)
    symbols = [f"S{i}USDT" for i in range(20)]
    keys = {StreamKey("binance-usdm", s, "1m"): T0 - M for s in symbols}
    feed = CandleFeed("binance-usdm", symbols, ["1m"], clock=clock,  # type: ignore[arg-type]
                      gap_fill=OPTS, mode="rest",
                      plumbing=FeedPlumbing(connector=MemoryConnector(), history_source=history,
                                            resume_from=keys))
    feeds.append(feed)
    closed: dict[str, list[int]] = {}
    feed.on_closed(lambda c: closed.setdefault(c.symbol, []).append(c.open_time), inline=True)
    await feed.start()
    clock.now = T0 + M + 2_001  # candle 0 is final: every stream polls it at once
    await until(lambda: len(history.by_symbol) == 20)
    started = asyncio.get_running_loop().time()
    for i in range(2, 42):  # two seconds of closes, one every 50 ms
        clock.now = T0 + i * M + 2_001
        await asyncio.sleep(0.05)
    elapsed = asyncio.get_running_loop().time() - started
    calls = sum(history.by_symbol.values())
    # the first round, then nothing until 4 s after it (a fill may run once more for a close
    # that came while it was under way: at most one more per stream)
    assert elapsed < 3.9 and calls <= 40, (elapsed, history.by_symbol)
    # and the next polls bring everything, in order, once
    await until(lambda: all(len(closed.get(s, [])) == 41 for s in symbols), timeout=15)
    assert all(closed[s] == [T0 + i * M for i in range(41)] for s in symbols)
    assert sum(history.by_symbol.values()) <= 80  # a second round, not a poll per close


async def test_a_first_poll_after_the_start_candle_closed_emits_it(
        feeds: list[CandleFeed]) -> None:
    """Nothing stored, REST mode: the feed started inside candle 0, but its first poll could
    look only when 0 and 1 had closed (the venue's clock took that long to learn, a
    universe's polls are spaced). Both closed after the start: they are closes, in order, not
    adopted as history; the warm-up's history ends before 0."""
    clock = Clock(T0 + 10_000)
    ready = asyncio.Event()
    connector = MemoryConnector()
    feed = CandleFeed("binance-usdm", ["BTCUSDT"], ["1m"], clock=clock,  # type: ignore[arg-type]
                      gap_fill=OPTS.model_copy(update={"history": 5}), mode="rest",
                      plumbing=FeedPlumbing(connector=connector, history_source=History(clock)))
    feeds.append(feed)
    assert feed.filler is not None
    feed.filler._clock_ready = ready.wait  # every fill waits for the venue's clock
    closed: list[Candle] = []
    history: list[Candle] = []
    feed.on_closed(closed.append, inline=True)
    feed.on_history(history.extend)
    await feed.start()
    await asyncio.sleep(0.05)
    clock.now = T0 + 2 * M + 2_001  # 0 and 1 final
    ready.set()
    await until(lambda: len(closed) == 2 and len(history) == 5)
    assert [c.open_time for c in closed] == [T0, T0 + M]
    assert [c.open_time for c in history] == [T0 + i * M for i in range(-5, 0)]
