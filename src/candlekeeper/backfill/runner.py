"""Storage-level history: audit what a sink holds, and fill what is missing over REST.

``Backfiller`` is the engine behind ``candlekeeper backfill`` and ``candlekeeper gaps``. It plans
from what is *stored* (``missing_ranges`` over the stored open times), so a run can be stopped at
any moment and started again: it resumes where storage ends, never fetches a stored candle twice
and never writes a duplicate (the sink's upsert is idempotent anyway). Work is written in chunks
of a few pages, each in one transaction, so an interruption loses at most the chunk in flight.

With an :class:`~candlekeeper.backfill.archive.ArchiveFiller` for a venue, :meth:`Backfiller.fill`
first stores the whole months and days of the missing ranges from the venue's public archive;
the REST pass then plans from storage as always and fetches only what is still missing.

A candle the venue's REST history does not have (before the listing, or a hole in the exchange's
own data) cannot be filled; it is reported as *unfillable* after one attempt instead of being
asked for again and again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from candlekeeper.backfill.archive import ArchiveFiller
from candlekeeper.backfill.fetcher import KlineFetcher
from candlekeeper.backfill.planner import count_open_times, missing_ranges, optimal_limit, pages
from candlekeeper.core.intervals import next_open
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import CandlekeeperError, ConfigError
from candlekeeper.sinks.sqlite import SQLiteSink

__all__ = ["Backfiller", "FillResult", "Progress", "StreamAudit"]

Range = tuple[int, int]


class Progress(Protocol):
    """Where the backfiller reports progress (a rich bar, plain lines, or nothing)."""

    def plan(self, key: StreamKey, candles: int) -> None:
        """``candles`` more are planned for ``key`` (called once per planned range)."""
        ...

    def advance(self, key: StreamKey, planned: int, fetched: int) -> None: ...

    def end(self, key: StreamKey) -> None: ...


class _Silent:
    def plan(self, key: StreamKey, candles: int) -> None:
        pass

    def advance(self, key: StreamKey, planned: int, fetched: int) -> None:
        pass

    def end(self, key: StreamKey) -> None:
        pass


@dataclass
class StreamAudit:
    """What storage holds for one stream over ``[start, end)``."""

    key: StreamKey
    start: int
    end: int
    stored: int
    holes: list[Range]

    @property
    def empty(self) -> bool:
        return self.stored == 0

    @property
    def missing(self) -> int:
        return sum(count_open_times(a, b, self.key.interval) for a, b in self.holes)


@dataclass
class FillResult:
    """The outcome of filling one stream."""

    key: StreamKey
    planned: int = 0  # candles missing before the run
    fetched: int = 0  # candles received and written
    archived: int = 0  # of which from the venue's public archive
    #: missing ranges the venue did not have (when the fill raised no error)
    unfillable: list[Range] = field(default_factory=list)
    #: the venue's first candle in the range, when a probe was needed
    first_available: int | None = None
    error: str | None = None


class Backfiller:
    """Audits and fills streams of one SQLite sink, with one fetcher per venue."""

    def __init__(self, sink: SQLiteSink, fetchers: Mapping[str, KlineFetcher], *,
                 progress: Progress | None = None, pages_per_chunk: int = 8,
                 stream_concurrency: int = 4,
                 archives: Mapping[str, ArchiveFiller] | None = None) -> None:
        self.sink = sink
        self.fetchers = fetchers
        #: venue -> its archive, for the venues whose history comes from archives first
        self.archives = dict(archives or {})
        self.progress: Progress = progress or _Silent()
        self.pages_per_chunk = pages_per_chunk
        self._streams = asyncio.Semaphore(stream_concurrency)

    def fetcher(self, venue: str) -> KlineFetcher:
        try:
            return self.fetchers[venue]
        except KeyError:
            raise ConfigError(f"no REST client for venue {venue!r}") from None

    async def stored_open_times(self, key: StreamKey, start: int | None,
                                end: int | None) -> list[int]:
        """Open times stored for ``key`` in ``[start, end)`` (None: unbounded)."""
        hi = None if end is None else end - 1
        candles = await asyncio.to_thread(self.sink.read, key, start, hi)
        return [c.open_time for c in candles]

    async def audit(self, key: StreamKey, start: int | None = None,
                    end: int | None = None) -> StreamAudit:
        """Holes of ``key`` in ``[start, end)``. Without ``start``/``end`` the range is what is
        stored (first to last candle: interior holes only); ``end`` is capped at the candle
        forming now."""
        times = await self.stored_open_times(key, start, end)
        cap = self.fetcher(key.venue).closed_end(key.interval)
        lo = start if start is not None else (times[0] if times else cap)
        hi = min(cap, end if end is not None else (
            next_open(times[-1], key.interval) if times else cap))
        return StreamAudit(key, lo, hi, sum(1 for t in times if lo <= t < hi),
                           missing_ranges(times, key.interval, lo, hi) if hi > lo else [])

    async def fill(self, key: StreamKey, start: int, end: int | None = None) -> FillResult:
        """Fetch and store every closed candle of ``key`` in ``[start, end)`` that storage
        lacks. Errors are caught into the result so that other streams go on."""
        async with self._streams:
            result = FillResult(key)
            try:
                await self._from_archive(key, start, end, result)
                await self._fill(key, start, end, result)
            except CandlekeeperError as exc:
                result.error = str(exc)
            finally:
                self.progress.end(key)
            return result

    async def repair(self, audit: StreamAudit) -> FillResult:
        """Fill the holes an audit found (each hole once); ``unfillable`` is what the venue did
        not have."""
        async with self._streams:
            result = FillResult(audit.key)
            try:
                for a, b in audit.holes:
                    await self._fill(audit.key, a, b, result)
            except CandlekeeperError as exc:
                result.error = str(exc)
            finally:
                self.progress.end(audit.key)
            return result

    async def _from_archive(self, key: StreamKey, start: int, end: int | None,
                            result: FillResult) -> None:
        """Store what the venue's archive has of the missing whole months and days."""
        archive = self.archives.get(key.venue)
        if archive is None or not archive.serves(key.interval):
            return
        interval = key.interval
        end = self.fetcher(key.venue).closed_end(interval, end)
        holes = missing_ranges(await self.stored_open_times(key, start, end), interval, start,
                               end)
        progress = self.progress

        def advance(planned: int, stored: int) -> None:
            progress.plan(key, planned)
            progress.advance(key, planned, stored)

        stored = await archive.fill(key, holes, self.sink, advance,
                                    now_ms=self.fetcher(key.venue).now_ms(0))
        result.archived += stored
        result.fetched += stored

    async def _fill(self, key: StreamKey, start: int, end: int | None,
                    result: FillResult) -> None:
        """Plan from storage, skip what predates the venue's history, fetch chunk by chunk
        (each written in its own transaction), then record what is still missing."""
        fetcher = self.fetcher(key.venue)
        interval = key.interval
        end = fetcher.closed_end(interval, end)
        holes = missing_ranges(await self.stored_open_times(key, start, end), interval, start,
                               end)
        planned = sum(count_open_times(a, b, interval) for a, b in holes)
        result.planned += planned
        self.progress.plan(key, planned)
        if not holes:
            return
        limit = optimal_limit(fetcher.codec.spec, planned)
        a, b = holes[0]
        if count_open_times(a, b, interval) > limit:
            # a long leading hole may start before the listing: one limit-1 probe finds where
            # the venue's history begins instead of paging through years of nothing
            first = await fetcher.first_open_time(key.symbol, interval, a, b)
            result.first_available = first
            if first is None or first > a:
                cut = b if first is None else first
                self.progress.advance(key, count_open_times(a, cut, interval), 0)
                holes = holes[1:] if first is None else [(first, b), *holes[1:]]
        chunk = limit * self.pages_per_chunk
        for a, b in holes:
            for ca, cb in pages(a, b, interval, chunk):
                candles = await fetcher.fetch(key.symbol, interval, ca, cb)
                if candles:
                    await self.sink.write(candles)
                result.fetched += len(candles)
                self.progress.advance(key, count_open_times(ca, cb, interval), len(candles))
        result.unfillable.extend(missing_ranges(
            await self.stored_open_times(key, start, end), interval, start, end))

    async def fill_many(self, keys: Sequence[StreamKey], start: int,
                        end: int | None = None) -> list[FillResult]:
        """:meth:`fill` for several streams concurrently (``stream_concurrency`` at a time; the
        venue's budget and the fetcher's semaphore bound the requests)."""
        return list(await asyncio.gather(*(self.fill(k, start, end) for k in keys)))
