"""A small REST client that executes a codec's :class:`RestRequest` within the venue's budget.

Why not call aiohttp directly everywhere: every REST caller of a venue (symbol discovery, warm-up,
backfill, confirmation) shares one IP budget. This client is the single place that knows the
weights, reads ``X-MBX-USED-WEIGHT-1M`` back, waits before a request would overrun the minute's
budget, and turns 429/418/5xx/timeouts into a typed :class:`RestError` with ``retry_after``.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import msgspec

from candlekeeper.errors import RestError
from candlekeeper.venues.base import RestRequest, VenueSpec

log = logging.getLogger(__name__)

_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"


class WeightBudget:
    """Request weight used in the current minute, per venue and IP.

    The server's own count (the weight header) wins over ours whenever it is present, since other
    processes on the same IP spend the same budget.
    """

    def __init__(self, limit_per_minute: int, *, headroom: float = 0.9) -> None:
        self.limit = int(limit_per_minute * headroom)
        self.used = 0
        self._window = self._minute()
        self._lock = asyncio.Lock()

    @staticmethod
    def _minute() -> int:
        return int(time.time() // 60)

    def _roll(self) -> None:
        minute = self._minute()
        if minute != self._window:
            self._window, self.used = minute, 0

    async def acquire(self, weight: int) -> None:
        async with self._lock:
            self._roll()
            while self.used + weight > self.limit:
                wait = 60.0 - (time.time() % 60) + 0.05
                log.info("REST weight budget reached (%d/%d); waiting %.1fs", self.used,
                         self.limit, wait)
                await asyncio.sleep(wait)
                self._roll()
            self.used += weight

    def observe(self, used: int) -> None:
        self._roll()
        self.used = max(self.used, used)


class RestClient:
    """Executes :class:`RestRequest` objects against one venue's REST base URL."""

    def __init__(self, spec: VenueSpec, base_url: str | None = None, *,
                 timeout_s: float = 10.0, session: aiohttp.ClientSession | None = None) -> None:
        self.spec = spec
        self.base_url = (base_url or spec.rest_base).rstrip("/")
        self.budget = WeightBudget(spec.rest_weight_limit_per_minute)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        self._own_session = session is None
        self.requests = 0
        self.errors = 0

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
        await self.budget.acquire(request.weight)
        url = f"{self.base_url}{request.path}"
        params = {k: str(v) for k, v in request.params.items()}
        self.requests += 1
        try:
            async with self._client().request(request.method, url, params=params) as resp:
                body = await resp.read()
                used = resp.headers.get(_WEIGHT_HEADER)
                if used is not None and used.isdigit():
                    self.budget.observe(int(used))
                if resp.status < 300:
                    return body
                self.errors += 1
                raise _http_error(self.spec.id, request.path, resp.status, body,
                                  resp.headers.get("Retry-After"))
        except aiohttp.ClientError as exc:
            self.errors += 1
            raise RestError(f"{self.spec.id} {request.path}: {exc.__class__.__name__}: {exc}"
                            ) from exc
        except TimeoutError as exc:
            self.errors += 1
            raise RestError(f"{self.spec.id} {request.path}: timed out") from exc


class _ErrorBody(msgspec.Struct):
    code: int = 0
    msg: str = ""


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
