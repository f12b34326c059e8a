"""Stored candle series for the export and replay tests: exact decimal text that a float would
change (trailing zeros, tiny and long values), a few holes, several streams."""

from __future__ import annotations

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import INTERVAL_MS
from candlekeeper.core.stream_key import StreamKey

#: 2023-11-14 22:00 UTC, aligned to every interval up to 1h
T0 = 1_699_999_200_000
VENUE = "binance-usdm"


def series(key: StreamKey, n: int, *, holes: tuple[int, ...] = (), t0: int = T0,
           price: int = 76_170) -> list[Candle]:
    """``n`` closed candles of ``key`` from ``t0`` minus the indexes in ``holes``."""
    step = INTERVAL_MS[key.interval]
    out = []
    for i in range(n):
        if i in holes:
            continue
        t = t0 + i * step
        p = price + i
        out.append(Candle(key.venue, key.symbol, key.interval, t, t + step - 1,
                          f"{p // 10_000}.{p % 10_000:04d}", f"{p // 10_000 + 1}.0000",
                          f"{p // 10_000 - 1}.5000", f"{p // 10_000}.{(p + 7) % 10_000:04d}",
                          "0.00000010", f"{i + 1}1234567890123456789.123456789", 10 + i,
                          "0.00000004", "3.10", 1000 + 20 * i, 1009 + 20 * i, True,
                          t + step, "ws" if i % 2 else "rest"))
    return out


BTC_1M = StreamKey(VENUE, "BTCUSDT", "1m")
ETH_5M = StreamKey(VENUE, "ETHUSDT", "5m")
