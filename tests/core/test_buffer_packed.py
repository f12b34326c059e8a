"""The packed ring buffer (issue 12) gives back exactly what was put in, behaves like the old
``deque[Candle]`` buffer under every operation, and costs a fraction of its memory."""

from __future__ import annotations

import json
import random
import threading
import tracemalloc
from decimal import Decimal
from typing import Any, cast

import msgspec
import pandas as pd
import pytest

from candlekeeper.core.buffers import RingBuffer, to_dataframe
from candlekeeper.core.candle import Candle, CorrectedCandle, Source

MINUTE = 60_000
T0 = 1_767_225_600_000


def ws(i: int, close: str = "67123.40000000", **kw: Any) -> Candle:
    """A Binance-spot-like closed candle from the WebSocket, every field set."""
    t = T0 + i * MINUTE
    fields: dict[str, Any] = dict(
        venue="binance-spot", symbol="BTCUSDT", interval="1m", open_time=t,
        close_time=t + MINUTE - 1, open_str="67100.00000000", high_str="67150.10000000",
        low_str="67090.00000000", close_str=close, volume_str="12.34567000",
        quote_volume_str="828392.12345670", trades=1234, taker_buy_base_volume_str="6.10000000",
        taker_buy_quote_volume_str="411234.12345600", first_trade_id=5_000_000_000 + i * 2000,
        last_trade_id=5_000_001_233 + i * 2000, closed=True, event_time=t + MINUTE + 7,
        source="ws")
    fields.update(kw)
    return Candle(**fields)


def rest(i: int, **kw: Any) -> Candle:
    """A REST kline: no trade ids, no event time."""
    return ws(i, first_trade_id=None, last_trade_id=None, event_time=None, source="rest", **kw)


class MyCandle(Candle, frozen=True, gc=False):
    """A subclass the packing does not know: must come back as itself."""


def field_kinds() -> list[Candle]:
    """Every kind of field value, packed ones and ones kept as objects."""
    kinds: list[Candle] = [
        ws(0), rest(1), ws(2, closed=False), CorrectedCandle.replacing(ws(3)),
        CorrectedCandle.replacing(rest(4)),
        ws(5, quote_volume_str=None, trades=None, taker_buy_base_volume_str=None,
           taker_buy_quote_volume_str=None),
        ws(6, first_trade_id=-1, last_trade_id=-1, trades=0, volume_str="0", close="0.00000001"),
        ws(7, close="-0.50", open_str="-1", high_str="10", low_str="-10.000"),
        ws(8, trades=2**63 - 1, event_time=-(2**63) + 1),
        # not packable: kept as the objects themselves
        ws(9, close="1E-7"), ws(10, close=""), ws(11, close=" 1.5"), ws(12, close="１"),
        ws(13, close="1,5"), ws(14, close="a1"), ws(15, close="+1"), ws(16, trades=2**63),
        ws(17, event_time=-(2**63)), ws(18, symbol="ETHUSDT"), ws(19, venue="binance-usdm"),
        MyCandle(**msgspec.structs.asdict(ws(20))), ws(21, source=cast(Source, "other")),
        ws(22, closed=cast(bool, 1)), ws(23, trades=cast(int, True)),
        ws(24, quote_volume_str=""),
        ws(25),  # and packed again after all that
    ]
    return kinds


def same(a: list[Candle], b: list[Candle]) -> None:
    """Equal field for field, with the same types (msgspec's == alone is already type-strict
    for the candle; the fields' types are compared too: "1" is not 1)."""
    assert a == b
    for x, y in zip(a, b, strict=True):
        assert type(x) is type(y)
        ax, ay = msgspec.structs.astuple(x), msgspec.structs.astuple(y)
        assert ax == ay and [type(v) for v in ax] == [type(v) for v in ay]


def test_every_field_kind_round_trips_exactly() -> None:
    kinds = field_kinds()
    buf = RingBuffer(100)
    for c in kinds:
        assert buf.append(c)
    same(buf.latest(), kinds)
    same(buf.latest(3), kinds[-3:])
    same([buf.find(c.open_time) for c in kinds], kinds)  # type: ignore[misc]
    assert buf.last() == kinds[-1] and len(buf) == len(kinds)
    assert buf.find(T0 - MINUTE) is None and buf.find(T0 + 99 * MINUTE) is None
    # the realistic ones were packed, the others kept whole
    assert sorted(buf._objects) == [c.open_time for c in kinds[9:25]]


def test_a_text_too_long_to_pack_is_kept_whole() -> None:
    huge = ws(1, volume_str="1" * 140_000 + ".5")  # > 65,535 packed bytes
    buf = RingBuffer(10)
    for c in (ws(0), huge, ws(2)):
        buf.append(c)
    buf._tail.clear()
    same(buf.latest(), [ws(0), huge, ws(2)])
    assert list(buf._objects) == [huge.open_time]


def test_latest_with_odd_rows_in_between_reads_every_row() -> None:
    kinds = field_kinds()
    buf = RingBuffer(100)
    for c in kinds:
        buf.append(c)
    fresh = RingBuffer(100)  # no objects kept from the appends: every row decoded
    fresh.extend(kinds)
    fresh._tail.clear()
    same(fresh.latest(), kinds)
    same([fresh.latest(n)[0] for n in range(1, len(kinds) + 1)], kinds[::-1])


class Model:
    """The old ``deque[Candle]`` buffer's behaviour, the reference for every operation."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.items = capacity, list[Candle]()

    def append(self, c: Candle) -> bool:
        if self.items and c.open_time <= self.items[-1].open_time:
            return False
        self.items = [*self.items, c][-self.capacity:]
        return True

    def extend(self, candles: list[Candle]) -> int:
        merged = {c.open_time: c for c in self.items}
        for c in candles:
            merged.setdefault(c.open_time, c)
        before = len(self.items)
        self.items = [merged[t] for t in sorted(merged)][-self.capacity:]
        return len(self.items) - before

    def replace(self, c: Candle) -> bool:
        for i, old in enumerate(self.items):
            if old.open_time == c.open_time:
                self.items[i] = c
                return True
        return False


@pytest.mark.parametrize("capacity", [1, 3, 40, 100])
def test_every_operation_matches_the_old_buffer(capacity: int) -> None:
    rng = random.Random(capacity)
    kinds = field_kinds()

    def any_candle(i: int) -> Candle:
        base = kinds[rng.randrange(len(kinds))]
        return msgspec.structs.replace(base, open_time=T0 + i * MINUTE)

    buf, model = RingBuffer(capacity), Model(capacity)
    newest = 0
    for step in range(1500):
        op = rng.random()
        if op < 0.55:
            newest += rng.choice([1, 1, 1, 2, 0, -1])
            c = any_candle(newest)
            assert buf.append(c) == model.append(c)
        elif op < 0.65:
            lo = newest - rng.randrange(2 * capacity + 5)
            batch = [any_candle(i) for i in range(lo, lo + rng.randrange(1, 2 * capacity + 5))]
            rng.shuffle(batch)
            assert buf.extend(batch) == model.extend(batch)
            newest = max(newest, *(c.open_time // MINUTE - T0 // MINUTE for c in batch))
        elif op < 0.8:
            c = CorrectedCandle.replacing(any_candle(newest - rng.randrange(capacity + 3)))
            assert buf.replace(c) == model.replace(c)
        elif op < 0.9:
            n = rng.choice([None, 0, -1, 1, 2, 5, 20, 33, capacity, capacity + 1])
            expected = model.items if n is None or n >= len(model.items) else \
                model.items[-n:] if n > 0 else []
            same(buf.latest(n), expected)
        else:
            t = T0 + (newest - rng.randrange(capacity + 3)) * MINUTE
            found = [c for c in model.items if c.open_time == t]
            assert buf.find(t) == (found[0] if found else None)
        assert len(buf) == len(model.items), step
        assert buf.last() == (model.items[-1] if model.items else None)
    same(buf.latest(), model.items)


def test_corrections_in_place_keep_the_window() -> None:
    buf, model = RingBuffer(50), Model(50)
    for i in range(80):
        buf.append(ws(i, close=f"{i}.10"))
        model.append(ws(i, close=f"{i}.10"))
    assert len(buf.latest(10)) == 10  # the newest ten now kept as objects
    for i, c in [(79, "79.99"), (75, "75.000"), (40, "40.5"), (30, "30.0"), (55, "1E-2"),
                 (55, "55.25"), (29, "1.0")]:
        corrected = CorrectedCandle.replacing(ws(i, close=c))
        assert buf.replace(corrected) == model.replace(corrected) == (i >= 30)
        same(buf.latest(), model.items)
        same(buf.latest(10), model.items[-10:])
        assert buf.last() == model.items[-1]
    pd.testing.assert_frame_equal(buf.latest_df(), dict_frame(model.items))


def dict_frame(candles: list[Candle]) -> pd.DataFrame:
    """``to_dataframe`` as it was before issue 12 (a dict per candle): the dtypes to keep."""
    frame = pd.DataFrame([
        {"open_time": c.open_time, "open": c.open, "high": c.high, "low": c.low,
         "close": c.close, "volume": c.volume, "close_time": c.close_time,
         "quote_volume": c.quote_volume, "trades": c.trades,
         "taker_buy_base_volume": c.taker_buy_base_volume,
         "taker_buy_quote_volume": c.taker_buy_quote_volume}
        for c in candles])
    if not frame.empty:
        frame.index = pd.to_datetime(frame["open_time"], unit="ms", utc=True)
        frame.index.name = "time"
    return frame


def _is_number(c: Candle) -> bool:
    return c.close_str not in ("", "1,5", "a1") and c.quote_volume_str != ""


@pytest.mark.parametrize("window", [
    [ws(i) for i in range(30)],
    [rest(i) for i in range(30)],
    [ws(i, trades=None if i % 3 else i) for i in range(30)],
    [ws(i, quote_volume_str=None if i % 2 else "1.50") for i in range(30)],
    [ws(i, quote_volume_str=None, trades=None, taker_buy_base_volume_str=None,
        taker_buy_quote_volume_str=None) for i in range(30)],
    field_kinds()[:9], [c for c in field_kinds() if _is_number(c)], [ws(0)], [],
], ids=["ws", "rest", "some-trades-none", "some-qv-none", "all-optional-none", "kinds",
        "kinds-with-objects", "one", "empty"])
def test_latest_df_is_the_dict_built_frame(window: list[Candle]) -> None:
    buf = RingBuffer(100)
    buf.extend(window)
    for n in (None, 1, 7, 0, -3):
        expected = dict_frame(buf.latest(n))
        pd.testing.assert_frame_equal(buf.latest_df(n), expected, check_exact=True)
        pd.testing.assert_frame_equal(to_dataframe(buf.latest(n)), expected, check_exact=True)
    if window:
        assert buf.latest_df().iloc[0]["close"] == Decimal(window[0].close_str)
        assert str(buf.latest_df()["close"].iloc[0]) == window[0].close_str  # trailing zeros


def test_readers_in_other_threads_see_whole_windows_of_exact_candles() -> None:
    buf = RingBuffer(60)
    errors: list[str] = []
    stop = threading.Event()
    total = 3000

    def valid(c: Candle) -> bool:
        i = (c.open_time - T0) // MINUTE
        return c == ws(i, close=f"{i}.10") or c == CorrectedCandle.replacing(ws(i, close=f"{i}.5"))

    def reader(k: int) -> None:
        while not stop.is_set():
            window = buf.latest(None if k == 0 else 7 * k)
            times = [c.open_time for c in window]
            if times != list(range(times[0], times[0] + len(times) * MINUTE, MINUTE)) \
                    if times else False:
                errors.append(f"not contiguous: {times[:3]}...")
            if not all(map(valid, window)):
                errors.append("a candle that was never put in")
            last = buf.last()
            if last is not None and not valid(last):
                errors.append("last() was never put in")
            if k == 2:
                df = buf.latest_df(20)
                if len(df) and df.index.is_monotonic_increasing is False:
                    errors.append("latest_df not ordered")

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    for th in threads:
        th.start()
    try:
        for i in range(total):
            buf.append(ws(i, close=f"{i}.10"))
            if i % 7 == 0 and i > 10:
                assert buf.replace(CorrectedCandle.replacing(ws(i - 10, close=f"{i - 10}.5")))
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert errors == []
    assert [c.open_time for c in buf.latest()] == [T0 + i * MINUTE for i in range(total - 60,
                                                                                   total)]
    assert all(map(valid, buf.latest()))


def realistic(symbol: int, n: int) -> list[Candle]:
    """Candles as the feed buffers them: decoded from JSON (each with its own strings), with
    Binance's 8-decimal text and prices from 0.0001 to 67,000."""
    rng = random.Random(symbol)
    price = rng.uniform(1, 9) * 10 ** rng.randint(-4, 4)
    rows = []
    for i in range(n):
        t, vol = T0 + i * MINUTE, rng.uniform(1, 5000)
        rows.append({"venue": "binance-spot", "symbol": f"S{symbol}USDT", "interval": "1m",
                     "open_time": t, "close_time": t + MINUTE - 1,
                     "open_str": f"{price:.8f}", "high_str": f"{price * 1.001:.8f}",
                     "low_str": f"{price * 0.999:.8f}", "close_str": f"{price * 1.0002:.8f}",
                     "volume_str": f"{vol:.8f}", "quote_volume_str": f"{vol * price:.8f}",
                     "trades": rng.randint(10, 2999),
                     "taker_buy_base_volume_str": f"{vol / 2:.8f}",
                     "taker_buy_quote_volume_str": f"{vol * price / 2:.8f}",
                     "first_trade_id": 5_000_000_000 + i * 3000,
                     "last_trade_id": 5_000_002_000 + i * 3000, "closed": True,
                     "event_time": t + MINUTE + 7, "source": "ws"})
        price *= 1 + rng.uniform(-0.002, 0.002)
    return msgspec.json.decode(json.dumps(rows).encode(), type=list[Candle])


def test_a_buffered_candle_costs_under_200_bytes() -> None:
    """Memory guard (tracemalloc bytes, not timing): 40 full buffers of 500 realistic candles.
    Measured 2026-12-06: packed ~121 B per candle; the old ``deque[Candle]`` layout ~1,000 B
    (``benchmarks/buffer.py``), which this test also checks would fail the bound."""
    buffers, capacity = 40, 500
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        kept = []
        for s in range(buffers):
            buf = RingBuffer(capacity)
            for c in realistic(s, capacity + 37):  # slid: evictions and slack included
                buf.append(c)
            kept.append(buf)
        packed = (tracemalloc.get_traced_memory()[0] - start) / (buffers * capacity)
        start = tracemalloc.get_traced_memory()[0]
        objects = [realistic(s, capacity) for s in range(10)]  # what the old buffer held
        as_objects = (tracemalloc.get_traced_memory()[0] - start) / (10 * capacity)
    finally:
        tracemalloc.stop()
    assert all(len(b) == capacity and not b._objects for b in kept)
    assert as_objects > 600, as_objects  # the guard tells the layouts apart
    assert packed < 200, packed
    assert len(objects) == 10


def test_reads_return_copies() -> None:
    buf = RingBuffer(50)
    for i in range(40):
        buf.append(ws(i))
    for n in (None, 1, 5, 32, 33):
        window = buf.latest(n)
        expected = list(window)
        window.reverse()  # the caller's list: changing it changes nothing in the buffer
        same(buf.latest(n), expected)
        same(buf.latest(), [ws(i) for i in range(40)])


def test_a_window_read_once_stays_as_objects_and_in_step_with_appends() -> None:
    """``latest()`` decodes the packed window once; the stream then keeps it as objects, so
    the next read is a list copy (as fast as the old buffer) and appends keep it current."""
    buf = RingBuffer(50)
    for i in range(80):
        buf.append(ws(i))
    first = buf.latest()
    assert first == [ws(i) for i in range(30, 80)]
    assert len(buf._tail) == 50  # kept for the next read
    again = buf.latest()
    assert again == first and again is not first
    again.clear()  # a copy: the caller's list is theirs
    buf.append(ws(80))
    assert buf.latest() == [ws(i) for i in range(31, 81)]
    assert len(buf._tail) == 50


def test_a_window_that_changed_while_it_was_decoded_is_not_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A large window is decoded outside the lock; an append that lands meanwhile must not
    leave the stale window installed as the stream's objects."""
    import candlekeeper.core.buffers as buffers

    buf = RingBuffer(50)
    for i in range(60):
        buf.append(ws(i))
    real = buffers._decode

    def decode_while_a_close_arrives(snapshot: Any) -> list[Candle]:
        buf.append(ws(60))  # the event loop appends while another thread decodes
        return real(snapshot)

    monkeypatch.setattr(buffers, "_decode", decode_while_a_close_arrives)
    got = buf.latest()
    monkeypatch.setattr(buffers, "_decode", real)
    assert got == [ws(i) for i in range(10, 60)]  # the window as it was when asked
    assert buf.latest() == [ws(i) for i in range(11, 61)]  # not the stale one
