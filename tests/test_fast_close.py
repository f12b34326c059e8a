"""Fast closes (issue 9, part 3), pure parts: which streams the REST budget admits, by priority,
and the correction a later closing frame makes of a close emitted from REST."""

from __future__ import annotations

import logging

import msgspec
import pytest
from pydantic import ValidationError

from candlekeeper import Candle, StreamKey
from candlekeeper.core.buffers import RingBuffer
from candlekeeper.core.bus import EventBus
from candlekeeper.core.candle import CorrectedCandle
from candlekeeper.core.events import CandleClosed, CandleCorrected
from candlekeeper.fast_close import plan_fast, say_plan, weight_per_minute
from candlekeeper.feed_stream import StreamStats
from candlekeeper.gapfill import GapFillOptions
from candlekeeper.observability.metrics import Metrics
from candlekeeper.sinks.nats_schema import msg_id, parse_msg_id
from candlekeeper.venues.registry import VENUES, get_spec

MINUTE = 60_000
T0 = 1_626_992_700_000
FLAGGED = [v for v in VENUES if get_spec(v).closed_flag]
FLAGLESS = [v for v in VENUES if not get_spec(v).closed_flag]


def keys(venue: str, symbols: int, intervals: tuple[str, ...]) -> list[StreamKey]:
    return [StreamKey(venue, f"S{i}USDT", iv) for i in range(symbols) for iv in intervals]


@pytest.mark.parametrize("venue", FLAGGED)
def test_every_stream_is_fast_when_the_budget_share_pays_for_it(venue: str) -> None:
    ks = keys(venue, 5, ("1m", "5m"))
    plan = plan_fast(get_spec(venue), ks, GapFillOptions())
    assert set(plan.fast) == set(ks) and plan.flag == ()
    assert plan.weight_per_min == pytest.approx(sum(weight_per_minute(get_spec(venue), k)
                                                    for k in ks))
    assert plan.weight_per_min <= plan.allowed_per_min


@pytest.mark.parametrize("venue", FLAGGED)
def test_beyond_the_budget_share_the_priority_decides(venue: str) -> None:
    spec = get_spec(venue)
    allowed = 0.5 * min(w.limit * 60.0 / w.seconds for w in spec.rest_limits)
    per_1m = weight_per_minute(spec, StreamKey(venue, "X", "1m"))
    n = int(allowed / per_1m) + 50  # more 1m streams than the share pays for
    ks = keys(venue, n, ("1m", "1h"))
    plan = plan_fast(spec, ks, GapFillOptions())
    # shortest first: every 1h stream left out, and 1m streams up to the budget
    assert plan.weight_per_min <= plan.allowed_per_min == pytest.approx(allowed)
    assert all(k.interval == "1m" for k in plan.fast)
    assert len(plan.fast) == int(allowed / per_1m)
    assert {k.interval for k in plan.flag} == {"1m", "1h"}
    # a declared priority puts 1h first
    plan_1h = plan_fast(spec, ks, GapFillOptions(fast_priority=("1h",)))
    assert {k for k in ks if k.interval == "1h"} <= set(plan_1h.fast)
    assert len(plan_1h.fast) + len(plan_1h.flag) == len(ks)


@pytest.mark.parametrize("venue", FLAGLESS)
def test_a_venue_without_a_closed_flag_gets_no_fast_closes(
        venue: str, caplog: pytest.LogCaptureFixture) -> None:
    ks = keys(venue, 3, ("1m",))
    plan = plan_fast(get_spec(venue), ks, GapFillOptions())
    assert plan.fast == () and set(plan.flag) == set(ks)
    with caplog.at_level(logging.WARNING):
        say_plan(venue, plan)
    assert [r.message for r in caplog.records] == [
        f"{venue}: close_policy fast is not used (the venue's stream has no closed flag to "
        "check REST against); closes wait for the venue's stream"]


def test_an_unknown_interval_in_the_priority_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="unknown interval"):
        GapFillOptions(fast_priority=("1m", "7m"))


# -- corrections ------------------------------------------------------------------------------
def candle(i: int, close: str = "7.6170", volume: str = "3005", *, source: str = "ws",
           trade_ids: bool = True) -> Candle:
    t = T0 + i * MINUTE
    c = Candle.of(VENUES[0], "BTCUSDT", "1m", t, t + MINUTE - 1, "7.6080", "7.6180", "7.6070",
                  close, volume, "22875.8590", 113, closed=True)
    return msgspec.structs.replace(c, source=source,
                                   first_trade_id=1 if trade_ids else None,
                                   last_trade_id=9 if trade_ids else None)


def stream() -> tuple[StreamStats, list[CandleCorrected], list[Candle]]:
    bus = EventBus()
    key = StreamKey(VENUES[0], "BTCUSDT", "1m")
    corrected: list[CandleCorrected] = []
    closed: list[Candle] = []
    bus.subscribe(CandleCorrected, corrected.append, inline=True)
    bus.subscribe(CandleClosed, closed.append, inline=True)
    st = StreamStats(key, Metrics().stream(key), RingBuffer(10), bus, lambda: T0 + 10 * MINUTE,
                     lambda _k: None)
    st.seq.last = T0 - MINUTE
    return st, corrected, closed


def test_a_closing_frame_that_differs_from_the_rest_close_is_a_correction() -> None:
    st, corrected, closed = stream()
    fast = candle(0, close="7.6100", volume="2990", source="rest", trade_ids=False)
    st.seq.fill([fast], T0, T0 + MINUTE)  # the fast close, from REST
    assert closed == [fast]
    frame = candle(0)  # x:true, with the last trades REST had not shown yet
    st.deliver(frame)
    assert corrected == [CandleCorrected(fast, CorrectedCandle.replacing(frame))]
    assert isinstance(corrected[0].candle, CorrectedCandle)
    assert corrected[0].candle.same_values(frame)
    assert closed == [fast]  # not emitted twice: the series still has each open time once
    assert st.buffer.latest() == [corrected[0].candle]
    assert st.last_closed is corrected[0].candle
    assert st.metrics.corrections == 1 and st.duplicates == 1


def test_a_closing_frame_equal_to_the_rest_close_is_only_a_duplicate() -> None:
    st, corrected, _ = stream()
    st.seq.fill([candle(0, source="rest", trade_ids=False)], T0, T0 + MINUTE)
    st.deliver(candle(0))  # same market values; trade ids are not a difference
    assert corrected == [] and st.metrics.corrections == 0 and st.duplicates == 1


def test_a_repeated_websocket_close_never_corrects() -> None:
    st, corrected, _ = stream()
    st.deliver(candle(0))
    st.deliver(candle(0, close="9.9999"))  # a replayed frame: the stream's own close wins
    assert corrected == [] and st.metrics.corrections == 0


def test_an_older_close_is_corrected_in_the_buffer() -> None:
    st, corrected, closed = stream()
    rest = [candle(i, source="rest", trade_ids=False) for i in range(3)]
    st.seq.fill(rest, T0, T0 + 3 * MINUTE)
    late = candle(1, close="7.6000")
    st.deliver(late)  # LATE (older than the last emitted), still a correction
    assert corrected == [CandleCorrected(rest[1], CorrectedCandle.replacing(late))]
    assert [c.close_str for c in st.buffer.latest()] == ["7.6170", "7.6000", "7.6170"]
    assert st.last_closed is rest[2] and closed == rest


def test_a_correction_gets_its_own_nats_message_id() -> None:
    """JetStream deduplicates by ``Nats-Msg-Id``: a correction must not carry the first
    message's id (it would be dropped), and a resend of the same correction must carry the
    same id (deduplicated like any resend)."""
    first = candle(0, close="7.6100", source="rest", trade_ids=False)
    fix = CorrectedCandle.replacing(candle(0))
    assert msg_id(first) == f"{VENUES[0]}:BTCUSDT:1m:{T0}"
    assert msg_id(fix).startswith(msg_id(first) + "~") and msg_id(fix) != msg_id(first)
    assert msg_id(fix) == msg_id(CorrectedCandle.replacing(candle(0)))
    assert msg_id(CorrectedCandle.replacing(candle(0, close="7.6171"))) != msg_id(fix)
    assert parse_msg_id(msg_id(fix)) == parse_msg_id(msg_id(first)) == (first.key, T0)

