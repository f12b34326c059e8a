"""The pure symbol normaliser: every form users write maps to one canonical name."""

from __future__ import annotations

import pytest

from candlekeeper.core.symbols import normalize_symbol
from candlekeeper.errors import ConfigError


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("BTCUSDT", "BTCUSDT"),
        ("btcusdt", "BTCUSDT"),
        ("BTC-USDT", "BTCUSDT"),
        ("btc_usdt", "BTCUSDT"),
        ("BTC/USDT", "BTCUSDT"),
        ("BTC/USDT:USDT", "BTCUSDT"),
        ("eth/usdc:usdc", "ETHUSDC"),
        ("  SOLUSDT ", "SOLUSDT"),
        ("1000PEPEUSDT", "1000PEPEUSDT"),
        ("1000pepe-usdt", "1000PEPEUSDT"),
        ("币安人生USDT", "币安人生USDT"),
    ],
)
def test_normalises_every_written_form(raw: str, canonical: str) -> None:
    assert normalize_symbol(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("BTC$", "only letters and digits"),
        ("BTC USDT", "only letters and digits"),
        ("BTC--USDT", "expected e.g."),
        ("-BTCUSDT", "expected e.g."),
        ("BTCUSDT/", "expected e.g."),
        ("BTC/USDT/X", "expected e.g."),
        ("BTCUSDT:USDT", "':SETTLE' suffix"),
        ("BTC/USDT:", "':SETTLE' suffix"),
        ("A" * 41, "longer than 40"),
    ],
)
def test_rejects_bad_symbols_with_a_reason(raw: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        normalize_symbol(raw)
    assert fragment in str(info.value)
    if raw.strip():
        assert repr(raw) in str(info.value)


def test_non_string_is_rejected() -> None:
    with pytest.raises(ConfigError, match="must be a string, got int"):
        normalize_symbol(123)  # type: ignore[arg-type]
