"""Derived intervals, the pure part: names, anchors, alignment, the aggregation rules field by
field, and the incremental series behind a base stream's sequence (holes hold it)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from candlekeeper.core.candle import Candle
from candlekeeper.core.derived import (
    DerivedSeries,
    aggregate,
    parse_anchor,
    parse_derived,
    sum_text,
)
from candlekeeper.core.intervals import DAY, HOUR, MINUTE
from candlekeeper.core.sequence import StreamSequence
from candlekeeper.errors import ConfigError

V = "venue-x"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 1000


def base(t: int, *, o: str = "1.0", h: str = "2.0", lo: str = "0.5", c: str = "1.5",
         v: str = "1.000", q: str | None = "10.00", n: int | None = 3,
         ids: tuple[int | None, int | None] = (None, None), interval: str = "1m") -> Candle:
    return Candle(V, "BTCUSDT", interval, t, t + MINUTE - 1, o, h, lo, c, v, q, n, v, q,
                  ids[0], ids[1], True, t + MINUTE, "ws")


# -- names and anchors ---------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "name", "width", "parts"), [
    ("2m", "2m", 2 * MINUTE, 2), ("45m", "45m", 45 * MINUTE, 45), ("3h", "3h", 3 * HOUR, 180),
    ("8h", "8h", 8 * HOUR, 480), ("2d", "2d", 2 * DAY, 2880), ("1d+08:00", "1d+08:00", DAY, 1440),
    ("5m@1m", "5m", 5 * MINUTE, 5), ("1h@5m", "1h", HOUR, 12), ("1w", "1w", 7 * DAY, 10080),
])
def test_names_parse(text: str, name: str, width: int, parts: int) -> None:
    spec = parse_derived(text)
    assert (spec.name, spec.width_ms, spec.parts) == (name, width, parts)


@pytest.mark.parametrize(("text", "why"), [
    ("7m", "divide a day"), ("5h", "divide a day"), ("1M", "calendar months"),
    ("30s", "multiple of the base"), ("1m", "multiple of the base"), ("2x", "expected N"),
    ("3m@2m", "native fixed-width"), ("10m@3m", "multiple of the base"),
    ("2m+08:00", "day-or-longer"), ("1d+08:30@1h", "would not open on 1h boundaries"),
])
def test_bad_names_are_rejected_clearly(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_derived(text)


def test_anchors() -> None:
    assert parse_anchor("UTC") == parse_anchor(None) == parse_anchor("+00:00") == 0
    assert parse_anchor("UTC+8") == parse_anchor("+08:00") == parse_anchor("utc+0800") == 8 * HOUR
    assert parse_anchor("-05:30") == -(5 * HOUR + 30 * MINUTE)
    for bad in ("UTC+15", "+08:61", "Asia/Shanghai", "8"):
        with pytest.raises(ConfigError, match="bad anchor"):
            parse_anchor(bad)
    with pytest.raises(ConfigError, match="day-or-longer"):
        parse_derived("4h", anchor="UTC+8")
    assert parse_derived("1d", anchor="UTC+8").name == "1d+08:00"


# -- alignment ----------------------------------------------------------------------------------
def test_sub_day_buckets_are_epoch_aligned() -> None:
    spec = parse_derived("3h")
    assert spec.bucket(ms("2024-03-05T10:59:00")) == ms("2024-03-05T09:00:00")
    assert spec.close_time(ms("2024-03-05T09:00:00")) == ms("2024-03-05T12:00:00") - 1


def test_daily_bars_anchored_at_utc_plus_8_open_at_16_utc() -> None:
    spec = parse_derived("1d", anchor="+08:00")
    assert spec.bucket(ms("2024-03-05T15:59:00")) == ms("2024-03-04T16:00:00")
    assert spec.bucket(ms("2024-03-05T16:00:00")) == ms("2024-03-05T16:00:00")
    assert parse_derived("1d").bucket(ms("2024-03-05T15:59:00")) == ms("2024-03-05T00:00:00")


def test_weeks_open_on_monday_at_the_anchor() -> None:
    # 2024-03-04 is a Monday
    assert parse_derived("1w@1d").bucket(ms("2024-03-10T23:59:00")) == ms("2024-03-04T00:00:00")
    anchored = parse_derived("1w+08:00")
    assert anchored.bucket(ms("2024-03-04T03:00:00")) == ms("2024-03-03T16:00:00")
    assert anchored.bucket(ms("2024-03-10T16:00:00")) == ms("2024-03-10T16:00:00")


# -- aggregation rules ----------------------------------------------------------------------
def test_sums_keep_exact_text_at_the_larger_scale() -> None:
    assert sum_text(["12.300", "1.000"]) == "13.300"
    assert sum_text(["1.5", "1.25"]) == "2.75"
    assert sum_text(["0.00000001", "0.00000002"]) == "0.00000003"  # never "3E-8"
    assert sum_text(["99999999999999999999.99999999", "0.00000001"]) == \
        "100000000000000000000.00000000"  # beyond float and default Decimal precision


def test_aggregate_field_by_field() -> None:
    t0 = ms("2024-03-05T10:00:00")
    parts = [base(t0, o="10.0", h="11.0", lo="9.5", c="10.5", v="12.300", n=4, ids=(None, None)),
             base(t0 + MINUTE, o="10.5", h="12.00", lo="9.50", c="11.0", v="1.000", n=1,
                  ids=(101, 105)),
             base(t0 + 2 * MINUTE, o="11.0", h="12.0", lo="9.0", c="9.9", v="0.700", n=2,
                  ids=(106, None))]
    c = aggregate(parts, parse_derived("3m"), t0)
    assert (c.interval, c.open_time, c.close_time) == ("3m", t0, t0 + 3 * MINUTE - 1)
    assert (c.open_str, c.high_str, c.low_str, c.close_str) == ("10.0", "12.00", "9.0", "9.9")
    assert (c.volume_str, c.quote_volume_str, c.trades) == ("14.000", "30.00", 7)
    assert (c.taker_buy_base_volume_str, c.taker_buy_quote_volume_str) == ("14.000", "30.00")
    assert (c.first_trade_id, c.last_trade_id) == (101, 105)
    assert (c.closed, c.source, c.event_time) == (True, "derived", parts[-1].event_time)


def test_a_field_some_constituent_lacks_is_none() -> None:
    t0 = ms("2024-03-05T10:00:00")
    c = aggregate([base(t0, q=None, n=None), base(t0 + MINUTE)], parse_derived("2m"), t0)
    assert c.quote_volume_str is None and c.trades is None and c.volume_str == "2.000"


# -- the series behind a base sequence ------------------------------------------------------------
def chain(spec: str = "5m") -> tuple[StreamSequence, DerivedSeries, list[Candle], list[int]]:
    out: list[Candle] = []
    holes: list[int] = []
    series = DerivedSeries(parse_derived(spec), out.append,
                           on_hole=lambda b, have: holes.append(b))
    seq = StreamSequence("1m", series.offer)
    return seq, series, out, holes


def test_emits_when_the_last_constituent_is_in() -> None:
    seq, _, out, _ = chain()
    t0 = ms("2024-03-05T10:00:00")
    for i in range(4):
        seq.offer(base(t0 + i * MINUTE))
    assert out == []
    seq.offer(base(t0 + 4 * MINUTE))
    assert [c.open_time for c in out] == [t0]


def test_a_held_hole_in_the_base_holds_the_derived_candle_until_filled() -> None:
    seq, _, out, holes = chain()
    t0 = ms("2024-03-05T10:00:00")
    for i in (0, 1, 3, 4, 5):  # 10:02 missing: the base sequence holds 10:03 onwards
        seq.offer(base(t0 + i * MINUTE))
    assert out == [] and seq.has_hole
    seq.fill([base(t0 + 2 * MINUTE)], t0 + 2 * MINUTE, t0 + 3 * MINUTE)
    assert [c.open_time for c in out] == [t0] and holes == []
    assert out[0].volume_str == "5.000"


def test_an_unfillable_base_hole_costs_one_bucket_and_never_wedges() -> None:
    seq, series, out, holes = chain()
    t0 = ms("2024-03-05T10:00:00")
    for i in range(5):
        seq.offer(base(t0 + i * MINUTE))
    for i in (5, 6, 8, 9, 10, 11, 12, 13, 14):  # 10:07 never exists
        seq.offer(base(t0 + i * MINUTE))
    seq.skip_hole()  # the venue's history lacks it (what the gap filler does at last)
    assert [c.open_time for c in out] == [t0, t0 + 10 * MINUTE]
    assert holes == [t0 + 5 * MINUTE] and series.holes == 1


def test_history_completes_the_bucket_live_closes_started_in() -> None:
    """Live first: the first live close is mid-bucket; the warm-up history fetched behind it
    completes that bucket (as history, since later buckets were emitted live meanwhile)."""
    _, series, out, _ = chain()
    t0 = ms("2024-03-05T10:00:00")
    for i in range(3, 10):
        series.offer(base(t0 + i * MINUTE))
    assert [c.open_time for c in out] == [t0 + 5 * MINUTE]
    done = series.history([base(t0 + i * MINUTE) for i in range(-7, 3)])
    assert [c.open_time for c in done] == [t0 - 5 * MINUTE, t0]  # 09:53 starts mid-bucket
    assert done[1].volume_str == "5.000" and out[0].volume_str == "5.000"


def test_history_before_the_first_close_makes_the_live_candle_complete() -> None:
    _, series, out, _ = chain()
    t0 = ms("2024-03-05T10:00:00")
    assert series.history([base(t0 + i * MINUTE) for i in range(-5, 3)]) \
        == [aggregate([base(t0 + i * MINUTE) for i in range(-5, 0)], series.spec, t0 - 5 * MINUTE)]
    series.offer(base(t0 + 3 * MINUTE))
    series.offer(base(t0 + 4 * MINUTE))
    assert [c.open_time for c in out] == [t0]


def test_a_resumed_series_produces_nothing_at_or_before_its_floor() -> None:
    out: list[Candle] = []
    t0 = ms("2024-03-05T10:00:00")
    series = DerivedSeries(parse_derived("5m"), out.append, floor=t0)
    for i in range(0, 10):
        series.offer(base(t0 + i * MINUTE))
    assert [c.open_time for c in out] == [t0 + 5 * MINUTE]


def test_history_in_two_stretches_completes_the_bucket_between_them() -> None:
    """Stored candles first (a restart), older warm-up history later: the bucket that both
    stretches cut through is completed, not lost."""
    _, series, out, holes = chain()
    t0 = ms("2024-03-05T10:00:00")
    first = series.history([base(t0 + i * MINUTE) for i in range(2, 12)])
    assert [c.open_time for c in first] == [t0 + 5 * MINUTE]
    older = series.history([base(t0 + i * MINUTE) for i in range(-5, 2)])
    assert [c.open_time for c in older] == [t0 - 5 * MINUTE, t0] and holes == []
    assert series.cur == t0 + 10 * MINUTE and out == []
