"""CandleFeed over the in-memory connector: the real feed + session code, no sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from candlekeeper import Candle, CandleFeed, StreamState
from candlekeeper.core.bus import OverflowPolicy
from candlekeeper.errors import ConfigError
from candlekeeper.feed import FeedPlumbing
from candlekeeper.gapfill import GapFillOptions
from candlekeeper.transport import TransportOptions
from candlekeeper.transport.memory import MemoryConnector, MemoryPeer

FAST = TransportOptions(backoff_initial_s=0.01, backoff_max_s=0.05, ack_timeout_s=1.0,
                        watchdog_period_s=0.01)
T0 = 1_626_992_700_000


def frame(symbol: str, open_time: int, *, closed: bool, close: str = "7.6170",
          interval: str = "1m", event_time: int | None = None) -> str:
    return json.dumps({
        "stream": f"{symbol.lower()}@kline_{interval}",
        "data": {"e": "kline", "E": event_time or open_time + 30_000, "s": symbol, "k": {
            "t": open_time, "T": open_time + 59_999, "s": symbol, "i": interval,
            "f": 1, "L": 2, "o": "7.6080", "c": close, "h": "7.6180", "l": "7.6070",
            "v": "3005", "n": 113, "x": closed, "q": "22875.8590", "V": "1900",
            "Q": "14464.6960", "B": "0"}},
    })


async def ack_all(peer: MemoryPeer) -> None:
    while not peer.closed:
        try:
            sent = await peer.recv_text(timeout=30)
        except TimeoutError:
            return
        req = json.loads(sent.payload)
        if req.get("method") == "SUBSCRIBE":
            peer.send(json.dumps({"result": None, "id": req["id"]}))


class Venue:
    """Plays the exchange's side of one feed's connection."""

    def __init__(self) -> None:
        self.connector = MemoryConnector()
        self.tasks: list[asyncio.Task[None]] = []

    async def peer(self) -> MemoryPeer:
        peer = await self.connector.accept()
        self.tasks.append(asyncio.create_task(ack_all(peer)))
        return peer


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    v = Venue()
    yield v
    for t in v.tasks:
        t.cancel()
    await asyncio.gather(*v.tasks, return_exceptions=True)


def make_feed(venue: Venue, symbols: list[str] | None = None) -> CandleFeed:
    return CandleFeed("binance-usdm", symbols or ["BTCUSDT", "ethusdt"], ["1m"],
                      ws_url="ws://venue.test/market", transport=FAST,
                      gap_fill=GapFillOptions(enabled=False),
                      plumbing=FeedPlumbing(connector=venue.connector))


async def until(cond: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0.005)


async def test_exactly_one_close_per_open_time_in_order(venue: Venue) -> None:
    feed = make_feed(venue)
    got: list[Candle] = []
    got_async: list[Candle] = []

    async def ahandler(c: Candle) -> None:
        got_async.append(c)

    feed.on_closed(got.append)
    feed.on_closed(ahandler)
    updates: list[Candle] = []
    feed.on_update(updates.append)
    async with feed:
        await feed.start()  # idempotent
        peer = await venue.peer()
        sequence = [
            frame("BTCUSDT", T0, closed=False, close="1.0"),
            frame("BTCUSDT", T0, closed=True, close="2.0"),
            frame("BTCUSDT", T0, closed=True, close="2.0"),  # the exchange repeats the close
            frame("BTCUSDT", T0 + 60_000, closed=False),
            frame("BTCUSDT", T0 + 60_000, closed=True, close="3.0"),
            frame("BTCUSDT", T0, closed=True, close="2.0"),  # a late repeat of an older close
            frame("ETHUSDT", T0, closed=True, close="9.0"),
        ]
        for f in sequence:
            peer.send(f)
        await until(lambda: len(got) == 3 and len(got_async) == 3 and len(updates) == 7)
    btc = [c for c in got if c.symbol == "BTCUSDT"]
    assert [(c.open_time, str(c.close)) for c in btc] == [(T0, "2.0"), (T0 + 60_000, "3.0")]
    assert [c.symbol for c in got_async] == [c.symbol for c in got]
    stats = {s.key.symbol: s for s in feed.stats()}
    assert stats["BTCUSDT"].duplicates == 1 and stats["BTCUSDT"].late == 1
    assert stats["BTCUSDT"].closed == 2 and stats["BTCUSDT"].messages == 6
    assert [str(c.close) for c in feed.latest("BTCUSDT", "1m")] == ["2.0", "3.0"]
    assert [str(c.close) for c in feed.latest("btc-usdt", "1m", 1)] == ["3.0"]
    assert feed.latest("ETHUSDT", "1m")[0].close == got[-1].close


async def test_closed_iterator_and_status_events(venue: Venue) -> None:
    feed = make_feed(venue, ["BTCUSDT"])
    states: list[StreamState] = []
    feed.on_status(lambda s: states.append(s.state))
    received: list[int] = []
    async with feed:
        peer = await venue.peer()

        async def consume() -> None:
            async for c in feed.closed():
                received.append(c.open_time)
                if len(received) == 3:
                    return

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.01)
        for i in range(3):
            peer.send(frame("BTCUSDT", T0 + i * 60_000, closed=True))
        await asyncio.wait_for(consumer, 5)
        await until(lambda: StreamState.LIVE in states)
    assert received == [T0, T0 + 60_000, T0 + 120_000]
    assert StreamState.SUBSCRIBED in states


async def test_a_raising_handler_never_stops_the_feed(venue: Venue) -> None:
    feed = make_feed(venue, ["BTCUSDT"])
    good: list[int] = []

    def bad(c: Candle) -> None:
        raise ValueError("strategy bug")

    sub = feed.on_closed(bad)
    inline = feed.on_closed(bad, inline=True)
    feed.on_closed(lambda c: good.append(c.open_time))
    async with feed:
        peer = await venue.peer()
        for i in range(5):
            peer.send(frame("BTCUSDT", T0 + i * 60_000, closed=True))
        await until(lambda: len(good) == 5 and sub.errors == 5)
    assert inline.errors == 5


async def test_malformed_and_foreign_frames_are_counted_and_the_feed_continues(
        venue: Venue) -> None:
    feed = make_feed(venue, ["BTCUSDT"])
    got: list[Candle] = []
    feed.on_closed(got.append)
    async with feed:
        peer = await venue.peer()
        peer.send('{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":')
        peer.send(b"\x00\xff garbage")
        peer.send(frame("XRPUSDT", T0, closed=True))  # a stream we never subscribed
        peer.send(frame("BTCUSDT", T0, closed=True))
        await until(lambda: len(got) == 1)
        conn = feed.connection_stats()[0]
        assert conn.malformed == 2
    assert got[0].symbol == "BTCUSDT"


async def test_slow_update_consumer_drops_oldest_not_the_feed(venue: Venue) -> None:
    feed = make_feed(venue, ["BTCUSDT"])
    release = asyncio.Event()
    seen: list[str] = []

    async def slow(c: Candle) -> None:
        await release.wait()
        seen.append(str(c.close))

    sub = feed.on_update(slow, maxsize=2, policy=OverflowPolicy.DROP_OLDEST)
    closed: list[Candle] = []
    feed.on_closed(closed.append)
    async with feed:
        peer = await venue.peer()
        for i in range(10):
            peer.send(frame("BTCUSDT", T0, closed=False, close=f"{i}.0"))
        peer.send(frame("BTCUSDT", T0, closed=True, close="10.0"))
        await until(lambda: len(closed) == 1)
        release.set()
        await until(lambda: len(seen) >= 2)
    assert sub.dropped >= 8
    assert seen[-1] == "10.0"


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown venue"):
        CandleFeed("nope", ["BTCUSDT"], ["1m"])
    with pytest.raises(ConfigError, match="no interval '1s'"):
        CandleFeed("binance-usdm", ["BTCUSDT"], ["1s"])
    with pytest.raises(ConfigError, match="bad symbol"):
        CandleFeed("binance-spot", ["BTC USDT!"], ["1m"])
    with pytest.raises(KeyError):
        CandleFeed("binance-spot", ["BTCUSDT"], ["1m"]).latest("ETHUSDT", "1m")
