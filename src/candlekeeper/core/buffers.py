"""Per-stream ring buffers of closed candles.

Strategy code often reads the window from another thread (a pandas job, a GUI); every public read
takes a lock and returns a copy, so readers never see a half-applied update. Writes come from the
event loop only.

Candles are buffered packed (``core/candle_pack.py``: ~150 bytes each instead of ~865 as
objects), because at a venue's whole universe the buffers are most of the process's memory
(issue 12, ``benchmarks/buffer.py``). ``Candle`` objects are made when read, and the newest
``n`` a reader asks for (``last()``, ``latest(20)``, ``latest()``) then stay as objects for that
stream, so a repeated read costs no decoding — it is a list copy, as fast as the old buffer.
Memory goes back to objects only for the streams someone reads, and only for as many candles
as were read; a stream nobody reads (most of a universe, which is stored, not read) stays packed.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left
from typing import TYPE_CHECKING, Any, TypeAlias

from candlekeeper.core import candle_pack
from candlekeeper.core.candle import Candle
from candlekeeper.core.candle_pack import INTS
from candlekeeper.core.stream_key import StreamKey

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

DEFAULT_CAPACITY = 500
#: reads of at most this many candles are decoded under the lock (cheap); larger windows are
#: decoded outside it, so that a reader in another thread never holds up the event loop's
#: appends for long, and installed as the stream's objects only if nothing changed meanwhile
SMALL_READ = 32

_Key = tuple[str, str, str]
_NO_INTS = (0,) * INTS
#: rows copied under the lock, decoded outside it: key, times, ints, flags, sizes, texts, objects
_Snapshot: TypeAlias = (
    "tuple[_Key, array[int], array[int], bytes, array[int], bytes, dict[int, Candle]]")


class RingBuffer:
    """The last ``capacity`` closed candles of one stream, oldest first, unique by open time.

    Storage (all row-aligned, oldest first): ``_times`` (open times, for bisect), ``_ints``
    (:data:`~candlekeeper.core.candle_pack.INTS` per row), ``_flags``, ``_sizes`` (bytes of the
    row's packed texts in ``_blob``; 0 = the row is the object in ``_objects``, keyed by open
    time). Up to ``_slack`` rows older than the window linger so that an append does not shift
    every column each time; they are dropped in one go.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._slack = capacity // 32
        self._lock = threading.Lock()
        self._key: _Key | None = None
        self._clear()
        #: objects of the newest ``len(_tail)`` rows, and how many readers want kept
        self._tail: list[Candle] = []
        self._keep = 1
        #: changes with every write: a window decoded outside the lock is kept only if the
        #: buffer did not change meanwhile
        self._version = 0

    def _clear(self) -> None:
        self._times = array("q")
        self._ints = array("q")
        self._flags = bytearray()
        self._sizes = array("H")
        self._blob = bytearray()
        self._objects: dict[int, Candle] = {}

    # -- writes (event loop) ----------------------------------------------------------------
    def append(self, candle: Candle) -> bool:
        """Add a closed candle newer than the last one; returns False (ignored) otherwise."""
        with self._lock:
            if self._times and candle.open_time <= self._times[-1]:
                return False
            self._version += 1
            self._put(candle)
            tail = self._tail
            tail.append(candle)
            if len(tail) > min(self._keep, self.capacity):
                del tail[0]
            if len(self._times) > self.capacity + self._slack:
                self._drop(len(self._times) - self.capacity)
            return True

    def _put(self, candle: Candle) -> None:
        self._times.append(candle.open_time)  # first: an open time outside int64 raises here
        texts, ints, flags = self._pack(candle)
        self._ints.extend(ints)
        self._flags.append(flags)
        self._sizes.append(len(texts))
        self._blob += texts

    def _pack(self, candle: Candle) -> tuple[bytes, tuple[int, ...], int]:
        """The candle's row; one that cannot be packed exactly is kept as the object (size 0)."""
        if self._key is None:
            self._key = candle_pack.key_of(candle)
        row = candle_pack.pack(candle, self._key) if self._key is not None else None
        if row is None or len(row[0]) > 0xFFFF:  # _sizes holds 16 bits
            self._objects[candle.open_time] = candle
            return b"", _NO_INTS, 0
        return row

    def _drop(self, n: int) -> None:
        """Forget the ``n`` oldest rows."""
        for t in self._times[:n]:
            self._objects.pop(t, None)
        del self._blob[:sum(self._sizes[:n])]
        del self._times[:n], self._ints[:n * INTS], self._flags[:n], self._sizes[:n]

    def extend(self, candles: list[Candle]) -> int:
        """Merge candles (e.g. a REST warm-up) keeping open-time order and uniqueness."""
        with self._lock:
            self._version += 1
            before = len(self)
            lo = self._lo()
            current = self._rows(lo, len(self._times)) if lo < len(self._times) else []
            merged = {c.open_time: c for c in current}
            for c in candles:
                merged.setdefault(c.open_time, c)
            ordered = [merged[t] for t in sorted(merged)][-self.capacity:]
            self._clear()
            for c in ordered:
                self._put(c)
            self._tail = ordered[-min(self._keep, len(ordered)):] if ordered else []
            return len(self) - before

    def replace(self, candle: Candle) -> bool:
        """Put ``candle`` in place of the buffered one with its open time (a correction);
        False when that one is no longer buffered."""
        with self._lock:
            i = self._index(candle.open_time)
            if i < 0:
                return False
            self._version += 1
            self._objects.pop(candle.open_time, None)
            texts, ints, flags = self._pack(candle)
            start = len(self._blob) - sum(self._sizes[i:])
            self._blob[start:start + self._sizes[i]] = texts
            self._ints[i * INTS:(i + 1) * INTS] = array("q", ints)
            self._flags[i] = flags
            self._sizes[i] = len(texts)
            j = i - (len(self._times) - len(self._tail))
            if j >= 0:
                self._tail[j] = candle
            return True

    # -- reads (any thread) -----------------------------------------------------------------
    def find(self, open_time: int) -> Candle | None:
        """The buffered candle that opens at ``open_time``."""
        with self._lock:
            i = self._index(open_time)
            return self._rows(i, i + 1)[0] if i >= 0 else None

    def latest(self, n: int | None = None) -> list[Candle]:
        """The newest ``n`` candles (all if ``None``), oldest first."""
        with self._lock:
            size = len(self)
            if n is None or n >= size:
                n = size
            elif n <= 0:
                return []
            tail = self._tail
            if n <= len(tail):
                return tail[len(tail) - n:]
            end = len(self._times) - len(tail)
            if n <= SMALL_READ:  # a few missing: decode them here, keep them
                self._tail = tail = self._rows(len(self._times) - n, end) + tail
                self._keep = max(self._keep, n)
                return list(tail)
            snapshot = self._snapshot(len(self._times) - n, end)
            newest = list(tail)
            version = self._version
        window = _decode(snapshot) + newest
        with self._lock:  # keep them as objects for the next read, unless they went stale
            if self._version == version:
                self._tail = window
                self._keep = max(self._keep, n)
                return list(window)
        return window

    def last(self) -> Candle | None:
        with self._lock:
            if self._tail:
                return self._tail[-1]
            n = len(self._times)
            if not n:
                return None
            self._tail = self._rows(n - 1, n)
            return self._tail[0]

    def latest_df(self, n: int | None = None) -> pd.DataFrame:
        """``to_dataframe(latest(n))``, built from the packed columns (no ``Candle`` made)."""
        with self._lock:
            size = len(self)
            n = size if n is None or n >= size else max(n, 0)
            snapshot = self._snapshot(len(self._times) - n, len(self._times))
        _key, times, ints, _flags, _sizes, blob, objects = snapshot
        if objects:
            return to_dataframe(_decode(snapshot))
        return candle_pack.packed_frame(times, ints, candle_pack.texts(blob))

    def __len__(self) -> int:
        return min(len(self._times), self.capacity)

    # -- rows -----------------------------------------------------------------------------
    def _lo(self) -> int:
        """The first row inside the window (older ones are slack waiting to be dropped)."""
        return max(0, len(self._times) - self.capacity)

    def _index(self, open_time: int) -> int:
        times = self._times
        i = bisect_left(times, open_time, self._lo())
        return i if i < len(times) and times[i] == open_time else -1

    def _snapshot(self, lo: int, hi: int) -> _Snapshot:
        sizes = self._sizes
        end = len(self._blob) - (sum(sizes[hi:]) if hi < len(sizes) else 0)
        times = self._times[lo:hi]
        objects = {t: self._objects[t] for t in times if t in self._objects} \
            if self._objects else {}
        return (self._key or ("", "", ""), times, self._ints[lo * INTS:hi * INTS],
                bytes(self._flags[lo:hi]), sizes[lo:hi],
                bytes(self._blob[end - sum(sizes[lo:hi]):end]), objects)

    def _rows(self, lo: int, hi: int) -> list[Candle]:
        return _decode(self._snapshot(lo, hi))


def _decode(snapshot: _Snapshot) -> list[Candle]:
    key, times, ints, flags, sizes, blob, objects = snapshot
    if not objects:
        return candle_pack.unpack(key, times, ints, flags, candle_pack.texts(blob))
    out: list[Candle] = []
    at = 0
    for r, (t, size) in enumerate(zip(times, sizes, strict=True)):
        if not size:
            out.append(objects[t])
            continue
        out += candle_pack.unpack(key, [t], ints[r * INTS:(r + 1) * INTS], flags[r:r + 1],
                                  candle_pack.texts(blob[at:at + size]))
        at += size
    return out


def to_dataframe(candles: list[Candle]) -> pd.DataFrame:
    """Candles as a pandas DataFrame indexed by open time (UTC). Decimals stay exact (object
    columns); call ``.astype(float)`` yourself if you want floats."""
    columns: dict[str, list[Any]] = {
        "open_time": [c.open_time for c in candles],
        "open": [c.open for c in candles],
        "high": [c.high for c in candles],
        "low": [c.low for c in candles],
        "close": [c.close for c in candles],
        "volume": [c.volume for c in candles],
        "close_time": [c.close_time for c in candles],
        "quote_volume": [c.quote_volume for c in candles],
        "trades": [c.trades for c in candles],
        "taker_buy_base_volume": [c.taker_buy_base_volume for c in candles],
        "taker_buy_quote_volume": [c.taker_buy_quote_volume for c in candles],
    }
    return candle_pack.frame(columns)


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
