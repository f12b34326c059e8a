"""The pure market: determinism, exact aggregation across intervals, field invariants, the
forming candle, REST page semantics."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import HOUR, INTERVAL_MS, MINUTE, align, open_times
from candlekeeper.errors import ConfigError
from candlekeeper.sim.candles import aggregate, plain_decimals
from candlekeeper.sim.market import Market, nests
from candlekeeper.sim.walk import allocate, capped_share

START = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
SYMS = ["BTCUSDT", "XRPUSDT", "FOOUSDT"]


def usdm(seed: int = 1, intervals: tuple[str, ...] = ("1m", "5m", "1h"),
         history: int = 50) -> Market:
    return Market("binance-usdm", SYMS, intervals, seed=seed, start_ms=START, history=history)


def test_same_seed_same_market_other_seed_other_market() -> None:
    t = align(START, "1h") - 10 * HOUR
    a, b, c = usdm(1, history=3000), usdm(1, history=3000), usdm(2, history=3000)
    bars_a = [a.bar("BTCUSDT", "1m", t + i * MINUTE) for i in range(120)]
    # ask b in another order (coarse first): results must not depend on request order
    b.bar("BTCUSDT", "1h", t)
    bars_b = [b.bar("BTCUSDT", "1m", t + i * MINUTE) for i in range(119, -1, -1)][::-1]
    assert bars_a == bars_b
    assert bars_a[0] is not None
    other = c.bar("BTCUSDT", "1m", t)
    assert other is not None and other.close != bars_a[0].close


def _check_aggregation(m: Market, coarse: str, fine: str, t: int, width: int) -> None:
    parent = m.bar("BTCUSDT", coarse, t)
    kids = [m.bar("BTCUSDT", fine, x) for x in open_times(t, t + width, fine)]
    assert parent is not None and all(k is not None for k in kids)
    agg = aggregate([k for k in kids if k is not None], coarse, t, True)
    assert agg.same_values(parent)
    assert str(agg.volume) == str(parent.volume)  # same scale, not only the same value


@pytest.mark.parametrize("intervals", [("1m", "5m", "1h"), ("1m", "3m", "5m", "15m", "1h"),
                                       ("1m", "1h", "1d")])
def test_every_interval_is_an_exact_aggregation_of_the_finer_ones(
        intervals: tuple[str, ...]) -> None:
    m = usdm(intervals=intervals, history=3000)
    t = align(START, "1d") - 86_400_000 if "1d" in intervals else align(START, "1h") - 3 * HOUR
    top = intervals[-1]
    width = 86_400_000 if top == "1d" else HOUR
    _check_aggregation(m, top, "1m", t, width)
    for iv in intervals[1:-1]:
        _check_aggregation(m, top, iv, t, width)
        _check_aggregation(m, iv, "1m", t, INTERVAL_MS[iv])


def test_candle_fields_are_consistent() -> None:
    m = usdm()
    for sym in SYMS:
        bars = m.closed(sym, "1m", START)
        assert len(bars) == 50  # history
        prev: Candle | None = None
        for c in bars:
            assert c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high
            assert c.trades is not None and c.trades >= 1
            assert c.first_trade_id is not None and c.last_trade_id is not None
            assert c.last_trade_id == c.first_trade_id + c.trades - 1
            assert c.taker_buy_base_volume is not None and c.quote_volume is not None
            assert c.taker_buy_quote_volume is not None
            assert Decimal(0) <= c.taker_buy_base_volume <= c.volume
            assert Decimal(0) <= c.taker_buy_quote_volume <= c.quote_volume
            # q ≈ v * price: the implied average price lies near the candle's range
            vwap = c.quote_volume / c.volume
            assert c.low * Decimal("0.9") <= vwap <= c.high * Decimal("1.1")
            if prev is not None:
                assert c.open == prev.close  # one continuous path
                assert c.first_trade_id is not None and prev.last_trade_id is not None
                assert c.first_trade_id > prev.last_trade_id
                assert c.open_time == prev.open_time + MINUTE
            prev = c


def test_futures_decimals_use_symbol_precision_spot_pads_to_8() -> None:
    fut = usdm().closed("BTCUSDT", "1m", START)[-1]
    assert fut.open.as_tuple().exponent == -2 and fut.volume.as_tuple().exponent == -3
    assert fut.quote_volume is not None and fut.quote_volume.as_tuple().exponent == -5
    spot = Market("binance-spot", ["BTCUSDT"], ["1m"], start_ms=START, history=3, pad=8)
    c = spot.closed("BTCUSDT", "1m", START)[-1]
    for value in (c.open, c.high, c.low, c.close, c.volume, c.quote_volume,
                  c.taker_buy_base_volume, c.taker_buy_quote_volume):
        assert value is not None and value.as_tuple().exponent == -8


def test_plain_decimals_rewrites_exponent_notation() -> None:
    assert plain_decimals(b'["0E-8","6.3E-7","-1.5E-9","E":1]') == \
        b'["0.00000000","0.00000063","-0.0000000015","E":1]'
    same = b'{"E":123,"k":{"o":"1.00"}}'
    assert plain_decimals(same) is same


def test_forming_candle_grows_monotonically_and_ends_equal_to_final() -> None:
    m = usdm()
    t = align(START, "1h")
    final = m.bar("BTCUSDT", "1h", t)
    assert final is not None
    seen = []
    for sec in range(0, 3600, 7):
        c = m.forming("BTCUSDT", "1h", t + sec * 1000)
        if c is not None:
            seen.append(c)
    assert len(seen) > 400
    for a, b in itertools.pairwise(seen):
        assert b.high >= a.high and b.low <= a.low
        assert b.volume >= a.volume and (b.trades or 0) >= (a.trades or 0)
        assert (b.last_trade_id or 0) >= (a.last_trade_id or 0)
        assert b.open == final.open and b.first_trade_id == final.first_trade_id
        assert not b.closed
    last = m.forming("BTCUSDT", "1h", t + HOUR - 1)
    assert last is not None
    # one ms before the close every child but the last base candle is final
    assert last.high <= final.high and last.volume <= final.volume
    assert m.forming("BTCUSDT", "5m", t) is None  # no trade yet at the first instant


def test_rest_page_semantics() -> None:
    m = usdm()
    now = START + 30_000
    cur = align(now, "1m")
    latest = m.klines("BTCUSDT", "1m", now, start=None, end=None, limit=5)
    assert [c.open_time for c in latest] == [cur - 4 * MINUTE + i * MINUTE for i in range(5)]
    assert not latest[-1].closed and all(c.closed for c in latest[:-1])
    frm = m.klines("BTCUSDT", "1m", now, start=cur - 10 * MINUTE + 1, end=None, limit=3)
    assert [c.open_time for c in frm] == [cur - 9 * MINUTE, cur - 8 * MINUTE, cur - 7 * MINUTE]
    upto = m.klines("BTCUSDT", "1m", now, start=None, end=cur - 10 * MINUTE, limit=2)
    assert [c.open_time for c in upto] == [cur - 11 * MINUTE, cur - 10 * MINUTE]
    both = m.klines("BTCUSDT", "1m", now, start=cur - 3 * MINUTE, end=cur - 2 * MINUTE,
                    limit=100)
    assert [c.open_time for c in both] == [cur - 3 * MINUTE, cur - 2 * MINUTE]
    # nothing before the listing (history = 50 candles before the start)
    old = m.klines("BTCUSDT", "1m", now, start=None, end=None, limit=1000)
    assert len(old) == 51 and old[0].open_time == align(START, "1m") - 50 * MINUTE
    assert m.klines("BTCUSDT", "1m", now, start=0, end=START - 51 * MINUTE, limit=10) == []
    # REST rows equal the truth
    assert old[:-1] == m.closed("BTCUSDT", "1m", now)


def test_interval_validation() -> None:
    with pytest.raises(ConfigError, match="no interval '1s'"):
        Market("binance-usdm", ["BTCUSDT"], ["1s"], start_ms=START,
               allowed_intervals=("1m", "5m"))
    with pytest.raises(ConfigError, match="whole number of 3m"):
        Market("binance-usdm", ["BTCUSDT"], ["3m", "5m"], start_ms=START)
    assert nests("1m", "1M") and nests("1d", "1w") and not nests("3d", "1w")
    assert not nests("5m", "3m") and nests("15m", "1h")
    m = usdm()
    assert m.has_stream("BTCUSDT", "5m") and not m.has_stream("BTCUSDT", "15m")
    assert not m.has_stream("NOPEUSDT", "1m")


def test_allocation_helpers_are_exact() -> None:
    assert sum(allocate(1001, [1.0, 2.0, 3.5])) == 1001
    shares = capped_share(90, 100, [10, 60, 30])
    assert sum(shares) == 90 and all(s <= c for s, c in zip(shares, [10, 60, 30], strict=True))
