"""Derived intervals against the simulator over real sockets: a derived series of an interval the
venue also serves natively equals the native one field for field (generated series, and a real
exchange series replayed), through the library and through the service across a restart.

The one field allowed to differ is the trade ids, and only where a constituent came from REST:
REST klines carry none, so a derived candle made partly of REST rows has the ids of its
WebSocket constituents only (its first/last trade id may then be inner ones). A derived candle
whose constituents all closed on the WebSocket is compared with its trade ids too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from rich.console import Console

from candlekeeper import Candle, CandleFeed, StreamKey
from candlekeeper.config import Config
from candlekeeper.gapfill import GapFillOptions
from candlekeeper.report import print_report
from candlekeeper.service import Service
from candlekeeper.sim import Simulator
from candlekeeper.sim.candles import aggregate as sim_aggregate
from candlekeeper.sinks.sqlite import SQLiteSink

pytestmark = pytest.mark.integration

VENUE = "binance-usdm"  # its simulator serves 1m and 5m/1h natively, with trade ids
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "protocol-samples"
#: a real exchange series: 10,999 contiguous 5m BTC candles (README.md of the samples)
REAL_5M = SAMPLES / "freqtrade_orderflow_candles_BTC_5m_2023-01.json"
FIELDS = ("open_str", "high_str", "low_str", "close_str", "volume_str", "quote_volume_str",
          "trades", "taker_buy_base_volume_str", "taker_buy_quote_volume_str")


def truth_2m(sim: Simulator, venue: str = VENUE) -> list[Candle]:
    """2m candles aggregated from the simulator's 1m truth by the simulator's own code (the
    venue lacks 2m: this is the independent reference)."""
    ones = {c.open_time: c for c in sim.closed_candles(venue, "BTCUSDT", "1m")}
    out = []
    for t in sorted(ones):
        if t % 120_000 or t + 60_000 not in ones:
            continue
        parts = [ones[t], ones[t + 60_000]]
        # the simulator's aggregate counts a field the venue lacks as 0; the venue has none
        lacking = {f: None for f in ("quote_volume_str", "trades", "taker_buy_base_volume_str",
                                     "taker_buy_quote_volume_str")
                   if getattr(parts[0], f) is None}
        out.append(msgspec.structs.replace(sim_aggregate(parts, "1h", t, True), interval="2m",
                                           close_time=t + 120_000 - 1, **lacking))
    return out


def real_series() -> Path:
    assert REAL_5M.is_file(), (f"the real series {REAL_5M} is missing: these tests need "
                               "../shared/protocol-samples beside the repository")
    return REAL_5M


async def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.05)
    assert cond(), what


def assert_equal_series(got: list[Candle], truth: list[Candle], what: str,
                        ws_only: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    """``got`` is contiguous and equals ``truth`` over its range, field for field, exact text."""
    assert got, f"{what}: nothing derived"
    want = [c for c in truth if got[0].open_time <= c.open_time <= got[-1].open_time]
    assert [c.open_time for c in got] == [c.open_time for c in want], f"{what}: hole or dup"
    for g, w in zip(got, want, strict=True):
        assert g.source == "derived", f"{what} {g.open_time}: source {g.source}"
        assert g.close_time == w.close_time and g.closed
        for f in FIELDS:
            assert getattr(g, f) == getattr(w, f), \
                f"{what} {g.open_time} {f}: {getattr(g, f)!r} != native {getattr(w, f)!r}"
        if g.open_time in ws_only:
            assert (g.first_trade_id, g.last_trade_id) == (w.first_trade_id, w.last_trade_id)


#: venues with a closed flag whose simulator serves 1m, 5m and 1h (one of each family)
FLAGGED = (VENUE, "binance-spot", "okx-swap", "bybit-linear")


@pytest.mark.parametrize("venue", FLAGGED)
async def test_derived_5m_and_1h_equal_the_native_series(venue: str) -> None:
    async with Simulator(venues=(venue,), symbols=["BTCUSDT"], intervals=("1m", "5m", "1h"),
                         speed=1200, history=400) as sim:
        feed = CandleFeed(venue, ["BTCUSDT"], ["5m@1m", "1h@1m", "2m"],
                          ws_url=sim.ws_base(venue), rest_url=sim.rest_base(venue),
                          clock=sim.clock, gap_fill=GapFillOptions(history=300))
        live: list[Candle] = []
        feed.on_closed(live.append, inline=True)
        assert feed.keys == [StreamKey(venue, "BTCUSDT", "1m")]  # the base only is subscribed
        async with feed:
            await until(lambda: sum(c.interval == "1h" for c in live) >= 2, 60,
                        "two live derived 1h closes")
            await until(lambda: feed.filler is not None and feed.filler.warming == 0, 30,
                        "warm-up done")
        first_ws = min(c.open_time for c in live if c.interval == "1m" and c.source == "ws")
        for interval in ("5m", "1h"):
            got = feed.latest("BTCUSDT", interval)
            ws_only = {c.open_time for c in live if c.interval == interval
                       and c.open_time >= first_ws}
            assert_equal_series(got, sim.closed_candles(venue, "BTCUSDT", interval),
                                f"{venue} derived {interval}", ws_only)
            assert len(got) >= (5 if interval == "1h" else 60)
        assert_equal_series(feed.latest("BTCUSDT", "2m"), truth_2m(sim, venue),
                            f"{venue} derived 2m")
        emitted = [c.open_time for c in live if c.interval == "1h"]
        assert emitted == sorted(set(emitted)), "derived closes once each, in order"


async def test_derived_from_a_real_5m_series_equals_the_native_coarser_ones() -> None:
    """The real BTC series (5m, volumes with three decimals, prices like '16726.0') replayed:
    15m, 1h, 4h and 1d derived from its 5m equal what the venue serves natively, exact text;
    daily bars anchored at UTC+8 equal the 5m truth aggregated over 16:00-16:00 UTC."""
    async with Simulator(venues=(VENUE,), replay=real_series(),
                         intervals=("5m", "15m", "1h", "4h", "1d"), speed=24_000,
                         history=700) as sim:
        symbol = sim.replay[0].symbol
        feed = CandleFeed(VENUE, [symbol],
                          ["15m@5m", "1h@5m", "4h@5m", "1d@5m", "1d+08:00@5m"],
                          ws_url=sim.ws_base(VENUE),
                          rest_url=sim.rest_base(VENUE), clock=sim.clock,
                          gap_fill=GapFillOptions(history=650))
        live: list[Candle] = []
        feed.on_closed(live.append, inline=True)
        async with feed:
            await until(lambda: {"1d", "1d+08:00"} <= {c.interval for c in live}, 60,
                        "a live derived close of both daily series")
            await until(lambda: feed.filler is not None and feed.filler.warming == 0, 30,
                        "warm-up done")
        for interval, least in (("15m", 100), ("1h", 30), ("4h", 6), ("1d", 2)):
            got = feed.latest(symbol, interval)
            assert_equal_series(got, sim.closed_candles(VENUE, symbol, interval),
                                f"real {interval}")
            assert len(got) >= least, f"real {interval}: only {len(got)}"
        fives = {c.open_time: c for c in sim.closed_candles(VENUE, symbol, "5m")}
        anchored = feed.latest(symbol, "1d+08:00")
        assert len(anchored) >= 2
        for c in anchored:
            assert c.open_time % 86_400_000 == 16 * 3_600_000, "opens at 00:00 UTC+8"
            parts = [fives[t] for t in range(c.open_time, c.open_time + 86_400_000, 300_000)]
            want = sim_aggregate(parts, "1d", c.open_time, True)
            for f in FIELDS:
                assert getattr(c, f) == getattr(want, f), f"1d+08:00 {c.open_time} {f}"


DERIVED = ("5m@1m", "1h@1m", "2m")


def service_config(sim: Simulator, db: Path, intervals: tuple[str, ...] = DERIVED) -> Config:
    return Config.from_dict({
        "feeds": [{"venue": VENUE, "symbols": ["BTCUSDT"], "intervals": list(intervals),
                   "ws_url": sim.ws_base(VENUE), "rest_url": sim.rest_base(VENUE)}],
        "sinks": {"sqlite": {"path": str(db), "flush_interval_s": 0.1}},
        "observability": {"http": {"enabled": False}, "dashboard": False},
        "gap_fill": {"history": 120},
    })


async def stored(db: Path, interval: str) -> list[Candle]:
    sink = SQLiteSink(db)
    await sink.open()
    try:
        return sink.read(StreamKey(VENUE, "BTCUSDT", interval))
    finally:
        await sink.close()


async def run_service(sim: Simulator, db: Path, done: Callable[[Service], bool],
                      intervals: tuple[str, ...] = DERIVED) -> Service:
    service = Service(service_config(sim, db, intervals), clock=sim.clock)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        async with asyncio.timeout(60):
            await service.ready.wait()
            while not done(service):
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return service


def base_mid_bucket(service: Service) -> bool:
    """The 1m base has closed 2 or 3 of the current 5m bucket's candles: stopping now leaves
    a bucket that the restart must complete from stored and fetched candles."""
    st = next(s for f in service.feeds for s in f.stats() if s.key.interval == "1m")
    return st.last_closed is not None and st.last_closed.open_time % 300_000 in (60_000, 120_000)


def derived_closed(service: Service, interval: str) -> int:
    return sum(d.metrics.closed for f in service.feeds for d in f.derived_streams()
               if d.key.interval == interval)


async def test_service_stores_derived_series_whole_across_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "candles.db"
    async with Simulator(venues=(VENUE,), symbols=["BTCUSDT"], intervals=("1m", "5m", "1h"),
                         speed=600, history=400) as sim:
        await run_service(sim, db, lambda s: derived_closed(s, "5m") >= 4
                          and not s.warming and base_mid_bucket(s))
        before = {i: await stored(db, i) for i in ("5m", "1h", "2m", "1m")}
        assert len(before["5m"]) >= 4
        last_5m, last_1m = before["5m"][-1].open_time, before["1m"][-1].open_time
        assert last_1m >= last_5m + 5 * 60_000, "the first run stopped inside a 5m bucket"
        # the restart: everything stored resumes; the bucket the first run stopped in is
        # completed from the 1m candles stored before it and those fetched after
        second = await run_service(sim, db, lambda s: derived_closed(s, "1h") >= 1
                                   and derived_closed(s, "5m") >= 6)
        after_5m = await stored(db, "5m")
        assert after_5m[len(before["5m"])].open_time == last_5m + 5 * 60_000
        new_rows = [c for c in after_5m if c.open_time > last_5m]
        assert derived_closed(second, "5m") == len(new_rows), \
            "each derived candle after the restart emitted exactly once, none again"
        # the shutdown table lists the derived streams beside their base, with their closes
        console = Console(record=True, width=200)
        print_report(second.report(), console, "full")
        table = console.export_text()
        row = next(line for line in table.splitlines() if "5m (from 1m)" in line)
        cells = [c.strip() for c in row.split("│") if c.strip()]
        assert cells[:5] == [VENUE, "BTCUSDT", "5m (from 1m)", "live",
                             str(derived_closed(second, "5m"))], table
        assert cells[5:7] == ["-", "-"] and cells[7] == after_5m[-1].close_str, table
        assert "1h (from 1m)" in table and "2m (from 1m)" in table, table
        for interval in ("5m", "1h"):
            rows = await stored(db, interval)
            assert rows[-1].open_time > before[interval][-1].open_time if before[interval] \
                else rows, f"{interval}: nothing new after the restart"
            assert_equal_series(rows, sim.closed_candles(VENUE, "BTCUSDT", interval),
                                f"stored {interval}")
        rows_2m = await stored(db, "2m")
        assert rows_2m[-1].open_time > before["2m"][-1].open_time
        assert_equal_series(rows_2m, truth_2m(sim), "stored 2m")
        base = await stored(db, "1m")
        assert [c.open_time for c in base] == list(range(base[0].open_time,
                                                         base[-1].open_time + 1, 60_000))


@pytest.mark.parametrize("venue", ["bingx-swap", "hyperliquid-perp"])
async def test_derived_5m_equals_native_on_a_venue_without_closed_flag(venue: str) -> None:
    """Closes there are inferred and confirmed over REST before the base emits them; the
    derived series is built from those confirmed values (and the venue has fewer fields)."""
    async with Simulator(venues=(venue,), symbols=["BTCUSDT"], intervals=("1m", "5m"),
                         speed=120, history=200, update_interval_s={venue: 0.02}) as sim:
        feed = CandleFeed(venue, ["BTCUSDT"], ["5m@1m", "2m"], ws_url=sim.ws_base(venue),
                          rest_url=sim.rest_base(venue), clock=sim.clock,
                          gap_fill=GapFillOptions(history=60))
        live: list[Candle] = []
        feed.on_closed(live.append, inline=True)
        async with feed:
            await until(lambda: sum(c.interval == "5m" for c in live) >= 2, 60,
                        "two live derived 5m closes")
            await until(lambda: feed.filler is not None and feed.filler.warming == 0, 30,
                        "warm-up done")
        got = feed.latest("BTCUSDT", "5m")
        assert len(got) >= 12
        assert_equal_series(got, sim.closed_candles(venue, "BTCUSDT", "5m"), f"{venue} 5m")
        assert_equal_series(feed.latest("BTCUSDT", "2m"), truth_2m(sim, venue), f"{venue} 2m")


async def test_a_derived_interval_added_later_starts_from_the_stored_base(tmp_path: Path) -> None:
    """Only 1m was configured; then 5m@1m and 2m are added: they start from the stored 1m
    candles (their history) and continue live, whole and equal to native."""
    db = tmp_path / "candles.db"
    async with Simulator(venues=(VENUE,), symbols=["BTCUSDT"], intervals=("1m", "5m"),
                         speed=600, history=400) as sim:
        def base_closed(s: Service) -> int:
            return sum(st.closed for f in s.feeds for st in f.stats())

        await run_service(sim, db, lambda s: base_closed(s) >= 3 and not s.warming, ("1m",))
        base = await stored(db, "1m")
        assert await stored(db, "5m") == []
        await run_service(sim, db, lambda s: derived_closed(s, "5m") >= 2, ("1m", "5m@1m", "2m"))
        rows = await stored(db, "5m")
        assert rows[0].open_time <= base[0].open_time + 5 * 60_000, "history from stored 1m"
        assert_equal_series(rows, sim.closed_candles(VENUE, "BTCUSDT", "5m"), "added 5m")
        assert_equal_series(await stored(db, "2m"), truth_2m(sim), "added 2m")
