"""Bulk history from a venue's public kline archive: whole months and days as verified files.

A venue that publishes an archive (``Venue.archive``: its layout and row format) serves years of
1m candles as one zip per month, far faster than REST pages inside the venue's weight budget.
:class:`ArchiveFiller` fills a stream's missing ranges from it *before* the REST backfill runs;
REST then fills whatever storage still lacks, which is exactly:

* the part of a range no whole day covers, and the days not published yet (a 404 is "not
  published": daily files appear the next day, monthly ones days into the next month; a recent
  month not published is asked for as its daily files first);
* a file that fails verification: a checksum file missing or unreadable, a SHA-256 that differs,
  a zip that does not open, rows that are not the documented format, out of order or outside
  the file's period. Each is a counter (:class:`ArchiveStats`) and a WARNING (rate-limited per
  kind of trouble); the whole period then comes from REST;
* candles a file lacks (a hole inside a verified file): counted, and left to REST.

Downloads share one aiohttp session, at most ``concurrency`` at a time; a 5xx, a timeout or a
dropped connection is retried with the one backoff policy (:mod:`candlekeeper.core.backoff`),
up to ``max_attempts`` (then: a WARNING, a counter, REST for the period). Files are unzipped
and parsed in memory, off the event loop. Candles keep the archive's exact decimal text and
``source="archive"``; they are written through the same sink as REST candles.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import zipfile
import zlib
from collections import deque
from collections.abc import Callable
from typing import Final

import aiohttp
import msgspec

from candlekeeper.backfill.archive_plan import days_of, plan_periods
from candlekeeper.backfill.planner import count_open_times
from candlekeeper.core.backoff import backoff_delays
from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import DAY
from candlekeeper.core.ratelog import RateLimitedLog
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import DecodeError
from candlekeeper.sinks.sqlite import SQLiteSink
from candlekeeper.venues.checks import candle_problem
from candlekeeper.venues.contract import ArchiveCodec, ArchivePeriod

__all__ = ["ArchiveFiller", "ArchiveStats", "FileOutcome"]

log = logging.getLogger(__name__)

Range = tuple[int, int]

#: a monthly file appears in the first days of the next month (the first Monday, says the
#: venue): a month that ended longer ago than this and answers 404 is not in the archive
MONTH_PUBLISH_DAYS: Final = 14


class ArchiveStats(msgspec.Struct):
    """Counters over a filler's lifetime (all streams)."""

    #: files downloaded, verified and stored, and the candles they held
    files: int = 0
    candles: int = 0
    bytes: int = 0
    #: answered 404 (not published yet, or never: before a listing)
    not_published: int = 0
    #: failed verification: no usable checksum file, a SHA-256 mismatch, an unreadable zip or
    #: rows that are not the documented format
    checksum_missing: int = 0
    checksum_mismatch: int = 0
    corrupt: int = 0
    #: downloads that failed after every retry (or with a status that cannot succeed)
    failed: int = 0
    retries: int = 0
    #: candles missing inside otherwise good files (left to REST)
    holes: int = 0

    @property
    def rejected(self) -> int:
        return self.checksum_missing + self.checksum_mismatch + self.corrupt + self.failed


class FileOutcome(msgspec.Struct, frozen=True):
    """What one archive file gave: its candles, or why none (``problem``, counted)."""

    period: ArchivePeriod
    candles: list[Candle]
    problem: str | None = None
    not_published: bool = False


#: what a damaged zip or CSV raises: zipfile's own errors, zlib's for a damaged deflate stream,
#: a truncated member, bytes that are not UTF-8, a row the venue's parser refuses
_UNREADABLE: Final = (DecodeError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError,
                      UnicodeDecodeError, ValueError, NotImplementedError, RuntimeError, OSError)


class _Unavailable(Exception):
    """A download that cannot succeed (after retries, or a status that never will)."""


class ArchiveFiller:
    """Downloads, verifies and stores archive files of one venue (see the module docstring)."""

    def __init__(self, codec: ArchiveCodec, base_url: str | None = None, *,
                 concurrency: int = 4, window: int = 2, max_attempts: int = 4,
                 timeout_s: float = 60.0,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 10.0) -> None:
        self.codec = codec
        self.base_url = (base_url or codec.base_url).rstrip("/")
        self.stats = ArchiveStats()
        self.max_attempts = max(1, max_attempts)
        #: files of one stream in flight or waiting for the sink (``concurrency`` bounds the
        #: downloads of all streams together)
        self.window = max(1, window)
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._session: aiohttp.ClientSession | None = None
        self._log = RateLimitedLog(log)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def serves(self, interval: str) -> bool:
        return interval in self.codec.intervals

    # -- a stream ---------------------------------------------------------------------------
    async def fill(self, key: StreamKey, ranges: list[Range], sink: SQLiteSink,
                   advance: Callable[[int, int], None] | None = None, *,
                   now_ms: int | None = None) -> int:
        """Store every archive candle of the whole months and days inside ``ranges`` (missing
        ranges of ``key``, capped at the forming candle); return how many were stored.
        ``advance(planned, stored)`` is called per file. Never raises for a bad file: its
        period is simply left missing, for REST.

        At most ``window`` files of the stream are in flight or parsed and waiting for the
        sink, so memory stays bounded (a parsed month of 1m is ~30 MB of candles) however long
        the range. A month answered 404 is asked for as its days only when it ended less than
        :data:`MONTH_PUBLISH_DAYS` before ``now_ms`` (not published yet); an older one is not
        in the archive at all (before a listing, say): REST, which skips a pre-listing range
        with one probe, is cheaper than thirty daily 404s."""
        if not self.serves(key.interval):
            return 0
        stored = 0
        queue = deque(plan_periods(ranges))
        pending: set[asyncio.Task[FileOutcome]] = set()
        try:
            while queue or pending:
                while queue and len(pending) < self.window:
                    pending.add(asyncio.create_task(self._period(key, queue.popleft())))
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    outcome = task.result()
                    p = outcome.period
                    if (outcome.not_published and p.kind == "monthly" and now_ms is not None
                            and now_ms - p.end < MONTH_PUBLISH_DAYS * DAY):
                        queue.extendleft(reversed(days_of(p)))  # its days may be out already
                        continue
                    if outcome.candles:
                        await sink.write(outcome.candles)
                        stored += len(outcome.candles)
                    if advance is not None:
                        advance(count_open_times(p.start, p.end, key.interval),
                                len(outcome.candles))
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        return stored

    async def _period(self, key: StreamKey, period: ArchivePeriod) -> FileOutcome:
        codec, stats = self.codec, self.stats
        path = codec.file_path(key.symbol, key.interval, period)
        name = path.rsplit("/", 1)[-1]
        async with self._slots:
            try:
                body = await self._get(path)
                if body is None:
                    stats.not_published += 1
                    return FileOutcome(period, [], "not published", not_published=True)
                checksum = await self._get(path + codec.checksum_suffix)
            except _Unavailable as exc:
                stats.failed += 1
                return self._reject(key, period, "failed", f"download failed: {exc}")
        stats.bytes += len(body)
        digest = None if checksum is None else codec.decode_checksum(checksum)
        if digest is None:
            stats.checksum_missing += 1
            return self._reject(key, period, "checksum_missing",
                                f"{name}: no usable checksum file")
        if hashlib.sha256(body).hexdigest() != digest:
            stats.checksum_mismatch += 1
            return self._reject(key, period, "checksum_mismatch",
                                f"{name}: SHA-256 differs from its checksum file")
        try:
            candles = await asyncio.to_thread(self._unpack, body, key, period)
        except _UNREADABLE as exc:
            stats.corrupt += 1
            return self._reject(key, period, "corrupt", f"{name}: {exc}")
        stats.files += 1
        stats.candles += len(candles)
        missing = count_open_times(period.start, period.end, key.interval) - len(candles)
        stats.holes += missing
        return FileOutcome(period, candles)

    def _reject(self, key: StreamKey, period: ArchivePeriod, kind: str,
                why: str) -> FileOutcome:
        """One WARNING per kind of trouble (then at most one per 10 s with a count: a wrong
        archive URL must not print a line per file of a decade); the counter says how many."""
        self._log.warning(kind, "%s %s %s: archive file for %s rejected (%s); that period "
                          "comes from REST", key.venue, key.symbol, key.interval, period.label,
                          why)
        return FileOutcome(period, [], why)

    def _unpack(self, body: bytes, key: StreamKey, period: ArchivePeriod) -> list[Candle]:
        """The file's one CSV member as checked candles: strictly ascending, on the grid, inside
        the period, each a possible candle; anything else makes the whole file unusable."""
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) != 1:
                raise DecodeError(f"expected one CSV in the zip, found {len(members)}")
            text = archive.read(members[0]).decode("utf-8")
        candles = self.codec.decode_rows(text, key.symbol, key.interval)
        last = period.start - 1
        for c in candles:
            t = c.open_time
            if t <= last:
                raise DecodeError(f"open time {t} is not after {last}: rows out of order")
            if t >= period.end:
                raise DecodeError(f"open time {t} is outside the file's period")
            problem = candle_problem(c)
            if problem is not None:
                raise DecodeError(problem)
            last = t
        return candles

    # -- HTTP -------------------------------------------------------------------------------
    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _get(self, path: str) -> bytes | None:
        """The body of ``path``; None for a 404. Retries what may pass on a retry."""
        url = self.base_url + path
        initial, cap = self._backoff
        delays = backoff_delays(initial, 2.0, cap, jitter=0.5)
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._client().get(url) as resp:
                    if resp.status == 404:
                        return None
                    if resp.status == 200:
                        return await resp.read()
                    error = f"HTTP {resp.status}"
                    if resp.status < 500 and resp.status not in (408, 429):
                        raise _Unavailable(error)
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{exc.__class__.__name__}: {exc}"[:200]
            if attempt >= self.max_attempts:
                raise _Unavailable(f"{error} after {attempt} attempts")
            self.stats.retries += 1
            await asyncio.sleep(next(delays))
