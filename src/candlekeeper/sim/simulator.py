"""``Simulator``: a local exchange speaking every registered venue's protocols over real sockets
(issue 2, item 7; issue 5, item 5).

One aiohttp server per venue, each on its own port, WebSocket and REST on the same port. What a
venue is — its facts, its protocol, its REST API — comes from its registered ``VenueSpec`` and
its simulator personality (``sim/venues/<package>/``, found by ``sim.venues``); this module
names no venue. Venue
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
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeAlias, TypeVar
from urllib.parse import urlsplit

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.core.intervals import INTERVAL_MS, align, next_open
from candlekeeper.errors import ConfigError
from candlekeeper.sim.faults import Fault, FaultPlan, FaultRecord, parse_fault_spec
from candlekeeper.sim.injector import FaultInjector, FaultLog
from candlekeeper.sim.market import Market
from candlekeeper.sim.options import paced_cadence, pick, resolve
from candlekeeper.sim.profiles import DEFAULT_SYMBOLS, SymbolProfile
from candlekeeper.sim.replay import ReplaySeries, load_replay
from candlekeeper.sim.server import FirehoseResult, VenueServer, VenueStats
from candlekeeper.sim.universe import universe_profiles
from candlekeeper.sim.venues import personality_for, simulated_venues
from candlekeeper.venues.contract import RestWindow

log = logging.getLogger(__name__)
T = TypeVar("T")
#: a per-venue knob: one value for every venue, or ``{venue: value}``
PerVenue: TypeAlias = T | Mapping[str, T] | None
ReplayArg = ReplaySeries | str | Path | Sequence[ReplaySeries | str | Path] | None
FaultsArg = FaultPlan | Sequence[Fault] | str | None


class Simulator:
    """A simulated exchange for every registered venue (or those in ``venues``). Use as
    ``async with Simulator(...) as sim:``. Symbols are canonical (``BTCUSDT``) in this API;
    each venue writes its own form on the wire.

    ``venues`` defaults to every registered venue. ``symbols`` defaults to 20 liquid USDT pairs
    (or to the replayed series' symbols); ``history`` closed candles per interval are available
    over REST before ``start_time_ms`` (for a replay, the default start leaves up to ``history``
    of the series' candles before it). ``ports`` maps a venue to its port (0 or absent: any
    free port).

    Per-venue knobs (``update_interval_s``, ``ping_interval_s``, ``pong_timeout_s``,
    ``control_rate``, ``ip_message_limits`` (per-IP message windows), ``max_streams``,
    ``connection_lifetime_s`` (venue seconds),
    ``rest_weight_limit`` / ``rest_window_s`` (the venue's first REST window; other windows keep
    their proportions), ``ban_s``, ``close_delay_s``, ``rest_final_delay_ms``, ``idle_close_s``,
    ``stale_last_push``, ``legacy_routes_push_klines``) take one value for every venue or a
    ``{venue: value}`` mapping. Their defaults are the venue's documented facts (its
    ``VenueSpec``) and its personality's choices (``Behaviour``); see docs/simulator.md.
    ``min_pushes_per_candle`` (None: off) speeds up a venue's default push cadence so that
    every candle of the shortest interval gets at least that many pushes at this ``speed``
    (``options.paced_cadence``); an explicit ``update_interval_s`` always wins.

    ``faults`` is a plan (or a list of faults, or a ``--faults`` spec string) whose ``at_s``
    count wall seconds from :meth:`start`.

    ``universe`` (N, instead of ``symbols``) serves N symbols with real-looking activity: a few
    very busy ones, a long tail of quiet ones (``sim.universe``), as a client subscribing to
    ``symbols: all`` meets them.

    ``clock_skew_s`` (one value or ``{venue: seconds}``, venue seconds, either sign) runs a
    venue's clock that far from :attr:`clock`: its market, its frames' event times and its
    REST server time are on :meth:`venue_clock` = :attr:`clock` + skew, while a client keeps
    using :attr:`clock`. That is what a host clock off by the skew looks like to a client (a
    positive skew: the host is behind the venue). The truth (:meth:`closed_candles`) is in the
    venue's own time.
    """

    def __init__(self, *, venues: Sequence[str] | None = None,
                 symbols: Sequence[str] | None = None,
                 intervals: Sequence[str] = ("1m", "5m", "1h"),
                 seed: int = 1, speed: float = 1.0, start_time_ms: int | None = None,
                 history: int = 1000, replay: ReplayArg = None,
                 host: str = "127.0.0.1", ports: Mapping[str, int] | None = None,
                 legacy_routes_push_klines: PerVenue[bool] = None,
                 update_interval_s: PerVenue[float] = None,
                 close_delay_s: PerVenue[tuple[float, float]] = None,
                 rest_final_delay_ms: PerVenue[int] = None,
                 idle_close_s: PerVenue[float] = None,
                 ping_interval_s: PerVenue[float] = None,
                 pong_timeout_s: PerVenue[float] = None,
                 control_rate: PerVenue[float] = None,
                 ip_message_limits: PerVenue[tuple[RestWindow, ...]] = None,
                 max_streams: PerVenue[int] = None,
                 connection_lifetime_s: PerVenue[float] = None,
                 rest_weight_limit: PerVenue[int] = None,
                 rest_window_s: PerVenue[float] = None,
                 ban_s: PerVenue[float] = None,
                 stale_last_push: PerVenue[bool] = None,
                 min_pushes_per_candle: int | None = None,
                 clock_skew_s: PerVenue[float] = None,
                 faults: FaultsArg = None,
                 universe: int | None = None) -> None:
        known = simulated_venues()
        venues = known if venues is None else tuple(venues)
        for v in (*venues, *(ports or {})):
            if v not in known:
                raise ConfigError(f"the simulator has no venue {v!r}; expected one of "
                                  f"{', '.join(known)}")
        if min_pushes_per_candle is not None and min_pushes_per_candle < 1:
            raise ConfigError(f"min_pushes_per_candle must be >= 1, got {min_pushes_per_candle}")
        series = _load(replay)
        profiles: dict[str, SymbolProfile] = {}
        if universe is not None:
            if symbols is not None or series:
                raise ConfigError("universe= replaces the symbol list: give symbols= or "
                                  "replay=, or universe=, not both")
            profiles = universe_profiles(universe)
            symbols = list(profiles)
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
        if isinstance(clock_skew_s, Mapping):
            for v in clock_skew_s:
                if v not in venues:
                    raise ConfigError(f"clock_skew_s names venue {v!r}, which is not simulated "
                                      f"here ({', '.join(venues)})")
        self._venue_clocks = {v: skewed(self.clock, pick(clock_skew_s, v) or 0.0)
                              for v in venues}
        self.replay = series
        self._servers: dict[str, VenueServer] = {}
        self._started = False
        self.faults = _plan(faults)
        self._fault_log = FaultLog(self.clock)
        self._injectors: dict[str, FaultInjector] = {}
        self._fault_ids = itertools.count(1)
        self._plan_task: asyncio.Task[None] | None = None
        overrides = {
            "update_interval_s": update_interval_s, "ping_interval_s": ping_interval_s,
            "pong_timeout_s": pong_timeout_s, "control_rate": control_rate,
            "ip_message_limits": ip_message_limits,
            "max_streams": max_streams, "connection_lifetime_s": connection_lifetime_s,
            "rest_weight_limit": rest_weight_limit, "rest_window_s": rest_window_s,
            "ban_s": ban_s, "close_delay_s": close_delay_s,
            "rest_final_delay_ms": rest_final_delay_ms, "idle_close_s": idle_close_s,
            "stale_last_push": stale_last_push,
            "legacy_routes_push_klines": legacy_routes_push_klines,
        }
        for venue in self.venues:
            persona = personality_for(venue)
            spec, behaviour = persona.spec, persona.behaviour
            opts = resolve(venue, spec, behaviour, overrides)
            if min_pushes_per_candle is not None and pick(update_interval_s, venue) is None:
                opts = msgspec.structs.replace(opts, update_interval_s=paced_cadence(
                    opts.update_interval_s, self.clock, self.intervals, min_pushes_per_candle))
            venue_clock = self._venue_clocks[venue]
            market = Market(venue, symbols, intervals, seed=seed,
                            start_ms=venue_clock.start_ms, history=history, replay=series,
                            pad=behaviour.price_pad, allowed_intervals=spec.intervals,
                            published_extras=behaviour.published_extras,
                            precision=behaviour.precision,
                            rest_lag_ms=opts.rest_final_delay_ms, profiles=profiles)
            server = VenueServer(persona, market, venue_clock, opts, host=host,
                                 port=(ports or {}).get(venue, 0) or 0, seed=seed)
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
        """Drop-in for the venue's ``VenueSpec.ws_base``: ``ws://host:port`` followed by the
        same path as the real one (a routed path, say), so a client builds the same URLs."""
        server = self.server(venue)
        path = urlsplit(server.spec.ws_base).path.rstrip("/")
        return f"ws://{self.host}:{server.port}{path}"

    def rest_base(self, venue: str) -> str:
        return f"http://{self.host}:{self.port(venue)}"

    def archive_base(self, venue: str) -> str:
        """Drop-in for the venue's public kline archive base URL (``sim.archive``): the same
        paths, on the venue's port. ``server(venue).archive.faults`` spoils given files."""
        if self.server(venue).archive is None:
            raise ConfigError(f"{venue} publishes no kline archive")
        return self.rest_base(venue)

    # -- clocks -----------------------------------------------------------------------------
    def venue_clock(self, venue: str) -> ScaledClock:
        """``venue``'s own clock: :attr:`clock` plus its ``clock_skew_s``."""
        self.server(venue)  # a clear error for a venue not simulated here
        return self._venue_clocks[venue]

    def clock_skew_ms(self, venue: str) -> int:
        """How far ``venue``'s clock runs ahead of :attr:`clock` (negative: behind), in ms."""
        return self.venue_clock(venue).start_ms - self.clock.start_ms

    # -- truth ------------------------------------------------------------------------------
    def market(self, venue: str) -> Market:
        return self.server(venue).market

    def closed_candles(self, venue: str, symbol: str, interval: str, *,
                       until_ms: int | None = None) -> list[Candle]:
        """Every candle whose close time has passed in venue time (or before ``until_ms``),
        oldest first, including the ``history`` served over REST before the start. Every field
        equals the venue's closing frame and its REST row (``event_time`` is None, ``closed``
        True). A venue that publishes only OHLCV has only those (trades, quote volume and trade
        ids are None); a venue without a closed flag has the *final* values here, which its last
        push may not have shown.
        """
        now = self.venue_clock(venue).time_ms() if until_ms is None else until_ms
        return self.market(venue).closed(symbol, interval, now)

    def next_close_ms(self, interval: str, venue: str | None = None) -> int:
        """Venue time at which the current ``interval`` candle closes (for tests): on
        ``venue``'s own clock, or on :attr:`clock` when no venue is named."""
        clock = self.clock if venue is None else self.venue_clock(venue)
        return next_open(align(clock.time_ms(), interval), interval)

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


def skewed(clock: ScaledClock, skew_s: float) -> ScaledClock:
    """``clock`` shifted by ``skew_s`` venue seconds (the same clock when 0): same speed, same
    monotonic origin, so the two never drift apart."""
    if not math.isfinite(skew_s):
        raise ConfigError(f"a clock skew must be a finite number of seconds, got {skew_s}")
    skew_ms = round(skew_s * 1000)
    if skew_ms == 0:
        return clock
    return ScaledClock(clock.start_ms + skew_ms, clock.speed,
                       monotonic_origin=clock.monotonic_origin)


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
