"""``KlineFetcher``: every closed candle of a time range over REST, or an error — never a part.

The feed's gap repair, warm-up and late-close confirmation and the ``backfill``/``gaps`` commands
all go through this one class, so paging, weight and retry policy live in one place:

* **Paging.** The range is cut into windows of the weight-optimal ``limit``
  (:func:`~candlekeeper.backfill.planner.optimal_limit`), each requested with
  ``startTime``/``endTime`` and exactly the number of candles it can hold, so the last, short
  page is also the cheapest. A page answered with fewer rows than asked is continued from its
  last row (a server may cap ``limit``), until the window is covered or the venue returns nothing.
* **Budget.** All requests go through the venue's shared :class:`RestClient`, whose
  :class:`WeightBudget` is per IP; :class:`~candlekeeper.backfill.slots.PrioritySlots` shared by
  all callers of this fetcher bound the requests in flight and hand a free slot to the most
  urgent caller (a live hole before a resume, a resume before deep warm-up history).
* **Retries.** What an error means is the venue's history codec's call (``RestError.kind``):
  rate limits and bans are waited out by the client for *every* caller (the venue's retry-after,
  or the ban's end); the venue's own trouble, timeouts, connection errors and undecodable bodies
  are retried per page with the one backoff policy (:mod:`candlekeeper.core.backoff`). A bad
  request or an unknown symbol cannot succeed on retry and fails at once. After
  ``max_attempts`` for one page the whole fetch raises :class:`BackfillError`: a caller never
  receives a silently partial range.
* **The venue's memory.** A venue whose klines reach back only so far
  (``VenueSpec.rest_history_candles``: Hyperliquid-like "the most recent 5,000 candles") is not
  asked for anything older: that part of a range is unfillable from the venue. It is counted
  (``FetchStats.beyond_history``, the ``unfillable_beyond_history`` error kind) and logged once
  per stream as a WARNING; the caller then sees those open times missing and reports them as
  unfillable (the gap filler, the ``gaps`` audit) instead of retrying.
* **Closed and sane only.** A row whose close time has not passed on ``clock`` is the forming
  candle and is dropped, as are rows outside the window, off the interval's grid or with
  impossible values (:func:`~candlekeeper.venues.contract.candle_problem`; counted and logged,
  never stored: the sequence then reports that open time as missing from the venue's history).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec

from candlekeeper.backfill.http import RestClient
from candlekeeper.backfill.planner import count_open_times, first_open, optimal_limit, pages
from candlekeeper.backfill.slots import LIVE, Priority, PrioritySlots
from candlekeeper.core.backoff import backoff_delays
from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import Clock, SystemClock
from candlekeeper.core.intervals import INTERVAL_MS, MONTH_NAME, align, next_open, prev_open
from candlekeeper.core.ratelog import RateLimitedLog
from candlekeeper.errors import BackfillError, ConfigError, DecodeError, RestError, RestErrorKind
from candlekeeper.venues.checks import candle_problem
from candlekeeper.venues.contract import RETRYABLE_KINDS, HistoryCodec, klines_weight

__all__ = ["FetchStats", "KlineFetcher"]

log = logging.getLogger(__name__)

#: intervals of a fixed length (every one but the calendar month)
_FIXED_MS = {k: v for k, v in INTERVAL_MS.items() if k != MONTH_NAME}
_IP_WIDE = frozenset({RestErrorKind.RATE_LIMITED, RestErrorKind.BANNED})


class FetchStats(msgspec.Struct):
    """Counters over the fetcher's lifetime (all callers)."""

    requests: int = 0
    #: weight of the requests the server accepted and charged (equals the header's growth)
    weight_used: int = 0
    retries: int = 0
    rate_limited: int = 0
    banned: int = 0
    #: failed attempts of any kind (HTTP errors, timeouts, connection errors, bad bodies)
    errors: int = 0
    #: closed candles returned to callers
    candles: int = 0
    #: rows dropped: the forming candle, or rows outside the window / off the interval's grid
    forming_dropped: int = 0
    unexpected_rows: int = 0
    #: candles asked for that lie beyond the venue's REST memory (never requested)
    beyond_history: int = 0


class KlineFetcher:
    """Fetches closed candles over REST for one venue (see the module docstring)."""

    def __init__(self, codec: HistoryCodec, client: RestClient, *, clock: Clock | None = None,
                 max_concurrency: int = 4, max_attempts: int = 8,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0,
                 close_margin_ms: int = 0,
                 count_error: Callable[[str, int], None] | None = None) -> None:
        if max_concurrency < 1 or max_attempts < 1:
            raise ConfigError("max_concurrency and max_attempts must be >= 1")
        self.codec = codec
        self.client = client
        self.clock: Clock = clock or SystemClock()
        self.max_attempts = max_attempts
        self.stats = FetchStats()
        self._slots = PrioritySlots(max_concurrency)
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._limited = RateLimitedLog(log)
        #: a candle counts as closed only once ``close_margin_ms`` of venue time have passed
        #: after its close: 0 when the clock is the venue's own (the simulator's), a second or
        #: two when a local clock may run ahead of the exchange's
        self.close_margin_ms = close_margin_ms
        self._count_error = count_error
        #: streams already warned about their venue's REST memory (one WARNING each)
        self._warned_history: set[tuple[str, str]] = set()

    def requests_per_second(self, rows: int = 2) -> float:
        """Klines requests of ``rows`` rows a wall second the venue's budget sustains (its
        tightest window, headroom included): what paced polling divides among its streams."""
        client = self.client
        budgets = [client.budget, *(b for _, b in client.extra_budgets)]
        per_second = min(b.limit / b.window_s for b in budgets)
        return per_second / max(1, klines_weight(self.codec.spec, rows))

    def now_ms(self, margin_ms: int | None = None) -> int:
        """Venue time minus the close margin (``margin_ms``, else the fetcher's own): candles
        closing before it are final."""
        return self.clock.time_ms() - (self.close_margin_ms if margin_ms is None else margin_ms)

    def closed_end(self, interval: str, end: int | None = None,
                   margin_ms: int | None = None) -> int:
        """Open time of the candle still forming now (capped at ``end``): the exclusive end of
        everything that can be fetched."""
        limit = align(self.now_ms(margin_ms), interval)
        return limit if end is None else min(end, limit)

    async def first_open_time(self, symbol: str, interval: str, start: int,
                              end: int) -> int | None:
        """Open time of the venue's first closed candle in ``[start, end)``, or None: one
        request of the lowest weight (``limit=1``). Used to skip what predates a listing."""
        end = self.closed_end(interval, end)
        start = self._within_history(symbol, interval, start, end)
        if count_open_times(start, end, interval) == 0:
            return None
        return await self._earliest(symbol, interval, first_open(start, interval), end)

    async def _earliest(self, symbol: str, interval: str, start: int, end: int) -> int | None:
        """Open time of the venue's first candle in ``[start, end)``, with ``limit=1`` requests.

        A venue answers a ``limit=1`` request over a range with its oldest row, or with its
        newest (a venue whose pages count back from their end): the answer is checked with one
        more request over what precedes it (empty on an oldest-first venue: two requests in
        all), and on a newest-first venue a bisection finds the first candle in about
        log2(candles in the range) requests."""
        hi = (await self._page(symbol, interval, start, end, 1)).last_open
        if hi is None or hi <= start:
            return hi
        found = (await self._page(symbol, interval, start, hi, 1)).last_open
        if found is None:
            return hi
        lo, hi = start, found
        while lo < hi:  # the first candle is in [lo, hi], and hi is one
            half = max(1, count_open_times(lo, hi, interval) // 2)
            mid = pages(lo, hi, interval, half)[0][1]
            found = (await self._page(symbol, interval, lo, mid, 1)).last_open
            if found is None:
                lo = mid
            else:
                hi = found
        return hi

    async def fetch(self, symbol: str, interval: str, start: int, end: int, *,
                    forming: Callable[[Candle], None] | None = None,
                    margin_ms: int | None = None, priority: Priority = LIVE) -> list[Candle]:
        """Every CLOSED candle with ``start <= open_time < end`` (ms), ascending, unique,
        ``source="rest"``, ``closed=True``. Candles the venue does not have (before listing, a
        hole in its history, not closed yet) are simply absent; a page that cannot be fetched
        after ``max_attempts`` raises :class:`BackfillError` and nothing is returned.

        ``forming``: the request also covers the candle still forming (in the same page, at
        no extra request), and if the venue returns it, it is handed to ``forming``
        (``closed=False``) — what REST polling offers as a live update. ``margin_ms``: how
        long after its close time a row counts as final (default: the fetcher's
        ``close_margin_ms``; a fast close asks sooner). ``priority``: this fetch's place in
        the queue for request slots (:mod:`~candlekeeper.backfill.slots`)."""
        spec = self.codec.spec
        if interval not in spec.intervals:
            raise ConfigError(f"{spec.id} has no interval {interval!r}")
        # nothing at or after the forming candle can be closed yet
        end = self.closed_end(interval, end, margin_ms)
        if forming is not None:
            end = next_open(end, interval)  # one page longer: the forming candle comes along
        start = self._within_history(symbol, interval, start, end)
        count = count_open_times(start, end, interval)
        if count == 0:
            return []
        windows = pages(start, end, interval, optimal_limit(spec, count))
        # The first window goes alone: when it is empty and more follow, the range probably
        # starts before the listing ("everything since 0"), and one cheap probe (limit 1, the
        # lowest weight) finds the first candle the venue has, instead of thousands of empty
        # pages. A range that starts inside the series costs nothing extra.
        first = await self._window(symbol, interval, *windows[0], forming, margin_ms, priority)
        windows = windows[1:]
        if not first and windows:
            first_open_time = await self._earliest(symbol, interval, windows[0][0], end)
            if first_open_time is None:
                return []
            count = count_open_times(first_open_time, end, interval)
            windows = pages(first_open_time, end, interval, optimal_limit(spec, count))
        tasks = [asyncio.create_task(self._window(symbol, interval, ws, we, forming,
                                                   margin_ms, priority))
                 for ws, we in windows]
        try:
            results = [first, *await asyncio.gather(*tasks)]
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        out = [c for chunk in results for c in chunk]
        self.stats.candles += len(out)
        return out

    def history_start(self, interval: str) -> int | None:
        """Open time of the oldest candle the venue's klines still serve, or None when its
        history is unlimited (``VenueSpec.rest_history_candles``; the forming candle counts)."""
        keep = self.codec.spec.rest_history_candles
        if keep is None:
            return None
        t = align(self.clock.time_ms(), interval)
        if interval in _FIXED_MS:
            return max(0, t - (keep - 1) * _FIXED_MS[interval])
        for _ in range(keep - 1):
            t = prev_open(t, interval)
        return max(0, t)

    def _within_history(self, symbol: str, interval: str, start: int, end: int) -> int:
        """``start``, or the venue's oldest candle when the range reaches beyond its memory
        (counted, and one WARNING per stream)."""
        oldest = self.history_start(interval)
        if oldest is None or start >= oldest:
            return start
        lost = count_open_times(start, min(end, oldest), interval)
        if lost:
            self.stats.beyond_history += lost
            if self._count_error is not None:
                self._count_error("unfillable_beyond_history", lost)
            spec = self.codec.spec
            if (symbol, interval) not in self._warned_history:
                self._warned_history.add((symbol, interval))
                log.warning("%s %s %s: the venue serves only its last %d candles over REST; "
                            "%d older candle(s) from open time %d are unfillable from it",
                            spec.id, symbol, interval, spec.rest_history_candles, lost, start)
        return oldest

    async def _window(self, symbol: str, interval: str, ws: int, we: int,
                      forming: Callable[[Candle], None] | None = None,
                      margin_ms: int | None = None, priority: Priority = LIVE) -> list[Candle]:
        """One window, continued while the venue answers with fewer rows than asked."""
        out: list[Candle] = []
        cursor = ws
        while cursor < we:
            want = count_open_times(cursor, we, interval)
            limit = min(want, self.codec.spec.rest_max_limit)
            rows = await self._page(symbol, interval, cursor, we, limit, forming, margin_ms,
                                    priority)
            if not rows:
                break
            out.extend(rows.candles)
            if rows.complete or rows.last_open is None:
                break
            cursor = next_open(rows.last_open, interval)
        return out

    async def _page(self, symbol: str, interval: str, ws: int, we: int,
                    limit: int, forming: Callable[[Candle], None] | None = None,
                    margin_ms: int | None = None, priority: Priority = LIVE) -> _Page:
        request = self.codec.klines_request(symbol, interval, start_time=ws, end_time=we - 1,
                                            limit=limit)
        stats = self.stats
        attempt = 0
        initial, cap = self._backoff
        delays = backoff_delays(initial, 2.0, cap, jitter=0.5)
        while True:
            attempt += 1
            async with self._slots.take(priority):
                stats.requests += 1
                try:
                    body = await self.client.fetch(request)
                    stats.weight_used += request.weight
                    raw = self.codec.decode_klines(body, symbol, interval)
                    return self._select(raw, interval, ws, we, limit, forming, margin_ms)
                except RestError as exc:
                    stats.errors += 1
                    if exc.status is not None and exc.kind not in _IP_WIDE:
                        stats.weight_used += request.weight  # the server charged it
                    error: BackfillError = exc
                    retryable = exc.kind is None or exc.kind in RETRYABLE_KINDS
                    if exc.kind is RestErrorKind.RATE_LIMITED:
                        stats.rate_limited += 1
                    elif exc.kind is RestErrorKind.BANNED:
                        stats.banned += 1
                except DecodeError as exc:
                    stats.errors += 1
                    error, retryable = BackfillError(str(exc)), True
            if not retryable:
                raise BackfillError(f"{self.codec.spec.id} {symbol} {interval} "
                                    f"[{ws}, {we}): {error}") from error
            if attempt >= self.max_attempts:
                raise BackfillError(f"{self.codec.spec.id} {symbol} {interval} [{ws}, {we}): "
                                    f"gave up after {attempt} attempts: {error}") from error
            stats.retries += 1
            # 429/418 already made the shared budget wait; the others back off on their own
            delay = 0.0 if _ip_wide(error) else next(delays)
            log.warning("%s %s %s: attempt %d/%d failed (%s); retrying in %.2fs",
                        self.codec.spec.id, symbol, interval, attempt, self.max_attempts, error,
                        delay)
            if delay:
                await asyncio.sleep(delay)

    def _select(self, raw: list[Candle], interval: str, ws: int, we: int, limit: int,
                forming: Callable[[Candle], None] | None = None,
                margin_ms: int | None = None) -> _Page:
        """Keep the closed rows of the window, ascending and unique (sorted here rather than
        trusted: dropping an out-of-order row would lose a candle silently)."""
        now = self.now_ms(margin_ms)
        keep: list[Candle] = []
        last: int | None = None
        for c in sorted(raw, key=_open_time):
            t = c.open_time
            if t == last or not ws <= t < we:
                self.stats.unexpected_rows += 1
                continue
            problem = candle_problem(c)
            if problem is not None:
                self.stats.unexpected_rows += 1
                self._limited.warning(f"row:{c.key}", "%s %s %s: dropped a REST row (%s)",
                                      c.venue, c.symbol, interval, problem)
                continue
            last = t
            if c.close_time >= now or not c.closed:  # by the clock, or the venue says so
                self.stats.forming_dropped += 1
                if forming is not None:
                    forming(msgspec.structs.replace(c, closed=False, source="rest"))
                continue
            keep.append(c if c.closed and c.source == "rest"
                        else msgspec.structs.replace(c, closed=True, source="rest"))
        return _Page(keep, last, complete=len(raw) >= limit)


def _open_time(c: Candle) -> int:
    return c.open_time

def _ip_wide(error: BaseException) -> bool:
    """True for the verdicts the client already applied to the whole venue (rate limit, ban)."""
    return isinstance(error, RestError) and error.kind in _IP_WIDE


class _Page:
    """Rows kept from one response; ``complete`` when the response held every row asked for
    (no continuation needed); false (as a bool) when it held no usable row."""

    __slots__ = ("candles", "complete", "last_open")

    def __init__(self, candles: list[Candle], last_open: int | None, *, complete: bool) -> None:
        self.candles, self.last_open, self.complete = candles, last_open, complete

    def __bool__(self) -> bool:
        return self.last_open is not None

