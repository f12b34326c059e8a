"""Applying faults to a running venue, and the log of what was applied.

One :class:`FaultInjector` per venue server. :meth:`FaultInjector.apply` acts at once: connection
faults (abrupt disconnect, close frame, early lifetime end, injected malformed frames, a
``serverShutdown`` notice) hit the target connections immediately; frame faults attach an
:class:`~candlekeeper.sim.shaper.Effect` to each target connection's shaper; REST faults go to
the venue's :class:`~candlekeeper.sim.rest_faults.RestFaults`. Targets are the connections open
when the fault fires; a client that reconnects gets a healthy connection.

Every effect is appended to the shared :class:`FaultLog` (``Simulator.fault_log``) with wall and
venue timestamps, so tests assert on what actually happened rather than on what was planned.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from candlekeeper.core.clock import ScaledClock
from candlekeeper.sim.faults import REST_KINDS, Fault, FaultRecord
from candlekeeper.sim.rest_faults import RestFaults
from candlekeeper.sim.shaper import Effect, Shaper

if TYPE_CHECKING:
    from candlekeeper.sim.server import Connection, VenueServer

#: a frame-ordering effect with no duration releases what it holds after this long
REORDER_MAX_HOLD_S = 10.0
_LOG_CAP = 200_000


class FaultLog:
    """Applied fault effects, oldest first; awaitable for tests."""

    def __init__(self, clock: ScaledClock) -> None:
        self.clock = clock
        self.records: list[FaultRecord] = []
        self.overflow = 0  # records not kept past the cap
        self.t0 = time.monotonic()
        self._changed: asyncio.Event | None = None

    def start(self) -> None:
        self.t0 = time.monotonic()

    def add(self, fault_id: int, kind: str, venue: str, *, connection: int | None = None,
            stream: str | None = None, open_time: int | None = None, detail: str = "") -> None:
        if len(self.records) >= _LOG_CAP:
            self.overflow += 1
            return
        self.records.append(FaultRecord(
            fault_id=fault_id, kind=kind, venue=venue,
            wall_s=round(time.monotonic() - self.t0, 6), venue_ms=self.clock.time_ms(),
            connection=connection, stream=stream, open_time=open_time, detail=detail))
        if self._changed is not None:
            self._changed.set()

    async def wait_for(self, predicate: Callable[[FaultRecord], bool],
                       timeout: float = 10.0) -> FaultRecord:
        """The first record (past or future) matching ``predicate``."""
        async with asyncio.timeout(timeout):
            seen = 0
            while True:
                for rec in self.records[seen:]:
                    if predicate(rec):
                        return rec
                seen = len(self.records)
                if self._changed is None:
                    self._changed = asyncio.Event()
                self._changed.clear()
                await self._changed.wait()


class FaultInjector:
    """Applies faults to one :class:`~candlekeeper.sim.server.VenueServer`."""

    def __init__(self, server: VenueServer, log: FaultLog, seed: int) -> None:
        self.server, self.log, self.seed = server, log, seed
        self.venue = server.venue
        self._rng = random.Random(f"{seed}/{self.venue}/frames")
        self.rest = RestFaults(self._rest_record, random.Random(f"{seed}/{self.venue}/rest"),
                               lambda: self.server.rest)
        self._timers: set[asyncio.TimerHandle] = set()

    def stop(self) -> None:
        self.rest.stopping.set()
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    # -- records ----------------------------------------------------------------------------
    def _count(self, kind: str) -> None:
        faults = self.server.stats.faults
        faults[kind] = faults.get(kind, 0) + 1

    def _ws_record(self, kind: str, fault_id: int, connection: int, stream: str | None,
                   open_time: int | None, detail: str) -> None:
        self._count(kind)
        self.log.add(fault_id, kind, self.venue, connection=connection, stream=stream,
                     open_time=open_time, detail=detail)

    def _rest_record(self, kind: str, fault_id: int, path: str, symbol: str | None,
                     detail: str) -> None:
        self._count(kind)
        self.log.add(fault_id, kind, self.venue, stream=symbol, detail=f"{path}: {detail}")

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        if math.isinf(delay):
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            fn()

        handle = loop.call_later(max(0.0, delay), fire)
        self._timers.add(handle)

    # -- targets ----------------------------------------------------------------------------
    def targets(self, fault: Fault, fault_id: int) -> list[Connection]:
        tgt = fault.target_spec
        conns = [c for _, c in sorted(self.server.connections.items()) if not c.closed]
        if tgt.scope == "one":
            rng = random.Random(f"{self.seed}/{self.venue}/{fault_id}")
            return [rng.choice(conns)] if conns else []
        if tgt.scope == "conn":
            return [c for c in conns if c.id == int(tgt.value)]
        if tgt.scope in ("stream", "symbol"):
            return [c for c in conns if any(tgt.matches_stream(s)
                                            for s in c.session.subscriptions)]
        return conns

    # -- applying ---------------------------------------------------------------------------
    def apply(self, fault: Fault, fault_id: int) -> None:
        kind = fault.kind
        if kind in REST_KINDS:
            self.server.rest.faults = self.rest
            self.rest.add(fault, fault_id)
            if kind != "rest_418":
                self.log.add(fault_id, kind, self.venue, detail="armed")
            else:
                self.log.add(fault_id, kind, self.venue,
                             detail=f"every request banned for {fault.duration_s:g} s")
            return
        if kind == "refuse":
            status = int(fault.param("status", 451))
            assert fault.duration_s is not None  # validated by Fault
            self.server.refuse(status, fault.duration_s)
            self.log.add(fault_id, kind, self.venue,
                         detail=f"WebSocket handshakes answered HTTP {status} for "
                                f"{fault.duration_s:g} s, open connections dropped")
            for conn in list(self.server.connections.values()):
                conn.abort("fault_refuse")
            return
        conns = self.targets(fault, fault_id)
        if not conns:
            self.log.add(fault_id, kind, self.venue, detail="no matching connection")
            return
        for conn in conns:
            self._apply_ws(fault, fault_id, conn)

    def _apply_ws(self, fault: Fault, fid: int, conn: Connection) -> None:
        kind = fault.kind
        rec = self._ws_record
        if kind == "disconnect":
            rec(kind, fid, conn.id, None, None, "TCP reset, no close frame")
            conn.abort("fault_disconnect")
        elif kind == "close":
            code = int(fault.param("code", 1001))
            reason = str(fault.param("reason", "going away" if code == 1001 else "fault"))
            rec(kind, fid, conn.id, None, None, f"close frame {code} {reason!r}")
            conn.request_close("fault_close", code=code, message=reason)
        elif kind == "lifetime":
            rec(kind, fid, conn.id, None, None, "connection lifetime ended early")
            conn.request_close("lifetime")
        elif kind == "malformed":
            persona = self.server.personality
            stream = next(iter(conn.session.subscriptions), None) or persona.stream_name(
                self.server.market.symbols[0], self.server.market.intervals[0])
            bad = persona.malformed(stream)
            for _ in range(fault.count or 1):
                frame = bad[self._rng.randrange(len(bad))]
                conn.write_now(frame)
                rec(kind, fid, conn.id, None, None, f"injected {frame[:40]!r}")
        elif kind == "server_shutdown":
            notice = self.server.personality.shutdown_notice(self.server.clock.time_ms(),
                                                             conn.combined)
            delay = float(fault.param("delay_s", 1.0))
            if notice is not None:
                conn.write_now(notice)
                rec(kind, fid, conn.id, None, None, f"serverShutdown sent, close in {delay:g} s")
            else:  # a venue that announces nothing: the close simply comes (a restart)
                rec(kind, fid, conn.id, None, None,
                    f"no shutdown notice on this venue, close in {delay:g} s")
            self._later(delay, lambda: conn.request_close("server_shutdown", code=1001,
                                                          message="server shutdown"))
        else:
            self._shape(fault, fid, conn)

    def _shape(self, fault: Fault, fid: int, conn: Connection) -> None:
        kind, now = fault.kind, time.monotonic()
        shaper = conn.shaper
        if shaper is None:
            shaper = conn.shaper = Shaper(conn, self._ws_record, self._rng,
                                          self.server.personality.closing_frame_name)
            self.server.pusher.shaping = True
        duration = fault.duration_s if fault.duration_s is not None else math.inf
        if kind == "drop_pings" or (kind == "stall" and not fault.param("pings", True)):
            shaper.pings_off_until = max(shaper.pings_off_until, now + duration)
            if kind == "drop_pings":
                self._ws_record(kind, fid, conn.id, None, None,
                                f"pings stopped for {duration:g} s")
                self._later(duration, lambda: self._pings_back(fid, conn, shaper))
                return
        count = fault.count
        if count is None and fault.duration_s is None and kind != "stall":
            count = 1
        if kind == "reorder" and math.isinf(duration):
            duration = REORDER_MAX_HOLD_S
        tgt = fault.target_spec
        shaper.add(Effect(kind, fid, tgt, until=now + duration,
                          count=None if kind == "stall" else count, fraction=fault.fraction,
                          closed_only=bool(fault.param("closed", False)),
                          tail=bool(fault.param("tail", False))))
        if kind == "stall":
            pings = "pings continue" if fault.param("pings", True) else "pings stopped too"
            self._ws_record(kind, fid, conn.id, None, None,
                            f"stall started for {duration:g} s, {pings}")
        self._later(duration + 1e-3, lambda: shaper.expire(time.monotonic()))

    def _pings_back(self, fid: int, conn: Connection, shaper: Shaper) -> None:
        if not conn.closed:
            self._ws_record("drop_pings", fid, conn.id, None, None, "pings resumed")
        shaper.expire(time.monotonic())

