"""The simulator's REST framework: a small dispatcher in front of a venue's REST handlers.

A personality supplies the venue-specific parts (``Personality.make_rest``):

* ``routes``: path -> :class:`Route` (what the request weighs, and the handler writing the
  body of a successful answer);
* a :class:`RestPolicy`: the venue's rate limiter (:meth:`RestPolicy.admit` charges a request
  and answers with the venue's headers, or with its own 429 / 418 rejection), and the venue's
  headers and bodies for answers a fault produces.

:class:`RestApp` does the rest, the same for every venue: count the request, let the REST fault
injector (``sim.rest_faults``) intercept it while a REST fault is active, weigh it, charge it,
serve it, and turn a handler's :class:`BadRequest` into the venue's error answer. Weights and
windows are wall-clock, not venue time: a limit protects a server's real capacity, and at a
speed-up of 1000 a venue-time minute would last 60 ms and no client could ever hit it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol

import msgspec
from aiohttp import web

if TYPE_CHECKING:
    from candlekeeper.sim.rest_faults import RestFaults


#: where :class:`RestApp` keeps a request's body for the handlers (``request[BODY_KEY]``)
BODY_KEY: Final = web.RequestKey("body", bytes)


class RestStats(msgspec.Struct):
    requests: int = 0
    klines: int = 0
    errors_400: int = 0  # requests refused as bad (whatever HTTP status the venue uses)
    rejected_429: int = 0
    banned_418: int = 0


class BadRequest(Exception):
    """A handler refuses a request; ``body`` is the venue's own error answer, sent with
    ``status`` (some venues answer a bad parameter with HTTP 200 and an error code)."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        super().__init__(body.decode("utf-8", "replace"))
        self.status, self.body, self.content_type = status, body, content_type


class Route(NamedTuple):
    serve: Callable[[web.Request], bytes]  # the JSON body; raises BadRequest
    weight: Callable[[web.Request], int]  # raises BadRequest for a malformed request


def weight_one(_: web.Request) -> int:
    return 1


class Admission(NamedTuple):
    """What a venue's rate limiter says about one request."""

    headers: dict[str, str]  # the venue's rate-limit headers, on every answer
    status: int = 200  # 200 (serve it), 429 or 418
    body: bytes = b""  # the venue's rejection body when status != 200
    content_type: str = "application/json"


class RestPolicy(Protocol):
    """A venue's rate limiting and fault dialect."""

    def admit(self, ip: str, weight: int, now: float) -> Admission:
        """Charge ``weight`` to ``ip`` at wall time ``now`` (seconds)."""
        ...

    @property
    def ban_status(self) -> int:
        """The HTTP status of an IP ban (``rest_faults.RestDialect.ban_status``)."""
        ...

    def fault_headers(self, ip: str) -> dict[str, str]:
        """Rate-limit headers for an answer a fault produced (nothing is charged)."""
        ...

    def fault_answer(self, status: int, retry_after_s: int) -> tuple[bytes, str]:
        """The venue's own body and content type for a faulted 429, 418 or 5xx."""
        ...


class RestApp:
    """The REST side of one simulated venue (see the module docstring)."""

    def __init__(self, routes: Mapping[str, Route], policy: RestPolicy, *,
                 stats: RestStats | None = None, wall: Callable[[], float] = time.time,
                 symbol_of: Callable[[web.Request], str | None] | None = None) -> None:
        self.routes = dict(routes)
        self.policy = policy
        #: the symbol a request names, for symbol-scoped faults, where it is not the
        #: ``symbol`` query parameter (a venue whose market data is a POSTed JSON body)
        self.symbol_of = symbol_of
        self.stats = stats if stats is not None else RestStats()  # handlers count klines
        self._wall = wall
        #: REST faults of this venue (``sim.rest_faults``), set once a fault plan touches REST
        self.faults: RestFaults | None = None

    def handles(self, path: str) -> bool:
        return path in self.routes

    # the fault injector's dialect (``rest_faults.RestDialect``): the venue's own
    @property
    def ban_status(self) -> int:
        return self.policy.ban_status

    def fault_headers(self, ip: str) -> dict[str, str]:
        return self.policy.fault_headers(ip)

    def fault_answer(self, status: int, retry_after_s: int) -> tuple[bytes, str]:
        return self.policy.fault_answer(status, retry_after_s)

    async def handle(self, request: web.Request) -> web.Response:
        self.stats.requests += 1
        if request.body_exists:
            # handlers are synchronous: the body (a POSTed JSON request) is read for them
            request[BODY_KEY] = await request.read()
        faults = self.faults
        if faults is not None and faults.active:
            symbol = self.symbol_of(request) if self.symbol_of is not None else None
            answer = await faults.intercept(request, symbol)
            if answer is not None:
                return answer
        route = self.routes[request.path]
        try:
            weight = route.weight(request)
        except BadRequest:
            weight = 1  # a malformed request still costs the minimum
        verdict = self.policy.admit(request.remote or "?", weight, self._wall())
        if verdict.status != 200:
            if verdict.status == 429:
                self.stats.rejected_429 += 1
            else:
                self.stats.banned_418 += 1
            return web.Response(status=verdict.status, body=verdict.body,
                                headers=verdict.headers, content_type=verdict.content_type)
        try:
            body = route.serve(request)
        except BadRequest as exc:
            self.stats.errors_400 += 1
            return web.Response(status=exc.status, body=exc.body, headers=verdict.headers,
                                content_type=exc.content_type)
        return web.Response(body=body, headers=verdict.headers, content_type="application/json")
