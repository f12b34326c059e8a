"""A small REST client that executes a codec's :class:`RestRequest` within the venue's budget.

Why not call aiohttp directly everywhere: every REST caller of a venue (symbol discovery, warm-up,
backfill, confirmation) shares one IP budget. This client is the single place that keeps the
venue's windows (``VenueSpec.rest_limits``), reads the venue's own count back from its headers,
waits before a request would overrun a window, and turns error answers into a typed
:class:`RestError` with a ``kind`` and ``retry_after``.

What an answer *means* is the venue's business (:meth:`HistoryCodec.classify` and
:meth:`HistoryCodec.rate_usage` read its status codes, bodies and headers); this module never
names a venue. A rate limit or a ban is an IP-wide verdict, so it is applied to the shared
budget: every caller of the venue waits (not only the one that got it), because one more request
after a 429 is exactly what turns a warning into a ban.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import aiohttp

from candlekeeper.backfill.ledger import SharedLedger
from candlekeeper.backfill.options import DEFAULT_HEADROOM, RestOptions
from candlekeeper.core.backoff import backoff_delays
from candlekeeper.errors import RestError
from candlekeeper.venues.contract import (
    HistoryCodec,
    RateUsage,
    RestErrorKind,
    RestFailure,
    RestRequest,
)

log = logging.getLogger(__name__)


#: share of a window's weight that may be spent at once (:class:`WeightBudget`)
DEFAULT_BURST = 0.25


class WeightBudget:
    """Request weight used in the current window, per venue and IP.

    Windows are fixed and aligned to wall-clock multiples of ``window_s`` (60 s: the minute), like
    the exchange's counters, so our count rolls over when the server's does. The server's own
    count (the weight header) wins over ours whenever it is higher, since other processes on the
    same IP spend the same budget. ``headroom`` keeps a margin for requests in flight across a
    window boundary and for clocks that disagree by a little.

    :meth:`block` makes every :meth:`acquire` wait until a deadline: that is how a 429's
    ``Retry-After`` or a 418 ban stops all callers at once. ``wall`` is injectable for tests.

    On top of the aligned window, the weight granted in any *sliding* ``window_s`` never exceeds
    the limit either. Aligned windows alone allow a burst of twice the limit across a boundary
    (the end of one minute plus the start of the next), which a venue whose windows are not
    aligned to ours (some count from an IP's first request) punishes with a 429 and then a ban.
    A sliding bound satisfies every fixed window, however it is aligned.

    Within a window the weight is also *paced*: ``burst`` of the limit may go at once, the rest
    accrues evenly over the window (by a third of the window, ``burst + 1/3`` of the limit may
    have gone). Without it, demand above the budget spent the whole window in its first seconds
    and then nothing went for the rest of it: a live fill (a hole, a close to confirm) that
    arrived then, or whose one attempt failed, waited most of a minute. Paced, it waits for one
    request's share of the window. A sustained job still gets the whole limit per window.

    With a ``ledger`` (:class:`SharedLedger`), the sliding bound and the blocks also count
    every other process of this host that uses the same ledger: the venue counts per IP, not
    per process (``backfill/ledger.py``).
    """

    def __init__(self, limit_per_minute: int, *, headroom: float = DEFAULT_HEADROOM,
                 window_s: float = 60.0,
                 wall: Callable[[], float] = time.time,
                 ledger: SharedLedger | None = None, burst: float = DEFAULT_BURST) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        if not 0 < burst <= 1:
            raise ValueError("burst must be in (0, 1]")
        self.burst = burst
        self.limit = max(1, int(limit_per_minute * headroom))
        self.window_s = window_s
        self.used = 0
        #: wall time before which no request may start (429 Retry-After, 418 ban)
        self.blocked_until = 0.0
        #: total weight granted, and how often a caller had to wait for the next window
        self.granted = 0
        self.waits = 0
        self._wall = wall
        self._window = self._index(wall())
        self._lock = asyncio.Lock()
        #: (wall time, weight) of every grant in the last ``window_s``, and their sum
        self._recent: deque[tuple[float, int]] = deque()
        self._recent_sum = 0
        # a little after the boundary, so that the server has rolled over too
        self._guard = min(0.25, window_s * 0.05)
        self.ledger = ledger

    def _index(self, now: float) -> int:
        return int(now // self.window_s)

    def window(self) -> int:
        """Index of the current window (pass it back to :meth:`observe`)."""
        return self._index(self._wall())

    def _roll(self, now: float) -> None:
        index = self._index(now)
        if index != self._window:
            self._window, self.used = index, 0

    async def acquire(self, weight: int) -> int:
        """Wait until ``weight`` fits in the current window (and no block is active), charge it,
        and return the window index it was charged to. Callers are served in arrival order."""
        async with self._lock:
            while True:
                now = self._wall()
                if now < self.blocked_until:
                    await asyncio.sleep(self.blocked_until - now)
                    continue
                self._roll(now)
                recent = self._recent
                while recent and recent[0][0] <= now - self.window_s:
                    self._recent_sum -= recent.popleft()[1]
                # a request heavier than the whole budget can only go into an empty window
                fits_window = self.used + weight <= self.limit or self.used == 0
                fits_sliding = self._recent_sum + weight <= self.limit or not recent
                pace_wait = self._pace_wait(now, weight)
                if fits_window and fits_sliding and pace_wait > 0:
                    self.waits += 1
                    await asyncio.sleep(pace_wait)
                    continue
                if fits_window and fits_sliding and self.ledger is not None:
                    # the other processes' grants count too; the file lock is held for the
                    # read-modify-write only, never across the sleep
                    wait = self.ledger.try_grant(self.window_s, self.limit, weight, self._wall)
                    self.blocked_until = max(self.blocked_until, self.ledger.blocked_until)
                    if wait is not None:
                        self.waits += 1
                        await asyncio.sleep(wait)
                        continue
                if fits_window and fits_sliding:
                    self.used += weight
                    self.granted += weight
                    recent.append((now, weight))
                    self._recent_sum += weight
                    return self._window
                if fits_window:  # wait until enough of the sliding window has expired
                    need = self._recent_sum + weight - self.limit
                    until = now
                    for granted_at, w in recent:
                        need -= w
                        until = granted_at
                        if need <= 0:
                            break
                    wait = until + self.window_s - now + 0.001
                    self.waits += 1
                    await asyncio.sleep(wait)
                    continue
                wait = (self._window + 1) * self.window_s - now + self._guard
                self.waits += 1
                log.info("REST weight budget reached (%d/%d); waiting %.2fs for the next window",
                         self.used, self.limit, wait)
                await asyncio.sleep(wait)

    def _pace_wait(self, now: float, weight: int) -> float:
        """Seconds until ``weight`` more is within the window's paced share (0: now)."""
        if self.used == 0 or self.burst >= 1:
            return 0.0
        share = (self.used + weight) / self.limit - self.burst  # of the window that must pass
        start = self._window * self.window_s
        return max(0.0, start + share * self.window_s - now)

    def observe(self, used: int, window: int | None = None) -> None:
        """Take the server's count for the window a request was charged to. A response that
        arrives after our window rolled over says nothing about the new window: ignored."""
        now = self._wall()
        self._roll(now)
        if window is not None and window != self._window:
            return
        self.used = max(self.used, used)

    def block(self, seconds: float) -> float:
        """Make every caller wait ``seconds`` from now (a later deadline wins). Returns the wall
        deadline."""
        now = self._wall()
        self.blocked_until = max(self.blocked_until, now + max(0.0, seconds))
        if self.ledger is not None:  # a 429 or a ban is the IP's: every process waits
            self.ledger.block(self.blocked_until, now)
            self.blocked_until = max(self.blocked_until, self.ledger.blocked_until)
        return self.blocked_until

    def to_next_window(self) -> float:
        """Seconds until the next window opens on the server too (the guard included)."""
        now = self._wall()
        return (self._index(now) + 1) * self.window_s - now + self._guard

    @property
    def blocked(self) -> bool:
        return self._wall() < self.blocked_until


class RestClient:
    """Executes :class:`RestRequest` objects against one venue's REST base URL.

    One instance per venue and process, shared by every user, so that they share one budget.
    ``weight_limit`` overrides the limit of the venue's first window and ``window_s`` its length
    (the simulator can run with a shorter window); the venue's other windows keep their ratio to
    both. ``backoff_*`` shape the shared wait after a rate limit that says no ``Retry-After``.
    """

    def __init__(self, codec: HistoryCodec, base_url: str | None = None, *,
                 timeout_s: float = 10.0, session: aiohttp.ClientSession | None = None,
                 weight_limit: int | None = None, window_s: float | None = None,
                 headroom: float | None = None, backoff_initial_s: float = 1.0,
                 backoff_max_s: float = 60.0, options: RestOptions | None = None,
                 count_error: Callable[[str], object] | None = None) -> None:
        self.codec = codec
        spec = self.spec = codec.spec
        self.base_url = (base_url or spec.rest_base).rstrip("/")
        opts = options or RestOptions()
        if headroom is None:
            headroom = opts.headroom
        self.ledger = (SharedLedger.for_endpoint(spec.id, self.base_url, opts.ledger_dir,
                                                 count_error=count_error)
                       if opts.shared_budget else None)
        first, *others = spec.rest_limits
        limit = first.limit if weight_limit is None else weight_limit
        seconds = first.seconds if window_s is None else window_s
        self.budget = WeightBudget(limit, headroom=headroom, window_s=seconds,
                                   ledger=self.ledger)
        self._server_limit = limit
        #: (server-side limit, budget) for each further window, shortest first
        self.extra_budgets: list[tuple[int, WeightBudget]] = []
        for window in sorted(others, key=lambda w: w.seconds):
            scaled = max(1, window.limit * limit // first.limit)
            self.extra_budgets.append((scaled, WeightBudget(
                scaled, headroom=headroom, window_s=window.seconds * seconds / first.seconds,
                ledger=self.ledger)))
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        self._own_session = session is None
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._rate_delays: Iterator[float] | None = None
        #: when the latest 429 was acted on (monotonic): a 429 to a request sent before then
        #: belongs to the same burst and must not escalate the wait
        self._rate_limited_at = -math.inf
        self.requests = 0
        self.errors = 0
        self.rate_limited = 0
        self.banned = 0
        #: the server's count from the latest response that carried one
        self.last_used_weight: int | None = None

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def fetch(self, request: RestRequest, *,
                    on_send: Callable[[], object] | None = None) -> bytes:
        """Return the body of a successful answer, or raise :class:`RestError`. ``on_send`` is
        called once the budgets let the request go, just before it is sent (a server-time
        sample times its round trip from there, not from a wait for the budget)."""
        window = await self.budget.acquire(request.weight)
        extra_windows = [await b.acquire(request.weight) for _, b in self.extra_budgets]
        if on_send is not None:
            on_send()
        url = f"{self.base_url}{request.path}"
        params = {k: str(v) for k, v in request.params.items()}
        self.requests += 1
        sent = time.monotonic()
        try:
            async with self._client().request(
                    request.method, url, params=params, data=request.body,
                    headers={"Content-Type": "application/json"} if request.body else None,
            ) as resp:
                body = await resp.read()
                headers = resp.headers
                self._observe(self.codec.rate_usage(headers), window, extra_windows)
                failure = self.codec.classify(resp.status, headers, body, time.time())
                status = resp.status
        except aiohttp.ClientError as exc:
            self.errors += 1
            raise RestError(f"{self.spec.id} {request.path}: {exc.__class__.__name__}: {exc}"
                            ) from exc
        except TimeoutError as exc:
            self.errors += 1
            raise RestError(f"{self.spec.id} {request.path}: timed out") from exc
        if failure is None:
            if sent >= self._rate_limited_at:  # not an answer from before the latest 429
                self._rate_delays = None
            return body
        self.errors += 1
        error = RestError(f"{self.spec.id} {request.path}: {failure.message}", status=status,
                          code=failure.code, retry_after=failure.retry_after_s,
                          kind=failure.kind)
        if failure.kind is RestErrorKind.RATE_LIMITED:
            self._on_rate_limited(failure, error, sent)
        elif failure.kind is RestErrorKind.BANNED:
            self._on_banned(failure)
        raise error

    def _observe(self, usage: RateUsage, window: int, extra_windows: list[int]) -> None:
        """Take the venue's own count: the weight used in its first window, or the requests
        left in its shortest one (and stop everyone when none are left)."""
        if usage.used is not None:
            self.last_used_weight = usage.used
            self.budget.observe(usage.used, window)
        if usage.remain is None:
            return
        if self.extra_budgets:
            server_limit, budget = self.extra_budgets[0]
            budget.observe(max(0, server_limit - usage.remain), extra_windows[0])
        else:
            self.budget.observe(max(0, self._server_limit - usage.remain), window)
        if usage.remain == 0 and usage.reset_s:
            self.budget.block(usage.reset_s)  # nothing left: nobody asks before the window ends

    def _on_rate_limited(self, failure: RestFailure, error: RestError, sent: float) -> None:
        """Stop every request until the venue lets us in again. Without a Retry-After the wait
        grows exponentially, but only for a 429 to a request sent after the previous one was
        acted on: the answers to a burst already in flight (a dozen requests sent together)
        are one refusal, not a dozen (they escalated a 2 s wait to the 60 s cap in a
        millisecond, and a warm-up took minutes instead of seconds)."""
        self.rate_limited += 1
        if failure.retry_after_s is not None:
            wait = failure.retry_after_s
        elif sent < self._rate_limited_at:
            return  # the same burst: the block already in place covers it
        else:
            # No Retry-After: back off exponentially, but never retry inside the window that
            # said 429 - another request there is what a venue punishes with a ban.
            if self._rate_delays is None:
                initial, cap = self._backoff
                self._rate_delays = backoff_delays(initial, 2.0, cap, jitter=0.0)
            wait = max(next(self._rate_delays), self.budget.to_next_window())
        self._rate_limited_at = time.monotonic()
        self.budget.block(wait)
        log.warning("%s: rate limited; every REST call to this venue waits %.1fs (%s)",
                    self.spec.id, wait, error)

    def _on_banned(self, failure: RestFailure) -> None:
        self.banned += 1
        wait = failure.retry_after_s if failure.retry_after_s is not None else DEFAULT_BAN_S
        already = self.budget.blocked
        deadline = self.budget.block(wait)
        if not already:
            when = datetime.fromtimestamp(deadline, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            log.error("%s: IP banned until %s (%.0fs; %s); every REST call to this venue "
                      "waits until then", self.spec.id, when, wait, failure.message)


#: a ban whose length the venue did not say
DEFAULT_BAN_S = 120.0
