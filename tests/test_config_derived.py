"""Derived intervals in the config and the library: what is accepted, what each stream becomes,
and one clear line for what cannot be derived."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from candlekeeper import CandleFeed, StreamKey
from candlekeeper.config import ConfigValidationError, load_config_text
from candlekeeper.errors import ConfigError

USDM = "binance-usdm"


def feed_text(intervals: str, extra: str = "") -> str:
    return (f"feeds:\n  - venue: {USDM}\n    symbols: [BTCUSDT]\n    intervals: {intervals}\n"
            + extra)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigValidationError) as info:
        load_config_text(text)
    return list(info.value.problems)


def test_derivable_intervals_are_accepted_and_sorted_by_width() -> None:
    cfg = load_config_text(feed_text("[3h, 1m, 2m, 1d+08:00, 5m@1m]"))
    feed = cfg.feeds[0]
    assert feed.intervals == ("1m", "2m", "5m@1m", "3h", "1d+08:00")
    assert feed.derive_from == "1m" and feed.anchor is None


def test_anchor_and_base_options() -> None:
    cfg = load_config_text(feed_text("[1h, 1d]", "    derive_from: 1h\n    anchor: UTC+8\n"))
    assert (cfg.feeds[0].derive_from, cfg.feeds[0].anchor) == ("1h", "UTC+8")


@pytest.mark.parametrize(("intervals", "extra", "fragment"), [
    ("[7m]", "", "cannot derive '7m': a sub-day interval must divide a day evenly"),
    ("[1s]", "", "cannot derive '1s' from 1m"),
    ("[2m]", "    derive_from: 5m\n", "cannot derive '2m' from 5m"),
    ("[1d]", "    anchor: UTC+8\n    derive_from: 1d\n", "must be a multiple of the base"),
    ("[1d]", "    anchor: Mars/Olympus\n", "bad anchor 'Mars/Olympus'"),
    ("[5m, 5m@1m]", "", "asked both native and derived"),
])
def test_what_cannot_be_derived_is_one_clear_line(intervals: str, extra: str,
                                                  fragment: str) -> None:
    [problem] = problems_of(feed_text(intervals, extra))
    assert fragment in problem, problem
    if "anchor:" not in extra or "Mars" not in extra:
        assert "allowed: 1m, 3m, 5m" in problem or "its intervals" in problem \
            or "both native" in problem, problem


def test_feed_subscribes_the_base_and_builds_the_rest() -> None:
    feed = CandleFeed(USDM, ["BTCUSDT"], ["2m", "3h", "5m", "1d"], anchor="UTC+8")
    assert feed.keys == [StreamKey(USDM, "BTCUSDT", "5m"), StreamKey(USDM, "BTCUSDT", "1m")]
    assert feed.derived_keys == [StreamKey(USDM, "BTCUSDT", i) for i in ("2m", "3h", "1d+08:00")]
    assert feed.latest("BTCUSDT", "3h") == [] and feed.latest("BTCUSDT", "1d+08:00") == []
    with pytest.raises(KeyError):
        feed.latest("BTCUSDT", "1d")


def test_native_intervals_are_not_derived_unless_asked() -> None:
    feed = CandleFeed(USDM, ["BTCUSDT"], ["5m", "1d"])
    assert feed.derived_keys == [] and len(feed.keys) == 2
    feed = CandleFeed(USDM, ["BTCUSDT"], ["5m@1m"])
    assert feed.derived_keys == [StreamKey(USDM, "BTCUSDT", "5m")]


def test_feed_rejects_what_it_cannot_derive() -> None:
    with pytest.raises(ConfigError, match=f"{USDM} has no interval '7m'"):
        CandleFeed(USDM, ["BTCUSDT"], ["7m"])
    with pytest.raises(ConfigError, match="day-or-longer"):
        CandleFeed(USDM, ["BTCUSDT"], ["4h+08:00"])
    with pytest.raises((ConfigError, ValidationError), match="bad anchor"):
        CandleFeed(USDM, ["BTCUSDT"], ["1d"], anchor="noon")
