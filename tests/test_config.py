"""The strict config: every error case names the key/path, env overrides, normalisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from candlekeeper.config import (
    Config,
    ConfigValidationError,
    check_config,
    format_config_errors,
    load_config,
    load_config_text,
)
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError
from candlekeeper.venues.binance.endpoints import BINANCE_SPOT, BINANCE_USDM

REPO = Path(__file__).resolve().parents[1]
MINIMAL = "feeds:\n  - venue: binance-usdm\n    symbols: [BTCUSDT]\n"


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigValidationError) as info:
        load_config_text(text, env)
    return list(info.value.problems)


def feed_yaml(**fields: Any) -> str:
    body = {"venue": "binance-usdm", "symbols": "[BTCUSDT]", "intervals": "[1m]", **fields}
    return "feeds:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in body.items()) + "\n"


# -- valid configs ------------------------------------------------------------------------------


def test_minimal_config_gets_documented_defaults() -> None:
    cfg = load_config_text(MINIMAL)
    feed = cfg.feeds[0]
    assert feed.venue == "binance-usdm"
    assert feed.symbols == ("BTCUSDT",)
    assert feed.intervals == ("1m",)
    assert feed.ws_base == "wss://fstream.binance.com/market"
    assert feed.rest_base == "https://fapi.binance.com"
    assert cfg.buffer_size == 500
    assert cfg.transport.backoff_initial_s == 1.0
    assert cfg.transport.backoff_max_s == 60.0
    assert cfg.transport.healthy_after_s == 30.0
    assert cfg.transport.stall_grace_ms == 5000
    assert cfg.transport.ack_timeout_s == 10.0
    assert cfg.sinks.sqlite.enabled is True
    assert cfg.sinks.sqlite.path == Path("candles.sqlite")
    assert cfg.sinks.sqlite.batch_size == 500
    assert cfg.sinks.sqlite.flush_interval_s == 0.5
    assert cfg.observability.http.port == 9108
    assert cfg.observability.http.host == "127.0.0.1"
    assert cfg.observability.log_level == "INFO"
    assert cfg.shutdown.drain_timeout_s == 10.0


def test_rest_section_shares_the_budget_by_default_and_is_checked(tmp_path: Path) -> None:
    cfg = load_config_text(MINIMAL)
    assert cfg.rest.shared_budget is True and cfg.rest.ledger_dir is None
    env = {"CANDLEKEEPER__REST__SHARED_BUDGET": "false",
           "CANDLEKEEPER__REST__LEDGER_DIR": str(tmp_path / "ledgers")}
    cfg = load_config_text(MINIMAL, env)
    assert cfg.rest.shared_budget is False and cfg.rest.ledger_dir == tmp_path / "ledgers"
    a_file = tmp_path / "f"
    a_file.write_text("")
    assert any("rest.ledger_dir" in p and "is a file" in p
               for p in problems_of(MINIMAL + f"rest:\n  ledger_dir: {a_file}\n"))
    assert any("rest.shared" in p and "did you mean 'shared_budget'" in p
               for p in problems_of(MINIMAL + "rest:\n  shared: false\n"))


def test_example_config_is_valid() -> None:
    cfg = load_config(REPO / "examples" / "config.yaml", env={})
    assert [f.venue for f in cfg.feeds] == ["binance-usdm", "binance-spot", "bingx-swap"]
    assert cfg.feeds[0].symbols == ("BTCUSDT", "ETHUSDT")
    assert cfg.feeds[0].intervals == ("1m", "5m", "1h")
    assert cfg.feeds[2].symbols == ("BTCUSDT",)  # written BTC-USDT: one canonical form
    spot = cfg.feeds[1]
    assert [(g.symbols, g.intervals) for g in spot.stream_groups] == [
        (("BTCUSDT",), ("1s", "1m")), (("ETHUSDT", "SOLUSDT"), ("1h", "4h"))]
    assert not cfg.sinks.postgres.enabled and not cfg.sinks.nats.enabled


def test_symbols_are_normalised_and_deduplicated() -> None:
    cfg = load_config_text(feed_yaml(symbols="[btcusdt, ETH-USDT, SOL/USDT:USDT, BTC_USDT]"))
    assert cfg.feeds[0].symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def test_symbols_all() -> None:
    cfg = load_config_text(feed_yaml(symbols="all"))
    assert cfg.feeds[0].symbols == "all"
    assert cfg.feeds[0].all_symbols
    with pytest.raises(ConfigError, match="resolve them first"):
        cfg.feeds[0].stream_keys()
    assert cfg.feeds[0].stream_keys(["BTCUSDT"]) == [StreamKey("binance-usdm", "BTCUSDT", "1m")]
    assert cfg.stream_keys() == []


def test_intervals_sorted_and_stream_keys() -> None:
    cfg = load_config_text(feed_yaml(symbols="[BTCUSDT, ETHUSDT]", intervals="[1h, 1m, 1m]"))
    assert cfg.feeds[0].intervals == ("1m", "1h")
    assert cfg.stream_keys() == [
        StreamKey("binance-usdm", "BTCUSDT", "1m"), StreamKey("binance-usdm", "BTCUSDT", "1h"),
        StreamKey("binance-usdm", "ETHUSDT", "1m"), StreamKey("binance-usdm", "ETHUSDT", "1h"),
    ]


def test_spot_allows_1s_and_testnet_switch() -> None:
    cfg = load_config_text(feed_yaml(venue="binance-spot", intervals="[1s]", testnet="true"))
    assert cfg.feeds[0].intervals == ("1s",)
    assert cfg.feeds[0].ws_base == BINANCE_SPOT.ws_testnet_base
    assert cfg.feeds[0].rest_base == BINANCE_SPOT.rest_testnet_base


def test_local_ws_url_is_allowed_and_wins() -> None:
    cfg = load_config_text(feed_yaml(ws_url="ws://127.0.0.1:8765/market/",
                                     rest_url="http://127.0.0.1:8766", testnet="true"))
    assert cfg.feeds[0].ws_base == "ws://127.0.0.1:8765/market"
    assert cfg.feeds[0].rest_base == "http://127.0.0.1:8766"


def test_config_is_frozen() -> None:
    cfg = load_config_text(MINIMAL)
    with pytest.raises(ValidationError, match="frozen"):
        setattr(cfg, "buffer_size", 1)  # noqa: B010 - bypass the type checker on purpose


def test_from_dict_for_library_users() -> None:
    cfg = Config.from_dict({"feeds": [{"venue": "binance-usdm", "symbols": ["btc-usdt"]}],
                            "sinks": {"sqlite": {"enabled": False}}})
    assert cfg.feeds[0].symbols == ("BTCUSDT",)
    assert cfg.sinks.sqlite.enabled is False
    with pytest.raises(ConfigValidationError) as info:
        Config.from_dict({"feeds": [{"venue": "binance-usdm", "symbols": ["BTCUSDT"]}], "x": 1})
    assert info.value.problems == ("x: unknown key",)


def test_empty_section_means_defaults() -> None:
    cfg = load_config_text(MINIMAL + "sinks:\nobservability:\n  http:\n")
    assert cfg.sinks.sqlite.batch_size == 500
    assert cfg.observability.http.port == 9108


# -- unknown keys name the key and its full path ------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("bufer_size: 10\n", "bufer_size: unknown key (did you mean 'buffer_size'?)"),
        ("Transport: {}\n", "Transport: unknown key (did you mean 'transport'?)"),
        ("sinks:\n  sqlite:\n    pth: x.db\n",
         "sinks.sqlite.pth: unknown key (did you mean 'path'?)"),
        ("sinks:\n  mysql: {}\n", "sinks.mysql: unknown key"),
        ("observability:\n  http:\n    prot: 1\n",
         "observability.http.prot: unknown key (did you mean 'port'?)"),
        ("transport:\n  backof_max_s: 3\n",
         "transport.backof_max_s: unknown key (did you mean 'backoff_max_s'?)"),
        ("zzz: 1\n", "zzz: unknown key"),
    ],
)
def test_unknown_key_at_any_depth(extra: str, expected: str) -> None:
    assert problems_of(MINIMAL + extra) == [expected]


def test_unknown_key_inside_a_list_item() -> None:
    assert problems_of(feed_yaml(symbol="[X]")) == [
        "feeds[0].symbol: unknown key (did you mean 'symbols'?)"]


def test_all_problems_reported_at_once() -> None:
    text = feed_yaml(venue="binance-spott") + "bufer_size: 1\nsinks: {sqlite: {pth: a}}\n"
    problems = problems_of(text)
    assert len(problems) == 3
    assert problems[0].startswith("feeds[0].venue: unknown venue 'binance-spott'")
    assert "bufer_size: unknown key (did you mean 'buffer_size'?)" in problems
    assert "sinks.sqlite.pth: unknown key (did you mean 'path'?)" in problems


# -- bad values ---------------------------------------------------------------------------------


def test_unknown_venue_lists_known_ones() -> None:
    [problem] = problems_of(feed_yaml(venue="binance-futures"))
    assert problem.startswith("feeds[0].venue: unknown venue 'binance-futures'")
    assert "known venues: binance-spot, binance-usdm" in problem


def test_unknown_interval_for_usdm_names_it_and_the_allowed_set() -> None:
    [problem] = problems_of(feed_yaml(intervals="[1m, 1s]"))
    assert problem.startswith(
        "feeds[0]: binance-usdm has no interval '1s' and cannot derive '1s' from 1m: it must be "
        "a multiple of the base, and longer; allowed: " + ", ".join(BINANCE_USDM.intervals))
    assert "1s" not in BINANCE_USDM.intervals
    [problem] = problems_of(feed_yaml(intervals="[1m, 1x]"))
    assert problem.startswith("feeds[0].intervals: unknown interval '1x' for binance-usdm; "
                              "allowed: " + ", ".join(BINANCE_USDM.intervals))


def test_interval_case_hint() -> None:
    [problem] = problems_of(feed_yaml(intervals="[1H, 2q]"))
    assert "unknown intervals '1H', '2q' for binance-usdm" in problem
    assert "did you mean '1h'?" in problem


@pytest.mark.parametrize(
    ("symbols", "fragment"),
    [
        ("[BTC$]", "bad symbol 'BTC$'"),
        ("[BTC USDT]", "bad symbol 'BTC USDT'"),
        ("[ON]", "True is not a symbol (quote it in YAML)"),
        ("[]", "at least one symbol is required"),
        ("12", "expected a list of symbols (or 'all'), got int"),
    ],
)
def test_bad_symbols(symbols: str, fragment: str) -> None:
    [problem] = problems_of(feed_yaml(symbols=symbols))
    assert problem.startswith("feeds[0].symbols: ")
    assert fragment in problem


@pytest.mark.parametrize(
    ("extra", "expected_prefix", "fragment"),
    [
        ("buffer_size: 0\n", "buffer_size: ", "greater than or equal to 1"),
        ("buffer_size: lots\n", "buffer_size: ", "valid integer"),
        ("sinks: {sqlite: {batch_size: 0.5}}\n", "sinks.sqlite.batch_size: ", "fractional"),
        ("observability: {http: {port: 70000}}\n", "observability.http.port: ", "65535"),
        ("observability: {log_level: LOUD}\n", "observability.log_level: ", "'INFO'"),
        ("transport: {backoff_initial_s: 10, backoff_max_s: 5}\n", "transport: ",
         "backoff_max_s (5.0) must be >= backoff_initial_s (10.0)"),
        ("transport: {backoff_jitter: 2}\n", "transport.backoff_jitter: ", "less than or equal"),
    ],
)
def test_bad_values_name_the_field(extra: str, expected_prefix: str, fragment: str) -> None:
    [problem] = problems_of(MINIMAL + extra)
    assert problem.startswith(expected_prefix)
    assert fragment in problem


def test_bad_urls() -> None:
    problems = problems_of(feed_yaml(ws_url="https://x", rest_url="ws://x"))
    assert problems == [
        "feeds[0].ws_url: must start with ws:// or wss://, got 'https://x'",
        "feeds[0].rest_url: must start with http:// or https://, got 'ws://x'",
    ]


def test_missing_and_empty_feeds() -> None:
    assert problems_of("buffer_size: 10\n") == ["feeds: required key is missing"]
    assert problems_of("feeds: []\n") == ["feeds: at least one feed is required"]
    assert problems_of("feeds:\n  - venue: binance-usdm\n") == [
        "feeds[0].symbols: required key is missing"]


def test_duplicate_venue_entries() -> None:
    text = MINIMAL + "  - venue: binance-usdm\n    symbols: [ETHUSDT]\n"
    assert problems_of(text) == [
        "feeds: feeds[1]: venue 'binance-usdm' is already configured in feeds[0]; "
        "list all its symbols in one entry (use groups for different intervals per symbol)"]


def test_log_level_is_case_insensitive() -> None:
    cfg = load_config_text(MINIMAL + "observability: {log_level: debug}\n")
    assert cfg.observability.log_level == "DEBUG"


# -- YAML-level problems ------------------------------------------------------------------------


def test_duplicate_yaml_key_is_an_error() -> None:
    [problem] = problems_of(MINIMAL + "buffer_size: 1\nbuffer_size: 2\n")
    assert "duplicate key 'buffer_size' (first defined on line 4)" in problem
    assert "line 5" in problem


def test_yaml_syntax_error_has_a_position() -> None:
    [problem] = problems_of("feeds: [\n")
    assert problem.startswith("YAML error at line 2, column 1:")


def test_top_level_must_be_a_mapping() -> None:
    assert problems_of("- a\n- b\n") == ["expected a mapping at the top level, got list"]


# -- environment overrides ----------------------------------------------------------------------


def test_env_overrides_nested_values() -> None:
    env = {
        "CANDLEKEEPER__SINKS__SQLITE__PATH": "/x.db",
        "CANDLEKEEPER__SINKS__SQLITE__ENABLED": "false",
        "CANDLEKEEPER__BUFFER_SIZE": "42",
        "CANDLEKEEPER__TRANSPORT__BACKOFF_MAX_S": "5.5",
        "CANDLEKEEPER__FEEDS__0__WS_URL": "ws://127.0.0.1:9/market",
        "CANDLEKEEPER__FEEDS__0__SYMBOLS": "btcusdt, ETH-USDT",
        "CANDLEKEEPER__OBSERVABILITY__LOG_LEVEL": "warning",
        "UNRELATED": "1",
        "CANDLEKEEPER_CONFIG": "ignored-by-load_config_text",
    }
    cfg = load_config_text(MINIMAL, env)
    assert cfg.sinks.sqlite.path == Path("/x.db")
    assert cfg.sinks.sqlite.enabled is False
    assert cfg.buffer_size == 42
    assert cfg.transport.backoff_max_s == 5.5
    assert cfg.feeds[0].ws_base == "ws://127.0.0.1:9/market"
    assert cfg.feeds[0].symbols == ("BTCUSDT", "ETHUSDT")
    assert cfg.observability.log_level == "WARNING"


def test_env_can_build_a_feed_and_reset_to_null() -> None:
    env = {
        "CANDLEKEEPER__FEEDS__0__VENUE": "binance-spot",
        "CANDLEKEEPER__FEEDS__0__SYMBOLS": "all",
        "CANDLEKEEPER__FEEDS__1__VENUE": "binance-usdm",
        "CANDLEKEEPER__FEEDS__1__SYMBOLS": "BTCUSDT",
        "CANDLEKEEPER__FEEDS__1__INTERVALS": "1m,5m",
        "CANDLEKEEPER__TRANSPORT__ROTATE_AFTER_S": "",
    }
    cfg = load_config(None, env)
    assert [f.venue for f in cfg.feeds] == ["binance-spot", "binance-usdm"]
    assert cfg.feeds[1].intervals == ("1m", "5m")
    assert cfg.transport.rotate_after_s is None  # "" resets the 23.5 h default to null


def test_env_errors_name_the_variable() -> None:
    problems = problems_of(MINIMAL, {"CANDLEKEEPER__SINKS__SQLITE__BATCH_SIZE": "many",
                                     "CANDLEKEEPER__SINKS__SQLITE__PTH": "/x"})
    assert len(problems) == 2
    assert problems[0].startswith("sinks.sqlite.batch_size: Input should be a valid integer")
    assert problems[0].endswith(
        "[from environment variable CANDLEKEEPER__SINKS__SQLITE__BATCH_SIZE]")
    assert problems[1] == ("sinks.sqlite.pth: unknown key (did you mean 'path'?) "
                           "[from environment variable CANDLEKEEPER__SINKS__SQLITE__PTH]")


def test_env_structural_problems() -> None:
    problems = problems_of(MINIMAL, {"CANDLEKEEPER__FEEDS__3__TESTNET": "true",
                                     "CANDLEKEEPER__BUFFER_SIZE__X": "1",
                                     "CANDLEKEEPER__SINKS___SQLITE": "1"})
    assert "environment variable CANDLEKEEPER__FEEDS__3__TESTNET: index 3 is out of range for "\
        "feeds (it has 1 item)" in problems
    assert "buffer_size: Input should be a valid integer (got {'x': '1'}) [from environment "\
        "variable CANDLEKEEPER__BUFFER_SIZE__X]" in problems
    assert "sinks._sqlite: unknown key (did you mean 'sqlite'?) [from environment variable "\
        "CANDLEKEEPER__SINKS___SQLITE]" in problems
    assert len(problems) == 3


def test_env_cannot_descend_into_a_value() -> None:
    [problem] = problems_of(MINIMAL + "buffer_size: 3\n", {"CANDLEKEEPER__BUFFER_SIZE__X": "1"})
    assert problem == ("environment variable CANDLEKEEPER__BUFFER_SIZE__X: buffer_size is a "
                       "single value, it has no key 'x'")
    with pytest.raises(ConfigValidationError, match="bad name"):
        load_config_text(MINIMAL, {"CANDLEKEEPER__SINKS__SQLITE-PATH": "x"})


# -- files, CANDLEKEEPER_CONFIG and check_config ------------------------------------------------


def test_load_config_from_file_and_env_path(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL + "buffer_size: 7\n", encoding="utf-8")
    assert load_config(path, env={}).buffer_size == 7
    assert load_config(None, env={"CANDLEKEEPER_CONFIG": str(path)}).buffer_size == 7
    assert load_config(str(path), env={"CANDLEKEEPER__BUFFER_SIZE": "9"}).buffer_size == 9


def test_check_config(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL, encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL + "sinks: {sqlite: {pth: a}}\n", encoding="utf-8")
    assert check_config(good, env={}) == []
    assert check_config(bad, env={}) == ["sinks.sqlite.pth: unknown key (did you mean 'path'?)"]
    missing = tmp_path / "nope.yaml"
    assert check_config(missing, env={}) == [f"file not found: {missing}"]


def test_error_message_lists_everything() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(MINIMAL + "a: 1\nb: 2\n", source="svc.yaml")
    assert str(info.value) == ("invalid configuration in svc.yaml (2 problems):\n"
                               "  - a: unknown key\n  - b: unknown key")
    assert format_config_errors(["x: y"]) == "invalid configuration (1 problem):\n  - x: y"
