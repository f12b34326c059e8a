"""Per-stream ring buffers of closed candles.

Strategy code often reads the window from another thread (a pandas job, a GUI); every public read
takes a lock and returns a copy, so readers never see a half-applied update. Writes come from the
event loop only.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

DEFAULT_CAPACITY = 500


class RingBuffer:
    """The last ``capacity`` closed candles of one stream, oldest first, unique by open time."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._items: deque[Candle] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def append(self, candle: Candle) -> bool:
        """Add a closed candle newer than the last one; returns False (ignored) otherwise."""
        with self._lock:
            if self._items and candle.open_time <= self._items[-1].open_time:
                return False
            self._items.append(candle)
            return True

    def extend(self, candles: list[Candle]) -> int:
        """Merge candles (e.g. a REST warm-up) keeping open-time order and uniqueness."""
        with self._lock:
            merged = {c.open_time: c for c in self._items}
            for c in candles:
                merged.setdefault(c.open_time, c)
            ordered = [merged[t] for t in sorted(merged)]
            before = len(self._items)
            self._items = deque(ordered[-self.capacity:], maxlen=self.capacity)
            return len(self._items) - before

    def find(self, open_time: int) -> Candle | None:
        """The buffered candle that opens at ``open_time`` (newest first: a correction is
        almost always for one of the last few)."""
        with self._lock:
            for c in reversed(self._items):
                if c.open_time == open_time:
                    return c
                if c.open_time < open_time:
                    return None
        return None

    def replace(self, candle: Candle) -> bool:
        """Put ``candle`` in place of the buffered one with its open time (a correction);
        False when that one is no longer buffered."""
        with self._lock:
            for i in range(len(self._items) - 1, -1, -1):
                t = self._items[i].open_time
                if t == candle.open_time:
                    self._items[i] = candle
                    return True
                if t < candle.open_time:
                    return False
        return False

    def latest(self, n: int | None = None) -> list[Candle]:
        """The newest ``n`` candles (all if ``None``), oldest first."""
        with self._lock:
            items = list(self._items)
        if n is None or n >= len(items):
            return items
        return items[-n:] if n > 0 else []

    def last(self) -> Candle | None:
        with self._lock:
            return self._items[-1] if self._items else None

    def __len__(self) -> int:
        return len(self._items)


def to_dataframe(candles: list[Candle]) -> pd.DataFrame:
    """Candles as a pandas DataFrame indexed by open time (UTC). Decimals stay exact (object
    columns); call ``.astype(float)`` yourself if you want floats."""
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("pandas is optional: pip install 'candlekeeper[pandas]'") from exc
    rows: list[dict[str, Any]] = [
        {
            "open_time": c.open_time,
            "open": c.open,
            "high": c.high,
            "low": c.low,
            "close": c.close,
            "volume": c.volume,
            "close_time": c.close_time,
            "quote_volume": c.quote_volume,
            "trades": c.trades,
            "taker_buy_base_volume": c.taker_buy_base_volume,
            "taker_buy_quote_volume": c.taker_buy_quote_volume,
        }
        for c in candles
    ]
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame.index = pd.to_datetime(frame["open_time"], unit="ms", utc=True)
        frame.index.name = "time"
    return frame


class BufferSet:
    """One ring buffer per stream, created on first use."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._buffers: dict[StreamKey, RingBuffer] = {}

    def get(self, key: StreamKey) -> RingBuffer:
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = RingBuffer(self.capacity)
        return buf

    def __contains__(self, key: object) -> bool:
        return key in self._buffers

    def keys(self) -> list[StreamKey]:
        return list(self._buffers)
