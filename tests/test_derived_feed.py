"""A derived stream wired to its base stream as the feed wires it: closes, and corrections of a
base close (a fast or late REST close that the venue's closing frame contradicted) flowing
into the derived candle built from it."""

from __future__ import annotations

import msgspec

from candlekeeper.core.buffers import RingBuffer
from candlekeeper.core.bus import EventBus
from candlekeeper.core.candle import Candle, CorrectedCandle
from candlekeeper.core.derived import parse_derived
from candlekeeper.core.events import CandleClosed, CandleCorrected
from candlekeeper.core.intervals import MINUTE
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.feed_derived import DerivedStream
from candlekeeper.feed_stream import StreamStats
from candlekeeper.observability.metrics import Metrics

V = "venue-x"
T0 = 1_709_632_800_000  # 2024-03-05 10:00 UTC


def candle(i: int, close: str = "7.6170", volume: str = "3005", *, source: str = "ws") -> Candle:
    t = T0 + i * MINUTE
    c = Candle.of(V, "BTCUSDT", "1m", t, t + MINUTE - 1, "7.6080", "7.6180", "7.6070", close,
                  volume, "22875.8590", 113, closed=True)
    return msgspec.structs.replace(c, source=source)


def wired() -> tuple[StreamStats, DerivedStream, list[Candle], list[CandleCorrected]]:
    bus = EventBus()
    metrics = Metrics()
    closed: list[Candle] = []
    corrected: list[CandleCorrected] = []
    bus.subscribe(CandleClosed, closed.append, inline=True)
    bus.subscribe(CandleCorrected, corrected.append, inline=True)
    key = StreamKey(V, "BTCUSDT", "1m")
    st = StreamStats(key, metrics.stream(key), RingBuffer(100), bus, lambda: T0 + 60 * MINUTE,
                     lambda _k: None)
    st.seq.last = T0 - MINUTE
    dkey = StreamKey(V, "BTCUSDT", "5m")
    ds = DerivedStream(dkey, parse_derived("5m"), key, RingBuffer(10), metrics.stream(dkey),
                       bus, lambda: T0, base_buffer=st.buffer)
    st.taps.append(ds.offer)
    st.retaps.append(ds.corrected)
    return st, ds, closed, corrected


def test_derived_closes_follow_the_base_in_order() -> None:
    st, ds, closed, _ = wired()
    for i in range(10):
        st.deliver(candle(i))
    derived = [c for c in closed if c.interval == "5m"]
    assert [c.open_time for c in derived] == [T0, T0 + 5 * MINUTE]
    assert derived[0].volume_str == "15025" and derived[0].source == "derived"
    assert ds.buffer.latest() == derived and ds.metrics.closed == 2


def test_a_corrected_base_close_corrects_the_derived_candle() -> None:
    st, ds, closed, corrected = wired()
    rest = [candle(i, source="rest") for i in range(5)]
    fast = candle(4, close="7.6100", volume="2990", source="rest")
    st.seq.fill([*rest[:4], fast], T0, T0 + 5 * MINUTE)
    [emitted] = [c for c in closed if c.interval == "5m"]
    assert (emitted.close_str, emitted.volume_str) == ("7.6100", "15010")
    st.deliver(candle(4))  # the venue's closing frame, with the final trades
    derived_fix = [e for e in corrected if e.candle.interval == "5m"]
    assert len(derived_fix) == 1
    assert derived_fix[0].previous == emitted
    fixed = derived_fix[0].candle
    assert isinstance(fixed, CorrectedCandle)
    assert (fixed.close_str, fixed.volume_str, fixed.source) == ("7.6170", "15025", "derived")
    assert ds.buffer.latest() == [fixed] and ds.metrics.corrections == 1
    assert [c.interval for c in closed].count("5m") == 1  # emitted once, corrected once


def test_a_correction_inside_the_bucket_being_built_takes_the_new_values() -> None:
    st, _, closed, corrected = wired()
    st.seq.fill([candle(0, volume="1000", source="rest")], T0, T0 + MINUTE)
    st.deliver(candle(0))  # corrects the REST close before the 5m bucket is complete
    for i in range(1, 5):
        st.deliver(candle(i))
    [derived] = [c for c in closed if c.interval == "5m"]
    assert derived.open_str == "7.6080" and derived.volume_str == "15025"
    assert [e for e in corrected if e.candle.interval == "5m"] == []
