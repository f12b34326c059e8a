"""The simulator's REST side over real HTTP: klines pages, weights and their header, 429 then
418, error bodies, exchangeInfo, ping and time; and a replayed real series coming out of REST
and WebSocket unchanged."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import MINUTE, align
from candlekeeper.sim import Simulator, load_replay
from candlekeeper.sim.venues.binance.rest import WeightLimiter
from candlekeeper.venues.binance.endpoints import BINANCE_SPOT, BINANCE_USDM
from candlekeeper.venues.binance.history import BinanceHistoryCodec
from candlekeeper.venues.binance.stream import BinanceStreamCodec

USDM, SPOT = "binance-usdm", "binance-spot"
START = 1_700_000_000_000


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def rest_fields(c: Candle) -> tuple[object, ...]:
    """What a REST row carries (no trade ids, no event time), as strings."""
    return (c.open_time, c.close_time, *(str(x) for x in (
        c.open, c.high, c.low, c.close, c.volume, c.quote_volume, c.trades,
        c.taker_buy_base_volume, c.taker_buy_quote_volume)))


async def get(http: aiohttp.ClientSession, url: str,
              **params: str | int) -> tuple[int, dict[str, str], bytes]:
    async with http.get(url, params={k: str(v) for k, v in params.items()}) as r:
        return r.status, dict(r.headers), await r.read()


async def test_klines_pages_equal_the_truth_and_weights_are_counted(
        http: aiohttp.ClientSession) -> None:
    async with Simulator(venues=(USDM, SPOT), symbols=["BTCUSDT", "ETHUSDT"],
                         start_time_ms=START, history=300, speed=1) as sim:
        usdm = sim.rest_base(USDM) + "/fapi/v1/klines"
        codec = BinanceHistoryCodec(BINANCE_USDM)
        status, headers, body = await get(http, usdm, symbol="BTCUSDT", interval="1m", limit=99)
        assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "1"  # [1,100) -> 1
        rows = codec.decode_klines(body, "BTCUSDT", "1m")
        assert len(rows) == 99
        truth = sim.closed_candles(USDM, "BTCUSDT", "1m")
        assert rows[-1].open_time == align(sim.clock.time_ms(), "1m")  # the forming candle
        for got, want in zip(rows[:-1], truth[-98:], strict=True):
            assert rest_fields(got) == rest_fields(want)
        raw = json.loads(body)
        assert len(raw[0]) == 12 and raw[0][11] == "0" and isinstance(raw[0][1], str)
        for limit, expect in ((100, 3), (500, 8), (1000, 13), (1001, 23), (5000, 33)):
            _, headers, body = await get(http, usdm, symbol="ETHUSDT", interval="5m",
                                         limit=limit)
            assert headers["X-MBX-USED-WEIGHT-1M"] == str(expect)
        assert len(json.loads(body)) == 301  # history + the forming candle, capped at 1500
        start = truth[10].open_time
        _, _, body = await get(http, usdm, symbol="BTCUSDT", interval="1m", startTime=start,
                               endTime=start + 2 * MINUTE, limit=1000)
        assert [r[0] for r in json.loads(body)] == [start, start + MINUTE, start + 2 * MINUTE]
        _, _, body = await get(http, usdm, symbol="BTCUSDT", interval="1m",
                               endTime=start, limit=2)
        assert [r[0] for r in json.loads(body)] == [start - MINUTE, start]
        spot = sim.rest_base(SPOT) + "/api/v3/klines"
        status, headers, body = await get(http, spot, symbol="BTCUSDT", interval="1h")
        assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "2"
        first = json.loads(body)[0]
        assert len(first[1].split(".")[1]) == 8  # spot pads to 8 decimals
        spot_rows = BinanceHistoryCodec(BINANCE_SPOT).decode_klines(body, "BTCUSDT", "1h")
        assert rest_fields(spot_rows[0]) == rest_fields(
            sim.closed_candles(SPOT, "BTCUSDT", "1h")[0])


async def test_errors_are_binance_json_with_400(http: aiohttp.ClientSession) -> None:
    async with Simulator(venues=(USDM, SPOT), symbols=["BTCUSDT"], history=10) as sim:
        url = sim.rest_base(USDM) + "/fapi/v1/klines"
        cases = [
            ({"symbol": "NOPEUSDT", "interval": "1m"}, -1121, "Invalid symbol."),
            ({"symbol": "BTCUSDT", "interval": "7m"}, -1120, "Invalid interval."),
            ({"interval": "1m"}, -1102, "Mandatory parameter 'symbol' was not sent, was "
             "empty/null, or malformed."),
            ({"symbol": "BTCUSDT", "interval": "1m", "limit": "ten"}, -1100,
             "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'."),
            ({"symbol": "BTCUSDT", "interval": "1m", "startTime": "9", "endTime": "3"}, -1023,
             "Start time is greater than end time."),
        ]
        for params, code, msg in cases:
            status, headers, body = await get(http, url, **params)
            assert status == 400 and json.loads(body) == {"code": code, "msg": msg}
            assert "X-MBX-USED-WEIGHT-1M" in headers
        assert sim.stats()[USDM].rest.errors_400 == len(cases)
        status, _, _ = await get(http, sim.rest_base(USDM) + "/fapi/v9/nothing")
        assert status == 404


async def test_429_then_418(http: aiohttp.ClientSession) -> None:
    async with Simulator(venues=[SPOT], symbols=["BTCUSDT"], history=10,
                         rest_weight_limit=5, ban_s=30) as sim:
        url = sim.rest_base(SPOT) + "/api/v3/klines"
        for used in (2, 4):
            status, headers, _ = await get(http, url, symbol="BTCUSDT", interval="1m")
            assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == str(used)
        status, headers, body = await get(http, url, symbol="BTCUSDT", interval="1m")
        assert status == 429 and 1 <= int(headers["Retry-After"]) <= 60
        assert json.loads(body)["code"] == -1003
        assert "current limit is 5 request weight per 1 MINUTE" in json.loads(body)["msg"]
        status, _, _ = await get(http, sim.rest_base(SPOT) + "/api/v3/ping")
        assert status == 200  # weight 1 still fits: only over-limit requests are refused
        status, headers, body = await get(http, url, symbol="BTCUSDT", interval="1m")
        assert status == 418 and headers["Retry-After"] == "30"
        assert "IP banned until" in json.loads(body)["msg"]
        status, _, _ = await get(http, sim.rest_base(SPOT) + "/api/v3/time")
        assert status == 418  # banned means everything
        rest = sim.stats()[SPOT].rest
        assert (rest.rejected_429, rest.banned_418) == (1, 2)


def test_weight_limiter_windows() -> None:
    lim = WeightLimiter(10, window_s=60, ban_s=120)
    assert lim.charge("a", 10, 60.0).status == 200
    assert lim.charge("a", 1, 61.0).status == 429
    assert lim.charge("b", 1, 61.0).status == 200  # per IP
    assert lim.charge("a", 1, 120.5).status == 200  # new window, no ban: the 429 was heeded
    assert lim.charge("a", 10, 121.0).status == 429
    assert lim.charge("a", 1, 121.5).status == 200  # what still fits passes
    ban = lim.charge("a", 10, 122.0)  # going over again after a 429: banned
    assert ban.status == 418 and ban.retry_after == 120
    assert lim.charge("a", 1, 200.0).status == 418  # still banned in the next window
    assert lim.charge("a", 1, 243.0).status == 200


async def test_exchange_info_ping_time(http: aiohttp.ClientSession) -> None:
    async with Simulator(venues=(USDM, SPOT), symbols=["BTCUSDT", "XRPUSDT"], history=10,
                         start_time_ms=START) as sim:
        status, headers, body = await get(http, sim.rest_base(USDM) + "/fapi/v1/exchangeInfo")
        assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "1"
        assert BinanceHistoryCodec(BINANCE_USDM).decode_symbols(body) == ["BTCUSDT", "XRPUSDT"]
        info = json.loads(body)
        assert info["rateLimits"][0]["limit"] == 2400
        assert info["symbols"][1]["pricePrecision"] == 4
        status, headers, body = await get(http, sim.rest_base(SPOT) + "/api/v3/exchangeInfo",
                                          symbol="XRPUSDT")
        assert headers["X-MBX-USED-WEIGHT-1M"] == "20"
        assert [s["symbol"] for s in json.loads(body)["symbols"]] == ["XRPUSDT"]
        _, _, body = await get(http, sim.rest_base(SPOT) + "/api/v3/ping")
        assert body == b"{}"
        _, _, body = await get(http, sim.rest_base(USDM) + "/fapi/v1/time")
        assert START <= json.loads(body)["serverTime"] <= sim.clock.time_ms()


async def test_replayed_series_comes_out_of_rest_and_ws_verbatim(
        http: aiohttp.ClientSession, samples: Path) -> None:
    series = load_replay(samples / "freqtrade_orderflow_candles_BTC_5m_2023-01.json")
    rows = {r.open_time: r for r in series.rows}
    start = series.rows[200].open_time
    async with Simulator(venues=(USDM, SPOT), replay=series, intervals=["5m", "1h"],
                         start_time_ms=start,
                         speed=1500, history=1000, close_delay_s=(0.0, 0.02),
                         update_interval_s=0.02) as sim:
        assert sim.symbols == ("BTCUSDT",)
        _, _, body = await get(http, sim.rest_base(USDM) + "/fapi/v1/klines", symbol="BTCUSDT",
                               interval="5m", startTime=series.rows[0].open_time, limit=200)
        got = json.loads(body)
        assert len(got) == 200
        for row in got:
            src = rows[row[0]]
            assert row[1:6] == [str(src.open), str(src.high), str(src.low), str(src.close),
                                str(src.volume)]  # the file's own strings
        assert got[0][1:6] == ["16727.3", "16728.8", "16726.0", "16726.1", "691.508"]
        ws = await http.ws_connect(sim.ws_base(USDM) + "/ws/btcusdt@kline_5m")
        codec = BinanceStreamCodec(BINANCE_USDM)
        closed: list[Candle] = []
        while len(closed) < 3:  # 5 minutes = 0.2 s at x1500
            c = codec.decode((await ws.receive()).data)
            assert isinstance(c, Candle)
            if c.closed:
                closed.append(c)
        for c in closed:
            src = rows[c.open_time]
            assert (str(c.open), str(c.high), str(c.low), str(c.close), str(c.volume)) == \
                (str(src.open), str(src.high), str(src.low), str(src.close), str(src.volume))
        await ws.close()
