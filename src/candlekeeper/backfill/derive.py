"""Derived history from storage: build and audit a derived series (``3h``, ``1d+08:00``) from
the stored candles of its base, for ``candlekeeper backfill`` and ``candlekeeper gaps``.

Why from storage: the live path builds a derived candle only while the service runs, so a
backfilled year of ``1m`` would otherwise have no ``3h`` history at all. The base is what the
venue serves and what ``backfill`` fetches; the derived candles are then a pure function of it,
computed with the live path's own aggregation (:func:`~candlekeeper.core.derived.aggregate`),
so a rebuilt candle equals the one the service would have built from the same base candles.

Only *complete* buckets are written: a bucket whose base candles are not all stored (a hole the
venue's own history has, or a base not fetched yet) is counted, never written half-built. Only
buckets missing from storage are built, so a second run writes nothing new and a candle the
service built live is never overwritten. Base rows are read in keyset pages and derived rows
written in batches, so a year of ``1m`` (525,600 rows) is processed in bounded memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from candlekeeper.core.candle import Candle
from candlekeeper.core.derived import DerivedInterval, aggregate
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sinks.sqlite import SQLiteSink

__all__ = [
    "DeriveResult",
    "DerivedAudit",
    "DerivedHole",
    "audit_derived",
    "bucket_range",
    "build_derived",
]

Range = tuple[int, int]
#: base rows per storage read (a page of 1m is ~3.5 days)
PAGE = 5_000
#: derived candles per write transaction
BATCH = 1_000


def bucket_range(spec: DerivedInterval, start: int, end: int) -> Range:
    """``[first, stop)``: open times of the buckets lying wholly in ``[start, end)`` (the first
    opening at or after ``start``, the last closing before ``end``)."""
    first = spec.bucket(start)
    if first < start:
        first += spec.width_ms
    return first, max(first, spec.bucket(end))


@dataclass
class DeriveResult:
    """The outcome of building one derived stream from its stored base."""

    key: StreamKey
    spec: DerivedInterval
    built: int = 0
    #: missing buckets not built because their base is incomplete in storage
    incomplete: int = 0
    #: of which not a single base candle is stored (before the venue's history, typically)
    empty: int = 0
    first_incomplete: int | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        k = self.key
        return f"{k.venue} {k.symbol} {self.spec.name} (from {self.spec.base})"


@dataclass
class DerivedHole:
    """Consecutive missing derived buckets ``[start, end)``, and how many of them have a base
    that is incomplete in storage (those cannot be built until the base is repaired)."""

    start: int
    end: int
    candles: int
    base_incomplete: int


@dataclass
class DerivedAudit:
    """What storage holds of one derived stream over the buckets ``[start, end)``."""

    key: StreamKey
    spec: DerivedInterval
    start: int
    end: int
    stored: int
    holes: list[DerivedHole] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.stored == 0

    @property
    def missing(self) -> int:
        return sum(h.candles for h in self.holes)

    @property
    def base_key(self) -> StreamKey:
        return StreamKey(self.key.venue, self.key.symbol, self.spec.base)


async def _page(sink: SQLiteSink, key: StreamKey, after: int, end: int) -> list[Candle]:
    return await asyncio.to_thread(sink.read_page, key, after, end, PAGE)


async def _stored_opens(sink: SQLiteSink, key: StreamKey, start: int,
                        end: int) -> AsyncIterator[int]:
    """Open times stored for ``key`` in ``[start, end)``, ascending, page by page."""
    after = start - 1
    while True:
        rows = await _page(sink, key, after, end)
        for c in rows:
            yield c.open_time
        if len(rows) < PAGE:
            return
        after = rows[-1].open_time


async def missing_buckets(sink: SQLiteSink, spec: DerivedInterval, key: StreamKey, first: int,
                          stop: int) -> tuple[int, list[Range]]:
    """``(stored, holes)``: how many buckets of ``[first, stop)`` are stored, and the missing
    ones as maximal ``[start, end)`` ranges of open times."""
    holes: list[Range] = []
    stored, t = 0, first
    async for o in _stored_opens(sink, key, first, stop):
        if spec.bucket(o) != o:
            continue  # not an open time of this series
        stored += 1
        if o > t:
            holes.append((t, o))
        t = o + spec.width_ms
    if t < stop:
        holes.append((t, stop))
    return stored, holes


async def _buckets(sink: SQLiteSink, spec: DerivedInterval, base: StreamKey, start: int,
                   stop: int) -> AsyncIterator[tuple[int, list[Candle]]]:
    """Every bucket opening in ``[start, stop)`` (both bucket opens) with its stored base
    candles in open-time order (possibly none), streamed from storage page by page."""
    cur, parts = start, list[Candle]()
    after = start - 1
    while True:
        rows = await _page(sink, base, after, stop)
        for c in rows:
            b = spec.bucket(c.open_time)
            while cur < b:
                yield cur, parts
                cur, parts = cur + spec.width_ms, []
            parts.append(c)
        if len(rows) < PAGE:
            break
        after = rows[-1].open_time
    while cur < stop:
        yield cur, parts
        cur, parts = cur + spec.width_ms, []


async def build_derived(sink: SQLiteSink, spec: DerivedInterval, base: StreamKey, start: int,
                        end: int) -> DeriveResult:
    """Build and store every complete bucket of ``spec`` lying in ``[start, end)`` that
    storage lacks, from the stored candles of ``base``. ``end`` must not pass the base's
    forming candle (a bucket still forming would count as incomplete)."""
    key = StreamKey(base.venue, base.symbol, spec.name)
    result = DeriveResult(key, spec)
    first, stop = bucket_range(spec, start, end)
    _, holes = await missing_buckets(sink, spec, key, first, stop)
    batch: list[Candle] = []
    for a, b in holes:
        async for open_time, parts in _buckets(sink, spec, base, a, b):
            if len(parts) == spec.parts:
                batch.append(aggregate(parts, spec, open_time))
                if len(batch) >= BATCH:
                    result.built += await _write(sink, batch)
                    batch = []
                continue
            result.incomplete += 1
            result.empty += not parts
            if result.first_incomplete is None:
                result.first_incomplete = open_time
    result.built += await _write(sink, batch)
    return result


async def _write(sink: SQLiteSink, batch: list[Candle]) -> int:
    if not batch:
        return 0
    rejected = await sink.write(batch)
    return len(batch) - len(rejected)


async def audit_derived(sink: SQLiteSink, spec: DerivedInterval, key: StreamKey,
                        start: int | None, end: int | None, closed_end: int) -> DerivedAudit:
    """Missing buckets of the derived stream ``key`` in ``[start, end)``, each hole with how
    many of its buckets have an incomplete base. Without ``start``/``end`` the range is what
    the derived stream *or its base* holds (a derived candle is expected wherever its base is
    stored: a base backfilled before its derived stream was built shows as buckets to
    rebuild); ``closed_end`` is the base's forming candle (no bucket reaching it is expected)."""
    base = StreamKey(key.venue, key.symbol, spec.base)
    lo, hi = start, end
    if lo is None:
        firsts = [rows[0].open_time for k in (key, base)
                  if (rows := await asyncio.to_thread(sink.read_page, k, None, closed_end, 1))]
        lo = min(firsts, default=closed_end)
    if hi is None:
        last = await asyncio.to_thread(sink.last_open_time, key)
        last_base = await asyncio.to_thread(sink.last_open_time, base)
        ends = [t + w for t, w in ((last, spec.width_ms), (last_base, spec.base_ms))
                if t is not None]
        hi = max(ends, default=closed_end)
    first, stop = bucket_range(spec, lo, min(hi, closed_end))
    stored, ranges = await missing_buckets(sink, spec, key, first, stop)
    audit = DerivedAudit(key, spec, first, stop, stored)
    for a, b in ranges:
        incomplete = 0
        async for _, parts in _buckets(sink, spec, base, a, b):
            incomplete += len(parts) < spec.parts
        audit.holes.append(DerivedHole(a, b, (b - a) // spec.width_ms, incomplete))
    return audit
