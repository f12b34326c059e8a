from __future__ import annotations

import threading
from decimal import Decimal

from candlekeeper.core.buffers import RingBuffer, to_dataframe
from candlekeeper.core.candle import Candle


def candle(t: int) -> Candle:
    d = Decimal(f"{t}.10")
    return Candle.of("binance-usdm", "BTCUSDT", "1m", t * 60_000, t * 60_000 + 59_999, d, d, d, d,
                  Decimal("1.000"), closed=True)


def test_latest_oldest_first_and_capacity() -> None:
    buf = RingBuffer(5)
    for t in range(1, 9):
        assert buf.append(candle(t))
    assert [c.open_time // 60_000 for c in buf.latest()] == [4, 5, 6, 7, 8]
    assert [c.open_time // 60_000 for c in buf.latest(2)] == [7, 8]
    assert buf.latest(0) == []
    assert len(buf) == 5


def test_rejects_duplicates_and_older() -> None:
    buf = RingBuffer(10)
    buf.append(candle(5))
    assert not buf.append(candle(5))
    assert not buf.append(candle(4))
    assert len(buf) == 1


def test_extend_merges_in_order() -> None:
    buf = RingBuffer(4)
    buf.append(candle(10))
    buf.extend([candle(7), candle(8), candle(9), candle(10), candle(6)])
    assert [c.open_time // 60_000 for c in buf.latest()] == [7, 8, 9, 10]


def test_concurrent_readers_see_consistent_windows() -> None:
    buf = RingBuffer(100)
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            window = buf.latest(50)
            times = [c.open_time for c in window]
            if times != sorted(times) or len(set(times)) != len(times):
                errors.append("inconsistent window")

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for th in threads:
        th.start()
    for t in range(1, 20_000):
        buf.append(candle(t))
    stop.set()
    for th in threads:
        th.join()
    assert errors == []
    assert buf.latest(1)[0].open_time == 19_999 * 60_000


def test_dataframe_keeps_exact_decimals() -> None:
    df = to_dataframe([candle(1), candle(2)])
    assert list(df["close"]) == [Decimal("1.10"), Decimal("2.10")]
    assert str(df.index[0]) == "1970-01-01 00:01:00+00:00"
