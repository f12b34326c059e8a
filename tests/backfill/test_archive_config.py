"""The feed's ``archive_url``: checked like ``rest_url``, refused for a venue without an
archive (``config check`` says so before ``backfill`` would)."""

from __future__ import annotations

import pytest

from candlekeeper.config import ConfigValidationError, load_config_text


def feed(venue: str, url: str) -> str:
    return (f"feeds:\n  - venue: {venue}\n    symbols: [BTCUSDT]\n    intervals: [1m]\n"
            f"    archive_url: {url}\n")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigValidationError) as info:
        load_config_text(text)
    return list(info.value.problems)


def test_archive_url_is_a_base_url_of_a_venue_with_an_archive() -> None:
    cfg = load_config_text(feed("binance-spot", "http://127.0.0.1:9001/"))
    assert cfg.feeds[0].archive_url == "http://127.0.0.1:9001"
    assert cfg.feeds[0].rest_url is None
    assert problems(feed("binance-usdm", "ftp://x")) == [
        "feeds[0].archive_url: must start with http:// or https://, got 'ftp://x'"]
    [problem] = problems(feed("bybit-linear", "https://example.org"))
    assert "archive_url: bybit-linear publishes no kline archive" in problem, problem
