"""Test helpers: a tiny scripted Binance-like REST server (real socket on 127.0.0.1:0).

It serves ``/fapi/v1/klines`` from a fixed list of candles with Binance's ``startTime`` /
``endTime`` / ``limit`` semantics and weight header, but first plays a script of failures
(status codes with headers, slow answers, dropped connections, garbage bodies), and records
when each request arrived so tests can assert who waited for what.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from aiohttp import web

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import MINUTE, close_time
from candlekeeper.sim.venues.binance.frames import rest_rows
from candlekeeper.venues.binance.endpoints import BINANCE_USDM, REST_PATHS
from candlekeeper.venues.contract import klines_weight

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def rest_fields(c: Candle) -> tuple[object, ...]:
    """What a REST row carries (no trade ids, no event time), as exact text."""
    return (c.symbol, c.interval, c.open_time, c.close_time, c.open_str, c.high_str, c.low_str,
            c.close_str, c.volume_str, c.quote_volume_str, c.trades,
            c.taker_buy_base_volume_str, c.taker_buy_quote_volume_str)


def make_candles(symbol: str, n: int, start: int = T0, interval_ms: int = MINUTE) -> list[Candle]:
    out = []
    for i in range(n):
        t = start + i * interval_ms
        price = 100 + i % 17
        out.append(Candle.of("binance-usdm", symbol, "1m", t, close_time(t, "1m"), price,
                             price + 2, price - 1, f"{price}.50", f"{i}.125", "10.0", i,
                             "1.5", "2.25", closed=True, source="rest"))
    return out


@dataclass
class Step:
    """One scripted answer: ``status`` (with ``headers``/``body``), or ``sleep`` seconds before
    answering normally, or ``drop`` the connection, or a ``garbage`` 200 body."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"code":-1000,"msg":"scripted"}'
    sleep: float = 0.0
    drop: bool = False
    garbage: bool = False


@dataclass
class Hit:
    at: float  # time.monotonic()
    params: dict[str, str]
    status: int
    wall: float = field(default_factory=time.time)


class ScriptedVenue:
    """Use as ``async with ScriptedVenue(candles, [Step(...), ...]) as venue:``."""

    def __init__(self, candles: list[Candle], script: list[Step] | None = None, *,
                 now_ms: int | None = None, cap: int | None = None,
                 sloppy: bool = False) -> None:
        self.candles = {c.symbol: [x for x in candles if x.symbol == c.symbol] for c in candles}
        self.script: deque[Step] = deque(script or [])
        self.hits: list[Hit] = []
        self.used = 0
        self.cap = cap  # serve at most this many rows whatever the limit
        self.sloppy = sloppy  # overshoot the range, answer unsorted with duplicates
        self.now_ms = now_ms
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ScriptedVenue:
        app = web.Application()
        app.router.add_get(REST_PATHS[BINANCE_USDM.id].klines, self._klines)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _klines(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        step = self.script.popleft() if self.script else Step()
        if step.drop:
            self.hits.append(Hit(time.monotonic(), params, -1))
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if step.sleep:
            await asyncio.sleep(step.sleep)
        status = step.status or 200
        self.hits.append(Hit(time.monotonic(), params, status))
        limit = int(params.get("limit", "500"))
        if status not in (429, 418):
            self.used += klines_weight(BINANCE_USDM, limit)
        headers = {"X-MBX-USED-WEIGHT-1M": str(self.used), **step.headers}
        if status != 200:
            return web.Response(status=status, body=step.body, headers=headers,
                                content_type="application/json")
        if step.garbage:
            return web.Response(body=b'[[1704067200000,"1.0",', headers=headers,
                                content_type="application/json")
        rows = self.candles.get(params.get("symbol", ""), [])
        start = int(params.get("startTime", "0"))
        end = int(params.get("endTime", str(2**62)))
        if self.sloppy:  # one row early, past endTime and the limit, reversed, duplicated
            chosen = [c for c in rows if c.open_time >= start - MINUTE][:limit + 2]
            chosen = chosen[::-1] + chosen[-2:]
        else:
            chosen = [c for c in rows if start <= c.open_time <= end][:limit]
        if self.cap is not None:
            chosen = chosen[:self.cap]
        return web.Response(body=rest_rows(chosen), headers=headers,
                            content_type="application/json")


def mid_minute() -> int:
    """A simulator start (venue ms) halfway through a minute, at most a minute behind the host:
    its ``history`` closed candles are then all final at once. A start just after a boundary
    leaves the newest of them inside the close margin for its first two seconds, and a
    backfill run then stores one fewer (failed once in CI: 299 of 300)."""
    return (time.time_ns() // 1_000_000 - 30_000) // MINUTE * MINUTE + 30_000
