"""``ReplayFeed`` / ``CandleFeed.replay``: stored candles through the live consumer API, so a
strategy runs unchanged on history — exactly the stored series, in close-time order, once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from candlekeeper import CandleFeed
from candlekeeper.core.candle import Candle
from candlekeeper.errors import ConfigError
from candlekeeper.replay import ReplayFeed
from candlekeeper.sinks.postgres import PostgresSink
from candlekeeper.sinks.sqlite import SQLiteSink
from servers import PostgresServer
from storedkit import BTC_1M, ETH_5M, T0, series

BTC = series(BTC_1M, 300, holes=(3, 150, 151))
ETH = series(ETH_5M, 60, holes=(7,))
#: what a live feed would emit: close-time order across streams; at equal close times the
#: streams' order (BTC 1m before ETH 5m)
MERGED = sorted([*BTC, *ETH], key=lambda c: (c.close_time, c.symbol != "BTCUSDT"))


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    path = tmp_path / "candles.db"
    sink = SQLiteSink(path)
    await sink.open()
    await sink.write([*BTC, *ETH])
    await sink.close()
    return path


async def strategy(feed: Any) -> tuple[list[Candle], list[Candle], list[int]]:
    """A strategy written against CandleFeed: a handler, an iterator, the ring buffer."""
    handled: list[Candle] = []
    iterated: list[Candle] = []
    windows: list[int] = []
    feed.on_closed(handled.append)
    async with feed:
        async for candle in feed.closed():
            iterated.append(candle)
            windows.append(len(feed.latest(candle.symbol, candle.interval, 20)))
        await feed.wait()
    return handled, iterated, windows


async def test_a_strategy_sees_the_stored_series_once_in_order(db: Path) -> None:
    feed = CandleFeed.replay(db, ["btc-usdt", "ETHUSDT"], ["1m", "5m"],
                             venue="binance-usdm", page_rows=16)
    assert isinstance(feed, ReplayFeed)
    handled, iterated, windows = await strategy(feed)
    assert handled == MERGED and iterated == MERGED
    assert max(windows) == 20 and feed.emitted == len(MERGED)
    assert feed.latest("BTCUSDT", "1m", 50) == BTC[-50:]
    assert feed.latest("ETHUSDT", "5m") == ETH  # buffer_size 500 holds all of it
    df = feed.latest_df("BTCUSDT", "1m", 3)
    assert [str(x) for x in df["close"]] == [c.close_str for c in BTC[-3:]]


async def test_a_range_every_stored_stream_and_a_slow_handler(db: Path) -> None:
    start, end = T0 + 100 * 60_000, T0 + 200 * 60_000
    feed = ReplayFeed(db, start=start, end=end, page_rows=7)  # every stored stream
    seen: list[Candle] = []

    async def slow(c: Candle) -> None:  # a queue of 3: the replay must wait, never drop
        await asyncio.sleep(0.0005)
        seen.append(c)

    sub = feed.on_closed(slow, maxsize=3)
    await feed.start()
    await asyncio.wait_for(feed.wait(), 30)
    await feed.stop()
    assert seen == [c for c in MERGED if start <= c.open_time < end]
    assert sub.dropped == 0 and len(seen) == 98 + 20


async def test_paced_by_close_times(db: Path) -> None:
    # 40 one-minute closes at 2,400x: 39 market minutes in 0.975 s of wall time
    feed = ReplayFeed(db, ["BTCUSDT"], ["1m"], venue="binance-usdm", start=T0 + 200 * 60_000,
                      end=T0 + 240 * 60_000, speed=2_400)
    stamps: list[float] = []
    feed.on_closed(lambda c: stamps.append(time.monotonic()), inline=True)
    t0 = time.monotonic()
    async with feed:
        await asyncio.wait_for(feed.wait(), 30)
    assert len(stamps) == 40
    assert 0.9 <= stamps[-1] - stamps[0] <= 3.0
    assert stamps[0] - t0 < 1.5  # the first one at once, not a pacing step later
    fast = ReplayFeed(db, ["BTCUSDT"], ["1m"], venue="binance-usdm")
    t1 = time.monotonic()
    async with fast:
        await asyncio.wait_for(fast.wait(), 30)
    assert fast.emitted == len(BTC) and time.monotonic() - t1 < 2.0  # speed=None: no pacing


async def test_from_postgresql(postgres: PostgresServer) -> None:
    sink = PostgresSink(postgres.dsn)
    await sink.open()
    await sink.write([*BTC, *ETH])
    await sink.close()
    handled, iterated, _ = await strategy(CandleFeed.replay(postgres.dsn, page_rows=50))
    assert handled == MERGED and iterated == MERGED


async def test_bad_arguments(db: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no SQLite database"):
        ReplayFeed(tmp_path / "missing.db")
    with pytest.raises(ConfigError, match="speed"):
        ReplayFeed(db, speed=0)
    feed = ReplayFeed(db, ["DOGEUSDT"])
    with pytest.raises(ConfigError, match="no stored stream"):
        await feed.start()
    with pytest.raises(KeyError):
        ReplayFeed(db).latest("BTCUSDT", "1m")
    # times: Unix ms, ISO text (UTC unless it says otherwise) or datetimes
    assert ReplayFeed(db, start="2023-11-14T22:00", end="2023-11-14T23:00+01:00").start_ms == T0
    assert ReplayFeed(db, end=datetime(2023, 11, 14, 22, tzinfo=UTC)).end_ms == T0
    with pytest.raises(ConfigError, match="is not a time"):
        ReplayFeed(db, start="yesterday")


async def test_stop_mid_replay_and_a_config_source(db: Path) -> None:
    from candlekeeper.config import Config

    config = Config.from_dict({"feeds": [{"venue": "binance-usdm", "symbols": ["BTCUSDT"]}],
                               "sinks": {"sqlite": {"path": str(db)}}}, source="test")
    feed = ReplayFeed(config, ["BTCUSDT"], ["1m"], speed=600)  # ten candles a second
    got: list[Candle] = []

    async def consume() -> None:
        async for c in feed.closed():
            got.append(c)

    async with feed:
        task = asyncio.create_task(consume())
        async with asyncio.timeout(30):
            while len(got) < 3:
                await asyncio.sleep(0.01)
    await asyncio.wait_for(task, 10)  # the iteration ends with the replay
    assert feed.done.is_set() and got == BTC[:len(got)] and 3 <= len(got) < len(BTC)
    assert [c async for c in feed.closed()] == []  # after the end: nothing, at once


async def test_warm_up_history_goes_to_buffers_and_on_history_not_to_closes(db: Path) -> None:
    start = T0 + 100 * 60_000
    feed = CandleFeed.replay(db, ["BTCUSDT"], ["1m"], start, start + 10 * 60_000,
                             venue="binance-usdm", history=5)
    warm: list[list[Candle]] = []
    first_window: list[Candle] = []
    closes: list[Candle] = []
    feed.on_history(warm.append)
    feed.on_update(closes.append)  # live code subscribing to updates runs unchanged: none come
    feed.on_status(print)

    def on_closed(c: Candle) -> None:
        if not first_window:
            first_window.extend(feed.latest("BTCUSDT", "1m"))
        closes.append(c)

    feed.on_closed(on_closed, inline=True)
    async with feed:
        assert [c async for c in feed.updates()] == []  # ends with the replay
        await asyncio.wait_for(feed.wait(), 30)
    before = [c for c in BTC if start - 5 * 60_000 <= c.open_time < start]
    assert warm == [before] and len(before) == 5
    assert closes == [c for c in BTC if start <= c.open_time < start + 10 * 60_000]
    assert first_window == [*before, closes[0]]  # inside the first handler: history + it
