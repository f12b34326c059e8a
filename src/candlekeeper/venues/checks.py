"""Checks on what a venue sends, shared by every venue's codecs and the REST fetcher.

Pure functions on candles and frames: a closed candle must be on its interval's grid, end where
its interval ends, and carry plain decimal text for every price and volume.
"""

from __future__ import annotations

from typing import Final

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import INTERVAL_MS, align, close_time

__all__ = ["MAX_DECIMAL_CHARS", "candle_problem", "is_decimal_text", "snippet"]

#: One received WebSocket message (as in ``contract.Frame``).
_Frame = bytes | bytearray | memoryview | str


#: longest decimal text accepted from a venue (digits and one point)
MAX_DECIMAL_CHARS: Final = 64


def is_decimal_text(text: object) -> bool:
    """A non-negative plain decimal (``"0.01"``, ``"42"``): what every venue sends for prices and
    volumes. ``""``, ``"abc"``, ``"NaN"``, ``"1e5"``, ``"-1"`` and non-ASCII digits are not."""
    return (isinstance(text, str) and 0 < len(text) <= MAX_DECIMAL_CHARS and text.isascii()
            and text.replace(".", "", 1).isdigit() and text[0] != "." and text[-1] != ".")


def candle_problem(c: Candle) -> str | None:
    """Why a candle cannot be a real one, or None. Checks the open time against the interval's
    grid, the close time against the open time, and every price and volume as decimal text.
    Used on every *closed* candle (rare) and REST row; live updates of the forming candle are
    not checked (hundreds of thousands a second, superseded by the close that is).

    Deliberately not checked: ``low <= open, close <= high``. A venue's own data is the truth we
    store; refusing a candle whose numbers disagree with each other would turn the venue's
    rounding quirk into a permanent hole."""
    interval = c.interval
    if interval not in INTERVAL_MS:
        return f"unknown interval {interval!r}"
    t = c.open_time
    if t < 0 or align(t, interval) != t:
        return f"open time {t} is not on the {interval} grid"
    if c.close_time != close_time(t, interval):
        return f"close time {c.close_time} does not end the {interval} candle opening at {t}"
    for name in ("open_str", "high_str", "low_str", "close_str", "volume_str",
                 "quote_volume_str", "taker_buy_base_volume_str", "taker_buy_quote_volume_str"):
        value = getattr(c, name)
        if value is not None and not is_decimal_text(value):
            return f"{name.removesuffix('_str')} is not a decimal: {str(value)[:40]!r}"
    return None


def snippet(frame: _Frame, n: int = 120) -> str:
    """The start of a frame as text, copied (a memoryview frame dies with the callback)."""
    if isinstance(frame, str):
        return frame[:n]
    return bytes(frame[:n]).decode("utf-8", "replace")
