"""The simulator's universe (issue 12): N symbols with power-law activity, quiet symbols that
still close every candle, forming candles that move only with trades, and the cached forming
path equal to aggregating every child."""

from __future__ import annotations

import asyncio
import itertools
import json
import re

import aiohttp
import pytest
from click.testing import CliRunner

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import align, next_open, open_times
from candlekeeper.errors import ConfigError
from candlekeeper.sim import Simulator
from candlekeeper.sim.candles import aggregate
from candlekeeper.sim.cli import simulate_command
from candlekeeper.sim.market import Market
from candlekeeper.sim.profiles import DEFAULT_SYMBOLS
from candlekeeper.sim.universe import trades_per_minute, universe_profiles, universe_symbols

START = 1_700_000_000_000
USDM = "binance-usdm"
ALL = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w",
       "1M")


def test_universe_names_are_distinct_ticker_like_and_deterministic() -> None:
    names = universe_symbols(500)
    assert len(set(names)) == 500
    assert names[:20] == DEFAULT_SYMBOLS  # the busiest are the real liquid pairs
    assert all(re.fullmatch(r"[A-Z]{3,5}USDT|[A-Z0-9]+USDT", s) for s in names)
    assert names == universe_symbols(500)
    assert universe_symbols(30) == names[:30]
    with pytest.raises(ConfigError):
        universe_symbols(0)


def test_activity_falls_with_rank_a_few_busy_a_long_quiet_tail() -> None:
    tpm = [trades_per_minute(r) for r in range(1, 501)]
    assert tpm == sorted(tpm, reverse=True)
    busy = sum(1 for t in tpm if t >= 240)  # a trade every 250 ms tick or more
    quiet = sum(1 for t in tpm if t <= 10)
    assert 3 <= busy <= 15
    assert quiet >= 300
    profiles = universe_profiles(500)
    assert profiles["BTCUSDT"].price == 64000.0  # price level and decimals kept
    assert profiles["BTCUSDT"].trades_per_minute == tpm[0]


def _market(n: int, intervals: tuple[str, ...] = ("1m", "5m", "1h")) -> Market:
    profiles = universe_profiles(n)
    return Market(USDM, list(profiles), intervals, start_ms=START, history=50,
                  profiles=profiles)


def test_quiet_symbols_trade_rarely_but_every_candle_exists() -> None:
    m = _market(200)
    busy, quiet = universe_symbols(200)[0], universe_symbols(200)[-1]
    t = align(START, "1m")
    for sym in (busy, quiet):
        closed = m.closed(sym, "1m", t)
        assert len(closed) == 50  # every candle of the history exists, quiet or not
        assert [c.open_time for c in closed] == open_times(closed[0].open_time, t, "1m")
    busy_trades = sum(c.trades or 0 for c in m.closed(busy, "1m", t))
    quiet_trades = [c.trades or 0 for c in m.closed(quiet, "1m", t)]
    assert busy_trades > 50 * 1000
    assert all(1 <= n <= 10 for n in quiet_trades)


def _changes(m: Market, sym: str, interval: str, t0: int) -> int:
    """Distinct forming states seen at a 250 ms cadence over one candle."""
    seen: list[Candle | None] = [m.forming(sym, interval, t0 + ms)
                                 for ms in range(0, next_open(t0, interval) - t0, 250)]
    return sum(1 for a, b in itertools.pairwise(seen) if a != b)


def test_a_candle_changes_only_when_it_trades() -> None:
    m = _market(200)
    busy, quiet = universe_symbols(200)[0], universe_symbols(200)[-1]
    t0 = align(START, "1m")
    final = m.bar(quiet, "1m", t0)
    assert final is not None and final.trades is not None
    assert _changes(m, quiet, "1m", t0) <= final.trades  # one change per trade at most
    assert _changes(m, busy, "1m", t0) >= 200  # a busy symbol changes at nearly every tick
    # the activity stamp is what a pusher relies on: unchanged stamp, unchanged candles
    for sym in (busy, quiet):
        before = None
        forming: dict[str, Candle | None] = {}
        for ms in range(0, 300_000, 250):
            now = t0 + ms
            stamp = m.activity(sym, now)
            current = {iv: m.forming(sym, iv, now) for iv in m.intervals}
            if stamp == before:
                assert current == forming, (sym, ms)
            before, forming = stamp, current


def _flat_forming(m: Market, sym: str, interval: str, now: int) -> Candle | None:
    """The forming candle the pre-universe way: aggregate every closed child and the forming
    one, recursively, with no cache."""
    src = m._sources[sym]
    t0 = align(now, interval)
    if interval == src.base:
        return m.forming(sym, interval, now)
    sub = src.sub[interval]
    cur = align(now, sub)
    parts = [src.bar(sub, t) for t in open_times(t0, cur, sub)]
    parts.append(_flat_forming(m, sym, sub, now))
    done = [p for p in parts if p is not None]
    return aggregate(done, interval, t0, closed=False) if done else None


def test_cached_forming_equals_aggregating_every_child() -> None:
    m = _market(25, ALL)
    times = [START + k * 7_919_113 for k in range(40)]  # spread over ~3.7 days, any phase
    for sym in ("BTCUSDT", universe_symbols(25)[-1]):
        for now in times:
            for iv in ALL:
                assert m.forming(sym, iv, now) == _flat_forming(m, sym, iv, now), (sym, iv)


def test_universe_and_symbols_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="universe"):
        Simulator(venues=(USDM,), symbols=["BTCUSDT"], universe=10)
    result = CliRunner().invoke(simulate_command, ["--venues", USDM, "--universe", "5",
                                                   "--symbols", "BTCUSDT"])
    assert result.exit_code == 2
    assert "--universe" in result.output and "Traceback" not in result.output
    bad = CliRunner().invoke(simulate_command, ["--venues", USDM, "--universe", "0"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


async def test_every_stream_of_a_universe_closes_every_candle_as_rest_says() -> None:
    """Over real sockets at a speed-up: every stream of a 40-symbol universe (1m, 5m) gets
    each candle's closing frame, equal to REST and to the truth, and a candle is pushed only
    when it has traded since its last push."""
    n = 40
    async with Simulator(venues=(USDM,), universe=n, intervals=("1m", "5m"), speed=60,
                         history=20, seed=5) as sim, aiohttp.ClientSession() as http:
        names = [f"{s.lower()}@kline_{iv}" for s in sim.symbols for iv in ("1m", "5m")]
        frames: dict[str, list[dict[str, object]]] = {name: [] for name in names}
        async with http.ws_connect(sim.ws_base(USDM) + "/stream") as ws:
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": names, "id": 1}))
            first = sim.next_close_ms("5m")
            last_close = next_open(first, "5m")  # two 5m closes, five 1m closes
            until = sim.clock.wall_deadline(last_close) + 4.0  # the closing frames' delay
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(60):
                while loop.time() < until:
                    try:
                        msg = await ws.receive(timeout=max(0.05, until - loop.time()))
                    except TimeoutError:
                        break
                    body = json.loads(msg.data)
                    if "stream" in body:
                        frames[body["stream"]].append(body["data"]["k"])
        for sym in sim.symbols:
            for iv in ("1m", "5m"):
                got = [k for k in frames[f"{sym.lower()}@kline_{iv}"] if k["x"]]
                # candles closing after the subscription: the 5m one closing at ``first``,
                # every 1m one from ``first`` on
                since = first - 300_000 if iv == "5m" else first
                wanted = [c for c in sim.closed_candles(USDM, sym, iv, until_ms=last_close)
                          if c.open_time >= since]
                assert len(wanted) == (2 if iv == "5m" else 5)
                closes = {int(str(k["t"])): k for k in got}
                for c in wanted:
                    k = closes.get(c.open_time)
                    assert k is not None, (sym, iv, c.open_time)
                    assert (k["o"], k["h"], k["l"], k["c"], k["v"], k["n"]) == (
                        c.open_str, c.high_str, c.low_str, c.close_str, c.volume_str, c.trades)
                async with http.get(sim.rest_base(USDM) + "/fapi/v1/klines", params={
                        "symbol": sym, "interval": iv, "startTime": str(since),
                        "endTime": str(last_close - 1)}) as r:
                    rows = await r.json()
                rest = {row[0]: row for row in rows}
                for c in wanted:
                    row = rest[c.open_time]
                    assert (row[1], row[4], row[5], row[8]) == (c.open_str, c.close_str,
                                                                c.volume_str, c.trades)
                # a candle is pushed only when it traded: never more updates than trades
                for c in wanted:
                    ups = [k for k in frames[f"{sym.lower()}@kline_{iv}"]
                           if not k["x"] and k["t"] == c.open_time]
                    assert len(ups) <= (c.trades or 0), (sym, iv, len(ups), c.trades)
                    counts = [k["n"] for k in ups]
                    assert counts == sorted(set(counts))  # each push carries a new trade
