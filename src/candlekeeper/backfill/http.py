"""A small REST client that executes a codec's :class:`RestRequest` within the venue's budget.

Why not call aiohttp directly everywhere: every REST caller of a venue (symbol discovery, warm-up,
backfill, confirmation) shares one IP budget. This client is the single place that knows the
weights, reads ``X-MBX-USED-WEIGHT-1M`` back, waits before a request would overrun the window's
budget, and turns 429/418/5xx/timeouts into a typed :class:`RestError` with ``retry_after``.

A 429 or 418 is an IP-wide verdict, so it is applied to the shared :class:`WeightBudget`: every
caller of the venue waits (not only the one that got it), because one more request after a 429
is exactly what turns a warning into a ban (protocols.md §B.5).

Venues differ only in data (``VenueSpec``): which header carries the used weight (Binance
``X-MBX-USED-WEIGHT-1M``), or the requests left and the window's expiry (BingX
``X-RateLimit-Requests-Remain`` / ``-Expire``), further shorter windows (BingX: 500 per 10 s on
top of 1000 per minute) and body codes that mean "rate limited" even on HTTP 200 (BingX 100410,
handled as a 429).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import aiohttp
import msgspec

from candlekeeper.errors import RestError
from candlekeeper.venues.base import RestRequest, VenueSpec

log = logging.getLogger(__name__)

_BANNED_UNTIL = re.compile(r"banned until (\d{10,16})")
#: a ban without Retry-After or a "banned until" time: Binance's shortest ban (§A.6)
DEFAULT_BAN_S = 120.0


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
    aligned to ours (BingX counts from an IP's first request) punishes with a 429 and then a ban.
    A sliding bound satisfies every fixed window, however it is aligned.
    """

    def __init__(self, limit_per_minute: int, *, headroom: float = 0.9, window_s: float = 60.0,
                 wall: Callable[[], float] = time.time) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
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
    ``weight_limit`` overrides the venue's per-window weight limit and ``window_s`` its window
    (the simulator can run with a shorter window); the venue's extra windows
    (``spec.rest_extra_windows``) keep their ratio to both. ``backoff_*`` shape the shared wait
    after a 429 that carries no ``Retry-After``.
    """

    def __init__(self, spec: VenueSpec, base_url: str | None = None, *,
                 timeout_s: float = 10.0, session: aiohttp.ClientSession | None = None,
                 weight_limit: int | None = None, window_s: float = 60.0,
                 headroom: float = 0.9, backoff_initial_s: float = 1.0,
                 backoff_max_s: float = 60.0) -> None:
        self.spec = spec
        self.base_url = (base_url or spec.rest_base).rstrip("/")
        limit = spec.rest_weight_limit_per_minute if weight_limit is None else weight_limit
        self.budget = WeightBudget(limit, headroom=headroom, window_s=window_s)
        self._server_limit = limit
        #: (server-side limit, budget) for each shorter window, shortest first
        self.extra_budgets: list[tuple[int, WeightBudget]] = []
        for extra_s, extra_limit in sorted(spec.rest_extra_windows):
            scaled = max(1, extra_limit * limit // spec.rest_weight_limit_per_minute)
            self.extra_budgets.append((scaled, WeightBudget(
                scaled, headroom=headroom, window_s=extra_s * window_s / 60.0)))
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        self._own_session = session is None
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._streak_429 = 0
        self.requests = 0
        self.errors = 0
        self.rate_limited = 0
        self.banned = 0
        #: the server's count from the latest response that carried the weight header
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

    async def fetch(self, request: RestRequest) -> bytes:
        """Return the response body of a 2xx answer, or raise :class:`RestError`."""
        window = await self.budget.acquire(request.weight)
        extra_windows = [await b.acquire(request.weight) for _, b in self.extra_budgets]
        url = f"{self.base_url}{request.path}"
        params = {k: str(v) for k, v in request.params.items()}
        self.requests += 1
        try:
            async with self._client().request(request.method, url, params=params) as resp:
                body = await resp.read()
                spec = self.spec
                header = spec.rest_used_weight_header
                used = resp.headers.get(header) if header else None
                if used is not None and used.isdigit():
                    self.last_used_weight = int(used)
                    self.budget.observe(int(used), window)
                expire_s = self._observe_remain(resp.headers, window, extra_windows)
                retry_after = resp.headers.get("Retry-After") or (
                    None if expire_s is None else f"{expire_s:.3f}")
                if resp.status < 300:
                    error = _body_rate_limited(spec, request.path, body, retry_after)
                    if error is None:
                        self._streak_429 = 0
                        return body
                else:
                    error = _http_error(spec.id, request.path, resp.status, body, retry_after)
                self.errors += 1
        except aiohttp.ClientError as exc:
            self.errors += 1
            raise RestError(f"{self.spec.id} {request.path}: {exc.__class__.__name__}: {exc}"
                            ) from exc
        except TimeoutError as exc:
            self.errors += 1
            raise RestError(f"{self.spec.id} {request.path}: timed out") from exc
        if error.status == 429:
            self._on_429(error)
        elif error.status == 418:
            self._on_418(error)
        raise error

    def _observe_remain(self, headers: Mapping[str, str], window: int,
                        extra_windows: list[int]) -> float | None:
        """Apply a "requests left" header to the shortest window's budget (BingX) and return the
        seconds until that window expires, if the venue says."""
        spec = self.spec
        expire_s = _expire_seconds(headers.get(spec.rest_expire_header)) \
            if spec.rest_expire_header else None
        remain = headers.get(spec.rest_remain_header) if spec.rest_remain_header else None
        if remain is None or not remain.isdigit():
            return expire_s
        if self.extra_budgets:
            server_limit, budget = self.extra_budgets[0]
            budget.observe(max(0, server_limit - int(remain)), extra_windows[0])
        else:
            self.budget.observe(max(0, self._server_limit - int(remain)), window)
        if int(remain) == 0 and expire_s:
            self.budget.block(expire_s)  # nothing left: nobody asks before the window ends
        return expire_s

    def _on_429(self, error: RestError) -> None:
        self.rate_limited += 1
        self._streak_429 += 1
        if error.retry_after is not None:
            wait = error.retry_after
        else:
            # No Retry-After (the futures API does not document one): back off exponentially,
            # but never retry inside the window that said 429 - another request there is what
            # the exchange punishes with a ban.
            initial, cap = self._backoff
            wait = max(min(cap, initial * 2.0 ** (self._streak_429 - 1)),
                       self.budget.to_next_window())
        self.budget.block(wait)
        log.warning("%s: HTTP 429 rate limited; every REST call to this venue waits %.1fs (%s)",
                    self.spec.id, wait, error)

    def _on_418(self, error: RestError) -> None:
        self.banned += 1
        wait = error.retry_after
        if wait is None:
            match = _BANNED_UNTIL.search(str(error))
            if match:
                until_ms = int(match.group(1))
                wait = max(0.0, until_ms / 1000 - time.time())
        if wait is None:
            wait = DEFAULT_BAN_S
        already = self.budget.blocked
        deadline = self.budget.block(wait)
        if not already:
            when = datetime.fromtimestamp(deadline, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            log.error("%s: IP banned until %s (HTTP 418, %.0fs); every REST call to this venue "
                      "waits until then", self.spec.id, when, wait)


class _ErrorBody(msgspec.Struct):
    code: int = 0
    msg: str = ""


def _body_rate_limited(spec: VenueSpec, path: str, body: bytes,
                       retry_after: str | None) -> RestError | None:
    """A 2xx whose body code says "rate limited" (BingX 100410), as the 429 it means."""
    if not spec.rest_rate_limit_codes or not body.startswith(b"{"):
        return None
    try:
        code = msgspec.json.decode(body, type=_ErrorBody).code
    except msgspec.DecodeError:
        return None
    if code not in spec.rest_rate_limit_codes:
        return None
    return _http_error(spec.id, path, 429, body, retry_after)


def _expire_seconds(value: str | None) -> float | None:
    """A window-expiry header as seconds from now: milliseconds to go (``10000``, as BingX
    sends) or, if it is that large, an epoch time in ms."""
    if value is None or not value.isdigit():
        return None
    ms = int(value)
    if ms > 10**12:  # an epoch timestamp
        return max(0.0, ms / 1000 - time.time())
    return ms / 1000


def _http_error(venue: str, path: str, status: int, body: bytes,
                retry_after: str | None) -> RestError:
    try:
        err = msgspec.json.decode(body, type=_ErrorBody)
        detail = f"code {err.code}: {err.msg}"
        code: int | None = err.code
    except msgspec.DecodeError:
        detail, code = body[:200].decode("utf-8", "replace"), None
    after = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() \
        else None
    what = {429: "rate limited", 418: "IP banned"}.get(status, f"HTTP {status}")
    return RestError(f"{venue} {path}: {what} ({detail})", status=status, code=code,
                     retry_after=after)
