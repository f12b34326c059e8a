"""REST faults of one simulated venue: 429, 418 bans, 5xx, timeouts and slow answers.

``RestApp`` (``sim.rest``) asks :meth:`RestFaults.intercept` before it charges weight or serves
anything, and only while a REST fault is active (``RestApp.faults`` is None otherwise). An
intercepted request gets the fault's answer, with the venue's real body and headers; a
``rest_slow`` request waits and then is served normally, so a REST answer that does come back
always carries the true candles. Faulted requests are not charged weight (the exchange's front
end rejected them before its rate limiter), and a faulted 429 does not start the limiter's
429 -> 418 escalation.

Bodies and headers are the venue's own (``RestDialect``, provided by the personality's REST
policy): its error codes and its rate-limit headers. A 504 is also what a request held past the
client's timeout finally gets. Symbols compare without separators and case, so
``symbol:BTCUSDT`` also hits a venue whose REST symbol is ``BTC-USDT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from candlekeeper.sim.faults import Fault, Target

#: (kind, fault_id, path, symbol, detail) -> None
RestRecorder = Callable[[str, int, str, "str | None", str], None]


class RestDialect(Protocol):
    """The venue's own headers and bodies for a faulted answer (``RestService`` provides it)."""

    #: the HTTP status of an IP ban (the ``rest_418`` fault): the venue's own (418, 403, ...)
    @property
    def ban_status(self) -> int: ...

    def fault_headers(self, ip: str) -> dict[str, str]: ...

    def fault_answer(self, status: int, retry_after_s: int) -> tuple[bytes, str]: ...


class RestEffect:
    __slots__ = ("count", "fault", "fault_id", "target", "until")

    def __init__(self, fault: Fault, fault_id: int, now: float) -> None:
        self.fault, self.fault_id = fault, fault_id
        self.target: Target = fault.target_spec
        self.until = now + fault.duration_s if fault.duration_s is not None else math.inf
        count = fault.count
        if count is None and fault.duration_s is None:
            count = 1
        self.count = count


class RestFaults:
    """Active REST faults of one venue. Times are ``time.monotonic()`` seconds."""

    def __init__(self, record: RestRecorder, rng: random.Random,
                 dialect: Callable[[], RestDialect]) -> None:
        self._record, self._rng, self._dialect = record, rng, dialect
        self.effects: list[RestEffect] = []
        self.banned_until = 0.0
        self.ban_fault = 0
        self.stopping = asyncio.Event()  # set on server stop: held requests return at once

    @property
    def active(self) -> bool:
        return bool(self.effects) or time.monotonic() < self.banned_until

    def add(self, fault: Fault, fault_id: int) -> None:
        now = time.monotonic()
        if fault.kind == "rest_418":
            assert fault.duration_s is not None  # validated by Fault
            self.banned_until = max(self.banned_until, now + fault.duration_s)
            self.ban_fault = fault_id
            return
        self.effects.append(RestEffect(fault, fault_id, now))

    def _pick(self, now: float, symbol: str | None) -> RestEffect | None:
        self.effects = [e for e in self.effects
                        if e.until > now and (e.count is None or e.count > 0)]
        for eff in self.effects:
            tgt = eff.target
            if tgt.scope == "symbol" and (symbol or "").replace("-", "").lower() != tgt.value:
                continue
            if eff.fault.fraction is not None and self._rng.random() >= eff.fault.fraction:
                continue
            if eff.count is not None:
                eff.count -= 1
            return eff
        return None

    async def intercept(self, request: web.Request,
                        symbol: str | None = None) -> web.Response | None:
        """The fault's answer, or None to serve the request (after any ``rest_slow`` delay).
        ``symbol``: what the request names when it is not its ``symbol`` query parameter."""
        now = time.monotonic()
        path, symbol = request.path, symbol or request.query.get("symbol")
        ip = request.remote or "?"
        dialect = self._dialect()
        headers = dialect.fault_headers(ip)
        if now < self.banned_until:
            wait = max(1, math.ceil(self.banned_until - now))
            status = dialect.ban_status
            self._record("rest_418", self.ban_fault, path, symbol,
                         f"{status}, Retry-After {wait}")
            headers["Retry-After"] = str(wait)
            return _answer(status, dialect.fault_answer(status, wait), headers)
        eff = self._pick(now, symbol)
        if eff is None:
            return None
        f, kind = eff.fault, eff.fault.kind
        if kind == "rest_429":
            retry = int(f.param("retry_after_s", 1))
            headers["Retry-After"] = str(retry)
            self._record(kind, eff.fault_id, path, symbol, f"429, Retry-After {retry}")
            return _answer(429, dialect.fault_answer(429, retry), headers)
        if kind == "rest_5xx":
            status = int(f.param("status", 503))
            self._record(kind, eff.fault_id, path, symbol, str(status))
            return _answer(status, dialect.fault_answer(status, 0), headers)
        if kind == "rest_timeout":
            hold = float(f.param("hold_s", 60.0))
            self._record(kind, eff.fault_id, path, symbol, f"held {hold:g} s, then 504")
            await self._hold(hold)
            return _answer(504, dialect.fault_answer(504, 0), headers)
        delay = float(f.param("delay_s", 1.0))  # rest_slow
        self._record(kind, eff.fault_id, path, symbol, f"answered after {delay:g} s")
        await self._hold(delay)
        return None

    async def _hold(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)


def _answer(status: int, body: tuple[bytes, str], headers: dict[str, str]) -> web.Response:
    return web.Response(status=status, body=body[0], headers=headers, content_type=body[1])
