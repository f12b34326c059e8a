"""The identity of one kline series: ``(venue, symbol, interval)``."""

from __future__ import annotations

from typing import NamedTuple


class StreamKey(NamedTuple):
    """One kline series. ``symbol`` is always the canonical form (uppercase, no separator,
    e.g. ``BTCUSDT``), whatever the venue writes on the wire."""

    venue: str
    symbol: str
    interval: str

    def __str__(self) -> str:
        return f"{self.venue}:{self.symbol}:{self.interval}"

    @classmethod
    def parse(cls, text: str) -> StreamKey:
        """Inverse of ``str()``: ``"<venue>:BTCUSDT:1m"``."""
        venue, symbol, interval = text.split(":")
        return cls(venue, symbol, interval)
