from __future__ import annotations

from candlekeeper.core.candle import Candle
from candlekeeper.core.sequence import Offer, StreamSequence

M = 60_000


def c(i: int, source: str = "ws", close: str = "1.0") -> Candle:
    return Candle("binance-usdm", "BTCUSDT", "1m", i * M, i * M + M - 1, "1.0", "1.0", "1.0",
                  close, "1", closed=True, source=source)  # type: ignore[arg-type]


def seq(last: int | None = None, **kw: object) -> tuple[StreamSequence, list[int]]:
    out: list[int] = []
    s = StreamSequence("1m", lambda x: out.append(x.open_time // M),
                       last=None if last is None else last * M, **kw)  # type: ignore[arg-type]
    return s, out


def test_in_order_closes_pass_through_and_repeats_are_dropped() -> None:
    s, out = seq()
    assert s.offer(c(1)) is Offer.EMITTED  # the first close anchors the stream
    assert s.offer(c(2)) is Offer.EMITTED
    assert s.offer(c(2)) is Offer.DUPLICATE
    assert s.offer(c(1)) is Offer.LATE
    assert out == [1, 2]
    assert (s.duplicates, s.late) == (1, 1)


def test_a_skip_ahead_is_held_until_the_fill_then_everything_in_order() -> None:
    s, out = seq(last=1)
    assert s.offer(c(4)) is Offer.HELD
    assert s.offer(c(5)) is Offer.HELD
    assert out == [] and s.has_hole
    n = s.fill([c(2, "rest"), c(3, "rest"), c(4, "rest")], 2 * M, 5 * M)
    assert out == [2, 3, 4, 5]
    assert n == 3 and not s.has_hole and s.unfillable == 0


def test_fill_overlapping_what_was_emitted_emits_nothing_twice() -> None:
    s, out = seq(last=3)
    s.fill([c(i, "rest") for i in range(1, 7)], 1 * M, 7 * M)
    assert out == [4, 5, 6]
    s.offer(c(6))
    assert out == [4, 5, 6] and s.duplicates == 1


def test_rest_lagging_behind_the_websocket_keeps_the_hole_open() -> None:
    s, out = seq(last=1)
    s.offer(c(5))  # 2, 3, 4 missing on the WebSocket
    s.fill([c(2, "rest")], 2 * M, 6 * M)  # REST only knows up to 2 so far
    assert out == [2] and s.has_hole and s.unfillable == 0
    s.fill([c(3, "rest"), c(4, "rest")], 3 * M, 6 * M)
    assert out == [2, 3, 4, 5] and not s.has_hole


def test_a_candle_missing_from_the_exchange_history_is_skipped_and_counted() -> None:
    s, out = seq(last=1)
    s.offer(c(5))
    s.fill([c(2, "rest"), c(4, "rest"), c(5, "rest")], 2 * M, 6 * M)  # 3 does not exist
    assert out == [2, 4, 5]
    assert s.unfillable == 1


def test_skip_hole_when_rest_cannot_help() -> None:
    s, out = seq(last=1)
    s.offer(c(4))
    s.offer(c(5))
    assert s.skip_hole() == 2
    assert out == [4, 5] and s.unfillable == 2


def test_warm_up_anchors_without_emitting_and_holds_early_closes() -> None:
    s, out = seq(wait_for_anchor=True)
    assert s.offer(c(10)) is Offer.HELD  # warm-up still in flight
    s.fill([c(i, "rest") for i in range(5, 10)], 5 * M, 10 * M, emit=False)
    assert out == [10]  # history adopted silently, then the held live close
    assert s.last == 10 * M


def test_resume_after_restart_emits_everything_after_the_stored_candle() -> None:
    s, out = seq(last=3)
    s.fill([c(i, "rest") for i in range(1, 9)], 4 * M, 9 * M)
    assert out == [4, 5, 6, 7, 8]


def test_inferred_closes_wait_for_rest_and_rest_values_win() -> None:
    """BingX has no closed flag: the close inferred from the next push is held until REST
    confirms it, and REST's final values replace the (possibly stale) pushed ones."""
    out: list[Candle] = []
    s = StreamSequence("1m", out.append, last=1 * M, prefer_rest=True)
    assert s.hold(c(2, close="9.9")) is Offer.HELD
    assert s.hold(c(3, close="9.9")) is Offer.HELD
    assert out == []  # never released without REST, even though 2 is contiguous
    s.fill([c(2, "rest", close="2.0")], 2 * M, 4 * M)  # REST knows only 2 so far
    assert [(x.open_time // M, x.close_str, x.source) for x in out] == [(2, "2.0", "rest")]
    assert s.has_hole  # 3 still waits for REST
    s.fill([c(3, "rest", close="3.0")], 3 * M, 4 * M)
    assert [x.close_str for x in out] == ["2.0", "3.0"] and not s.has_hole
    assert s.hold(c(3)) is Offer.DUPLICATE


def test_skip_hole_releases_inferred_closes_when_rest_never_answers() -> None:
    out: list[int] = []
    s = StreamSequence("1m", lambda x: out.append(x.open_time // M), last=1 * M,
                       prefer_rest=True)
    s.hold(c(2))
    assert s.skip_hole() == 0 and out == [2]  # nothing skipped: the pushed values are used


def test_held_closes_are_capped_and_the_overflow_counted() -> None:
    """A long REST outage while the WebSocket keeps delivering must not grow memory without
    bound: beyond ``max_held`` new closes are not kept (REST fetches them with the hole)."""
    s, out = seq(last=0, max_held=3)
    for i in range(2, 8):  # candle 1 is missing: everything after it is held
        assert s.offer(c(i)) is Offer.HELD
    assert sorted(s.held) == [2 * M, 3 * M, 4 * M]
    assert s.overflow == 3
    s.fill([c(i, source="rest") for i in range(1, 8)], M, 8 * M)
    assert out == [1, 2, 3, 4, 5, 6, 7]
