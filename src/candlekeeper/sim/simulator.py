"""``Simulator``: a local Binance USDⓈ-M + spot + BingX perpetual-swap exchange over real
sockets (issue 2, item 7; issue 5, item 5).

One aiohttp server per venue, each on its own port, WebSocket and REST on the same port. Venue
time is a :class:`~candlekeeper.core.clock.ScaledClock` running ``speed`` times faster than wall
time, shared by every venue, so hours of candles pass in seconds. Everything the simulator
serves is a deterministic function of ``seed`` (or of the replayed series) and of venue time;
:meth:`Simulator.closed_candles` exposes that truth for tests to compare against.

Faults (``faults=`` a :class:`~candlekeeper.sim.faults.FaultPlan`, and :meth:`Simulator.inject`)
damage only delivery — WebSocket frames and REST answers — never that truth; what was applied
is in :attr:`Simulator.fault_log`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.core.intervals import INTERVAL_MS, align, next_open
from candlekeeper.errors import ConfigError
from candlekeeper.sim.faults import Fault, FaultPlan, FaultRecord, parse_fault_spec
from candlekeeper.sim.injector import FaultInjector, FaultLog
from candlekeeper.sim.market import Market
from candlekeeper.sim.profiles import DEFAULT_SYMBOLS
from candlekeeper.sim.replay import ReplaySeries, load_replay
from candlekeeper.sim.server import (
    DEFAULT_OPTIONS,
    FirehoseResult,
    VenueServer,
    VenueStats,
)
from candlekeeper.sim.venues.personalities import PERSONALITIES, personality_for
from candlekeeper.venues.binance.endpoints import BINANCE_VENUES
from candlekeeper.venues.bingx.endpoints import BINGX_VENUES
from candlekeeper.venues.contract import VenueSpec

#: every venue the simulator speaks, by id
VENUE_SPECS: dict[str, VenueSpec] = {**BINANCE_VENUES, **BINGX_VENUES}

log = logging.getLogger(__name__)
T = TypeVar("T")
ReplayArg = ReplaySeries | str | Path | Sequence[ReplaySeries | str | Path] | None
FaultsArg = FaultPlan | Sequence[Fault] | str | None


def _pick(value: T | Mapping[str, T] | None, venue: str, default: T) -> T:
    if value is None:
        return default
    if isinstance(value, Mapping):
        return value.get(venue, default)
    return value


class Simulator:
    """A simulated Binance (usdm + spot) and BingX (swap). Use as
    ``async with Simulator(...) as sim:``. Symbols are canonical (``BTCUSDT``) in this API;
    each venue writes its own form on the wire (``btcusdt`` streams, ``BTC-USDT`` topics).

    ``symbols`` defaults to 20 liquid USDT pairs (or to the replayed series' symbols);
    ``history`` closed candles per interval are available over REST before ``start_time_ms``
    (for a replay, the default start leaves up to ``history`` of the series' candles before it).
    Per-venue knobs (``update_interval_s``, ``ping_interval_s``, ...) take one value for every
    venue or a ``{venue: value}`` mapping; the defaults are the real exchange's (BingX: a push
    every 1 s, a ``Ping`` every 5 s, 15 s without a ``Pong`` closes, 200 topics, 1000 requests
    per minute and half that per 10 s, a 300 s ban). ``stale_last_push`` (BingX) keeps the
    exchange's behaviour of a candle's last push predating its close (docs/simulator.md).
    ``faults`` is a plan (or a list of faults, or a ``--faults`` spec string) whose ``at_s``
    count wall seconds from :meth:`start`.
    """

    def __init__(self, *, venues: Sequence[str] = ("binance-usdm", "binance-spot"),
                 symbols: Sequence[str] | None = None,
                 intervals: Sequence[str] = ("1m", "5m", "1h"),
                 seed: int = 1, speed: float = 1.0, start_time_ms: int | None = None,
                 history: int = 1000, replay: ReplayArg = None,
                 host: str = "127.0.0.1", ports: Mapping[str, int] | None = None,
                 legacy_routes_push_klines: bool = False,
                 update_interval_s: float | Mapping[str, float] | None = None,
                 close_delay_s: tuple[float, float] = (0.2, 2.0),
                 ping_interval_s: float | Mapping[str, float] | None = None,
                 pong_timeout_s: float | Mapping[str, float] | None = None,
                 control_rate: float | Mapping[str, float] | None = None,
                 max_streams: int | Mapping[str, int] | None = None,
                 connection_lifetime_s: float = 24 * 3600.0,
                 rest_weight_limit: int | Mapping[str, int] | None = None,
                 rest_window_s: float = 60.0, ban_s: float | Mapping[str, float] | None = None,
                 stale_last_push: bool = True,
                 faults: FaultsArg = None) -> None:
        for v in venues:
            if v not in PERSONALITIES:
                raise ConfigError(f"the simulator has no venue {v!r}; expected one of "
                                  f"{', '.join(PERSONALITIES)}")
        series = _load(replay)
        if symbols is None:
            symbols = [s.symbol for s in series] or list(DEFAULT_SYMBOLS)
        symbols = list(dict.fromkeys(s.upper() for s in symbols))
        if start_time_ms is None and series:
            first = series[0]
            step = INTERVAL_MS[first.interval]
            start_time_ms = first.first_open + min(history, len(first.rows) // 2) * step
        self.venues = tuple(venues)
        self.symbols = tuple(symbols)
        self.intervals = tuple(intervals)
        self.seed, self.history, self.host = seed, history, host
        self.clock = ScaledClock(start_time_ms, speed)
        self.replay = series
        self._servers: dict[str, VenueServer] = {}
        self._started = False
        self.faults = _plan(faults)
        self._fault_log = FaultLog(self.clock)
        self._injectors: dict[str, FaultInjector] = {}
        self._fault_ids = itertools.count(1)
        self._plan_task: asyncio.Task[None] | None = None
        for venue in venues:
            spec = VENUE_SPECS[venue]
            base = DEFAULT_OPTIONS[venue]
            opts = msgspec.structs.replace(
                base,
                update_interval_s=_pick(update_interval_s, venue, base.update_interval_s),
                ping_interval_s=_pick(ping_interval_s, venue, base.ping_interval_s),
                pong_timeout_s=_pick(pong_timeout_s, venue, base.pong_timeout_s),
                control_rate=_pick(control_rate, venue, base.control_rate),
                rest_weight_limit=_pick(rest_weight_limit, venue, base.rest_weight_limit),
                max_streams=_pick(max_streams, venue, base.max_streams),
                connection_lifetime_s=connection_lifetime_s,
                close_delay_s=close_delay_s, legacy_routes_push_klines=legacy_routes_push_klines,
                rest_window_s=rest_window_s, ban_s=_pick(ban_s, venue, base.ban_s),
                stale_last_push=stale_last_push)
            market = Market(venue, symbols, intervals, seed=seed, start_ms=self.clock.start_ms,
                            history=history, replay=series,
                            pad=8 if venue == "binance-spot" else None,
                            allowed_intervals=spec.intervals,
                            ohlcv_only=not spec.closed_flag)
            server = VenueServer(spec, market, self.clock, opts, host=host,
                                 port=(ports or {}).get(venue, 0) or 0, seed=seed,
                                 personality=personality_for(venue))
            self._servers[venue] = server
            self._injectors[venue] = FaultInjector(server, self._fault_log, seed)
        for fault in self.faults:
            if fault.venue is not None and fault.venue not in self._servers:
                raise ConfigError(f"fault {fault.kind} at {fault.at_s} s names venue "
                                  f"{fault.venue!r}, which is not simulated here")

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        try:
            for server in self._servers.values():
                await server.start()
        except BaseException:
            await self.stop()
            raise
        self._fault_log.start()
        for injector in self._injectors.values():
            injector.rest.stopping.clear()  # a restarted simulator holds timed-out requests again
        if len(self.faults):
            self._plan_task = asyncio.get_running_loop().create_task(self._run_plan())

    async def stop(self) -> None:
        if self._plan_task is not None:
            self._plan_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._plan_task
            self._plan_task = None
        for injector in self._injectors.values():
            injector.stop()
        for server in self._servers.values():
            await server.stop()
        self._started = False

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # -- addresses --------------------------------------------------------------------------
    def server(self, venue: str) -> VenueServer:
        try:
            return self._servers[venue]
        except KeyError:
            raise ConfigError(f"venue {venue!r} is not simulated here") from None

    def port(self, venue: str) -> int:
        return self.server(venue).port

    def ws_base(self, venue: str) -> str:
        """Drop-in for ``VenueSpec.ws_base``: ``ws://127.0.0.1:P/market`` for usdm (the routed
        path, §A.1), ``ws://127.0.0.1:P`` for spot, ``ws://127.0.0.1:P/swap-market`` for
        BingX (§C.1)."""
        root = f"ws://{self.host}:{self.port(venue)}"
        suffix = {"binance-usdm": "/market", "bingx-swap": "/swap-market"}.get(venue, "")
        return root + suffix

    def rest_base(self, venue: str) -> str:
        return f"http://{self.host}:{self.port(venue)}"

    # -- truth ------------------------------------------------------------------------------
    def market(self, venue: str) -> Market:
        return self.server(venue).market

    def closed_candles(self, venue: str, symbol: str, interval: str, *,
                       until_ms: int | None = None) -> list[Candle]:
        """Every candle whose close time has passed in venue time (or before ``until_ms``),
        oldest first, including the ``history`` served over REST before the start. Every field
        equals the ``x:true`` frame and the REST row (``event_time`` is None, ``closed`` True).
        BingX candles carry only what BingX publishes (OHLCV; trades, quote volume and trade
        ids are None) and are the *final* values, which the last push may not have shown.
        """
        now = self.clock.time_ms() if until_ms is None else until_ms
        return self.market(venue).closed(symbol, interval, now)

    def next_close_ms(self, interval: str) -> int:
        """Venue time at which the current ``interval`` candle closes (for tests)."""
        return next_open(align(self.clock.time_ms(), interval), interval)

    # -- faults -----------------------------------------------------------------------------
    def inject(self, fault: Fault) -> int:
        """Apply ``fault`` now (its ``at_s`` is ignored); returns its id in :attr:`fault_log`.
        Must be called from the simulator's event loop while it runs."""
        if not self._started:
            raise RuntimeError("Simulator.inject() needs a started simulator")
        if fault.venue is not None and fault.venue not in self._servers:
            raise ConfigError(f"venue {fault.venue!r} is not simulated here")
        fid = next(self._fault_ids)
        for venue, injector in self._injectors.items():
            if fault.venue is None or fault.venue == venue:
                injector.apply(fault, fid)
        return fid

    @property
    def fault_log(self) -> list[FaultRecord]:
        """Every fault effect applied so far (a live list), oldest first."""
        return self._fault_log.records

    async def wait_fault(self, predicate: Callable[[FaultRecord], bool],
                         timeout: float = 10.0) -> FaultRecord:
        """The first :attr:`fault_log` record matching ``predicate``, waiting for it."""
        return await self._fault_log.wait_for(predicate, timeout)

    def wall_elapsed(self) -> float:
        """Wall seconds since :meth:`start` (the time base of ``Fault.at_s``)."""
        return time.monotonic() - self._fault_log.t0

    async def _run_plan(self) -> None:
        for fault in self.faults:
            delay = fault.at_s - self.wall_elapsed()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                self.inject(fault)
            except Exception:  # a fault that cannot apply must not stop the rest of the plan
                log.exception("fault %s could not be applied", fault)

    # -- benchmarks -------------------------------------------------------------------------
    async def wait_connections(self, venue: str, count: int = 1,
                               timeout: float = 10.0) -> list[int]:
        """Wait until ``count`` WebSocket connections are open on ``venue``; their ids."""
        conns = await self.server(venue).wait_connections(count, timeout)
        return [c.id for c in conns]

    async def firehose(self, venue: str, count: int, *, rate: float | None = None,
                       connection: int | None = None, stream: str | None = None,
                       batch: int = 256) -> FirehoseResult:
        """Push ``count`` pre-built kline frames (valid frames, non-decreasing ``E``,
        ``n = 1, 2, 3 ...``) to one connection — the given one or the newest — as fast as the
        socket drains, or at ``rate`` messages per second. The same mode is available to an
        external client by adding ``firehose=N`` (and ``rate=M``) to the WebSocket URL."""
        server = self.server(venue)
        if not server.connections:
            await server.wait_connections(1, 10.0)
        cid = connection if connection is not None else max(server.connections)
        return await server.firehose(server.connections[cid], count, rate=rate, stream=stream,
                                     batch=batch)

    def stats(self) -> dict[str, VenueStats]:
        """Per venue: connections, subscriptions, frames sent, error frames, disconnects by
        reason, REST requests and rejections."""
        return {v: s.snapshot() for v, s in self._servers.items()}

    def __repr__(self) -> str:
        ports = {v: s.port for v, s in self._servers.items()}
        return f"Simulator(speed={self.clock.speed}, ports={ports}, t={time.time():.0f})"


def _plan(faults: FaultsArg) -> FaultPlan:
    if faults is None:
        return FaultPlan()
    if isinstance(faults, FaultPlan):
        return faults
    if isinstance(faults, str):
        return parse_fault_spec(faults)
    return FaultPlan.of(faults)


def _load(replay: ReplayArg) -> list[ReplaySeries]:
    if replay is None:
        return []
    items = [replay] if isinstance(replay, ReplaySeries | str | Path) else list(replay)
    return [r if isinstance(r, ReplaySeries) else load_replay(r) for r in items]
