"""Per-symbol interval sets: a feed entry's ``groups`` (validation, keys, env overrides)."""

from __future__ import annotations

import pytest

from candlekeeper.config import ConfigValidationError, load_config, load_config_text
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError

HEAD = "feeds:\n  - venue: binance-usdm\n"


def groups_yaml(*groups: str, venue: str = "binance-usdm") -> str:
    body = "".join(f"      - {g}\n" for g in groups)
    return f"feeds:\n  - venue: {venue}\n    groups:\n{body}"


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigValidationError) as info:
        load_config_text(text)
    return list(info.value.problems)


def K(symbol: str, interval: str) -> StreamKey:
    return StreamKey("binance-usdm", symbol, interval)


def test_groups_give_each_symbol_its_own_intervals() -> None:
    cfg = load_config_text(groups_yaml("{symbols: [BTCUSDT], intervals: [5m, 1m]}",
                                       "{symbols: [eth-usdt, SOLUSDT], intervals: [1h, 4h]}"))
    feed = cfg.feeds[0]
    assert feed.symbols is None and feed.groups is not None
    assert [g.intervals for g in feed.groups] == [("1m", "5m"), ("1h", "4h")]
    assert feed.explicit_symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    assert feed.intervals_for("BTCUSDT") == ("1m", "5m")
    assert feed.intervals_for("SOLUSDT") == ("1h", "4h")
    assert feed.intervals_for("XRPUSDT") == ("1m", "5m", "1h", "4h")  # not configured: every one
    assert cfg.stream_keys() == [K("BTCUSDT", "1m"), K("BTCUSDT", "5m"), K("ETHUSDT", "1h"),
                                 K("ETHUSDT", "4h"), K("SOLUSDT", "1h"), K("SOLUSDT", "4h")]
    assert not feed.all_symbols


def test_a_group_with_all_resolves_against_the_listing() -> None:
    cfg = load_config_text(groups_yaml("{symbols: [BTCUSDT], intervals: [1m]}",
                                       "{symbols: all, intervals: [1h]}"))
    feed = cfg.feeds[0]
    assert feed.all_symbols
    with pytest.raises(ConfigError, match="resolve them first"):
        feed.stream_keys()
    assert feed.stream_keys(["BTCUSDT", "ETHUSDT"]) == [K("BTCUSDT", "1m"), K("BTCUSDT", "1h"),
                                                        K("ETHUSDT", "1h")]
    assert cfg.stream_keys() == [K("BTCUSDT", "1m")]  # what is listed by name
    assert feed.intervals_for("ETHUSDT") == ("1h",)


def test_the_classic_entry_is_one_group() -> None:
    cfg = load_config_text(HEAD + "    symbols: [BTCUSDT, ETHUSDT]\n    intervals: [1m, 5m]\n")
    feed = cfg.feeds[0]
    assert feed.groups is None
    [group] = feed.stream_groups
    assert group.symbols == ("BTCUSDT", "ETHUSDT") and group.intervals == ("1m", "5m")
    # the old meaning of stream_keys(symbols) is kept: they replace the configured ones
    assert feed.stream_keys(["XRPUSDT"]) == [K("XRPUSDT", "1m"), K("XRPUSDT", "5m")]


@pytest.mark.parametrize(("groups", "expected"), [
    (("{symbols: [BTCUSDT, ETHUSDT], intervals: [1m, 5m]}",
      "{symbols: [ETHUSDT], intervals: [5m, 1h]}"),
     "feeds[0]: groups overlap: ETHUSDT 5m is in groups[0] and groups[1] (each (symbol, "
     "interval) may be in one group only)"),
    (("{symbols: all, intervals: [1h]}", "{symbols: [BTCUSDT], intervals: [1m, 1h]}"),
     "feeds[0]: groups overlap: BTCUSDT 1h in groups[1] is already in groups[0] (symbols: all) "
     "(each (symbol, interval) may be in one group only)"),
    (("{symbols: all, intervals: [1h, 4h]}", "{symbols: all, intervals: [4h]}"),
     "feeds[0]: groups overlap: groups[1] and groups[0] both take every symbol on 4h (each "
     "(symbol, interval) may be in one group only)"),
])
def test_overlapping_groups_are_refused(groups: tuple[str, ...], expected: str) -> None:
    assert problems_of(groups_yaml(*groups)) == [expected]


def test_many_overlaps_are_summarised() -> None:
    syms = ", ".join(f"S{i}USDT" for i in range(10))
    [problem] = problems_of(groups_yaml(f"{{symbols: [{syms}]}}", f"{{symbols: [{syms}]}}"))
    assert problem.count(" is in groups[0] and groups[1]") == 5
    assert "; and 5 more" in problem


def test_groups_and_symbols_are_exclusive() -> None:
    text = HEAD + "    symbols: [BTCUSDT]\n    intervals: [1m]\n    groups:\n" \
                  "      - {symbols: [ETHUSDT]}\n"
    assert problems_of(text) == [
        "feeds[0]: give either groups or symbols and intervals, not both (with groups, each "
        "group lists its own symbols and intervals)"]


def test_group_problems_name_the_group() -> None:
    problems = problems_of(groups_yaml("{symbols: [BTCUSDT], intervals: [1x]}",
                                       "{symbols: [], intervals: [1m]}", "{symbol: [X]}"))
    assert problems[0].startswith("feeds[0].groups[0].intervals: unknown interval '1x' for "
                                  "binance-usdm")
    assert problems[1] == ("feeds[0].groups[1].symbols: at least one symbol is required "
                           "(or 'all')")
    assert "feeds[0].groups[2].symbols: required key is missing" in problems
    assert "feeds[0].groups[2].symbol: unknown key (did you mean 'symbols'?)" in problems


def test_a_group_cannot_name_a_venue_and_groups_cannot_be_empty() -> None:
    assert problems_of(groups_yaml("{venue: binance-spot, symbols: [BTCUSDT]}")) == [
        "feeds[0]: groups[0].venue: a group takes symbols and intervals; the venue is the "
        "feed's"]
    assert problems_of(HEAD + "    groups: []\n") == [
        "feeds[0]: groups: at least one group is required"]
    assert problems_of(HEAD) == ["feeds[0].symbols: required key is missing"]


def test_spot_group_may_take_1s() -> None:
    cfg = load_config_text(groups_yaml("{symbols: [BTCUSDT], intervals: [1s]}",
                                       venue="binance-spot"))
    assert cfg.stream_keys() == [StreamKey("binance-spot", "BTCUSDT", "1s")]


def test_groups_from_the_environment() -> None:
    env = {"CANDLEKEEPER__FEEDS__0__VENUE": "binance-usdm",
           "CANDLEKEEPER__FEEDS__0__GROUPS__0__SYMBOLS": "BTCUSDT",
           "CANDLEKEEPER__FEEDS__0__GROUPS__0__INTERVALS": "1m,5m",
           "CANDLEKEEPER__FEEDS__0__GROUPS__1__SYMBOLS": "ETHUSDT,SOLUSDT",
           "CANDLEKEEPER__FEEDS__0__GROUPS__1__INTERVALS": "1h"}
    cfg = load_config(None, env)
    assert cfg.stream_keys() == [K("BTCUSDT", "1m"), K("BTCUSDT", "5m"), K("ETHUSDT", "1h"),
                                 K("SOLUSDT", "1h")]
