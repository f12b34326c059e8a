"""Replay loaders on the real series in ../shared/protocol-samples, and the market serving them
verbatim."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path

import pytest

from candlekeeper.core.intervals import MINUTE
from candlekeeper.errors import ConfigError
from candlekeeper.sim.market import Market
from candlekeeper.sim.replay import infer_symbol, load_replay, parse_archive_csv_rows


def test_freqtrade_columns_json_btc(samples: Path) -> None:
    s = load_replay(samples / "freqtrade_orderflow_candles_BTC_5m_2023-01.json")
    assert (s.symbol, s.interval, len(s.rows)) == ("BTCUSDT", "5m", 10_999)
    first = s.rows[0]
    assert first.open_time == 1672677900000
    assert [str(x) for x in (first.open, first.high, first.low, first.close, first.volume)] == \
        ["16727.3", "16728.8", "16726.0", "16726.1", "691.508"]
    assert s.rows[-1].open_time == 1672677900000 + 10_998 * 5 * MINUTE  # contiguous


def test_freqtrade_list_json_keeps_the_literal_numbers(samples: Path) -> None:
    s = load_replay(samples / "freqtrade_XRP_USDT_USDT-5m-futures.json")
    assert (s.symbol, s.interval, len(s.rows)) == ("XRPUSDT", "5m", 1_999)
    assert str(s.rows[1].volume) == "7267451.9000000004"  # the float artefact, verbatim
    assert str(s.rows[0].close) == "1.1941"


def test_derived_csv_matches_the_json(samples: Path) -> None:
    csv = load_replay(samples / "DERIVED_xrp_usdt_perp_5m_2021-11-15_to_2021-11-21_ohlcv.csv")
    assert (csv.symbol, csv.interval, len(csv.rows)) == ("XRPUSDT", "5m", 1_999)
    assert str(csv.rows[1].volume) == "7267451.9"
    btc = load_replay(samples / "DERIVED_btc_5m_2023-01-02_to_2023-02-09_ohlcv.csv")
    assert btc.symbol == "BTCUSDT" and str(btc.rows[0].open) == "16727.3"


def test_binance_public_data_rows_ms_and_us(samples: Path) -> None:
    text = (samples / "binance_vision_csv_rows.txt").read_text()
    futures = "\n".join(ln for ln in text.splitlines() if ln.startswith(("open_time,",
                                                                          "1672531200000,16537")))
    s = parse_archive_csv_rows(futures, symbol="BTCUSDT", interval="1m")
    r = s.rows[0]
    assert r.open_time == 1672531200000 and str(r.close) == "16538.00"
    assert (str(r.quote_volume), r.trades, str(r.taker_buy_base_volume)) == \
        ("2820697.45580", 946, "103.782")
    micro = next(ln for ln in text.splitlines() if ln.startswith("1735689600000000,93576"))
    m = parse_archive_csv_rows(micro, symbol="BTCUSDT", interval="1m")
    assert m.rows[0].open_time == 1735689600000  # µs -> ms
    assert str(m.rows[0].volume) == "8.21827000"


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "BTCUSDT-1m.csv"
    bad.write_text("1672531200000,1,2,0.5,oops,3\n")
    with pytest.raises(ConfigError, match=r"line 1: not a number: 'oops'"):
        load_replay(bad)
    dup = tmp_path / "ETHUSDT-1m.csv"
    dup.write_text("1672531200000,1,2,0.5,1,3\n1672531200000,1,2,0.5,1,3\n")
    with pytest.raises(ConfigError, match="duplicate open time"):
        load_replay(dup)
    with pytest.raises(ConfigError, match="cannot infer the symbol"):
        infer_symbol("candles.csv")
    ohlc = tmp_path / "SOLUSDT-1m.csv"
    ohlc.write_text("1672531200000,1,0.9,0.5,1,3\n")
    with pytest.raises(ConfigError, match="inconsistent OHLC"):
        load_replay(ohlc)


def test_market_serves_the_series_verbatim_and_aggregates_it(samples: Path) -> None:
    s = load_replay(samples / "freqtrade_XRP_USDT_USDT-5m-futures.json")
    start = s.rows[100].open_time
    m = Market("binance-usdm", [], ["5m", "15m", "1h"], start_ms=start, replay=[s])
    assert m.symbols == ("XRPUSDT",)
    closed = m.closed("XRPUSDT", "5m", start)
    assert len(closed) == 100
    for row, c in zip(s.rows, closed, strict=False):
        assert (c.open_time, c.open, c.high, c.low, c.close, c.volume) == \
            (row.open_time, row.open, row.high, row.low, row.close, row.volume)
        assert str(c.volume) == str(row.volume)
        assert c.quote_volume == row.volume * row.close  # q = v * close, exact
        assert c.taker_buy_base_volume is not None and c.taker_buy_base_volume <= c.volume
    ids = [(c.first_trade_id, c.last_trade_id) for c in closed
           if c.first_trade_id is not None and c.last_trade_id is not None]
    assert len(ids) == len(closed)
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ids))  # contiguous
    hour = m.bar("XRPUSDT", "1h", 1636934400000)
    assert hour is not None
    rows = s.rows[:12]
    assert hour.open == rows[0].open and hour.close == rows[-1].close
    assert hour.high == max(r.high for r in rows) and hour.low == min(r.low for r in rows)
    assert hour.volume == sum((r.volume for r in rows), Decimal(0))
    # finer than the series: not served; beyond the series: nothing
    assert not Market("binance-usdm", [], ["1m", "5m"], start_ms=start, replay=[s]).has_stream(
        "XRPUSDT", "1m")
    assert m.bar("XRPUSDT", "5m", s.last_open + 5 * MINUTE) is None


def test_spot_replay_pads_to_8_decimals(samples: Path) -> None:
    s = load_replay(samples / "freqtrade_orderflow_candles_BTC_5m_2023-01.json")
    m = Market("binance-spot", [], ["5m"], start_ms=s.rows[3].open_time, replay=[s], pad=8)
    c = m.closed("BTCUSDT", "5m", s.rows[3].open_time)[0]
    assert str(c.open) == "16727.30000000" and c.open == s.rows[0].open
