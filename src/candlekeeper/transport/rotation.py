"""Make-before-break rotation: replace a session's connection without a gap or a duplicate.

Venues cut connections after a fixed lifetime (``VenueSpec.connection_lifetime_s``, often 24 h)
and may announce a shutdown earlier, so a session
replaces its connection before that happens: it opens a second connection, subscribes the same
streams (paced, on the new connection's own control budget), and closes the old one only once
every stream that was flowing is flowing on the new one. The listener never sees the streams
DISCONNECTED — nothing was missed, so no backfill is needed — only a ``ConnectionStatus`` whose
detail starts with ``rotating`` and then ``rotated``.

**The overlap.** Both connections carry the same per-stream frame sequence, each in order, but
across two sockets either copy may arrive first. While both are open, each stream is routed on
each link to a small wrapper (a :class:`StreamSlot` that is always LIVE, so ``Link.on_frame``
runs unchanged) feeding one :class:`_Merge`, which delivers a frame only if it is newer than
everything delivered so far — ordered by ``(open_time, closed, event_time)`` — plus any closed
candle not delivered yet (a close that went out only on the old connection, before the new one
subscribed, may arrive after the new connection's first frame of the next candle; closes are
never superseded, updates are). A stream is **handed over** once (a) the old connection has
delivered up to the new connection's first frame, so the old one holds nothing the new one
lacks, and (b) the new connection has caught up with everything delivered. From that instant
the new link routes the stream straight to its real slot (the lean hot path again) and the old
link drops it. The wrappers cost a little per frame, but only during the overlap (seconds a
day); the steady-state path is untouched.

**When it cannot finish.** If a stream has not been handed over within the handover timeout, or
the old connection dies first, the new connection is promoted anyway: streams that may have
lost frames (the old connection held frames the new one never got) are reported DISCONNECTED →
SUBSCRIBING → SUBSCRIBED, exactly like a reconnect, so the gap-filler backfills them. If the
*new* connection fails (refused, closed, no ack), the old one is kept, streams already handed
over are reported DISCONNECTED (their frames on the old link were being dropped), and the
rotation is retried after a backoff delay.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from candlekeeper.core.candle import Candle
from candlekeeper.core.events import ConnectionState, StreamState
from candlekeeper.transport.backoff import describe
from candlekeeper.transport.base import Connection
from candlekeeper.transport.connect_gate import connect_within
from candlekeeper.transport.link import Link
from candlekeeper.transport.watchdog import StreamSlot

if TYPE_CHECKING:
    from candlekeeper.transport.session import Session

log = logging.getLogger("candlekeeper.transport")

_LIVE = StreamState.LIVE
Route = tuple[str, str]  # (symbol, interval), the hot-path index of a decoded Candle
Key = tuple[int, bool, int]  # a frame's place in its stream


def frame_key(c: Candle) -> Key:
    """Order of a frame within its stream: candle, then updates before the close, then E."""
    return (c.open_time, c.closed, c.event_time or 0)


def _drop(candle: Candle) -> bool:
    return False


def _route_slot(real: StreamSlot, deliver: Callable[[Candle], bool]) -> StreamSlot:
    """A routing entry for one link during a rotation. Always LIVE, so ``Link.on_frame`` never
    takes its first-frame branch; ``deliver`` does the real slot's bookkeeping itself."""
    slot = StreamSlot(real.key, real.stream, real.stall_after_s)
    slot.state = _LIVE
    slot.deliver = deliver
    return slot


class Ticket(StreamSlot):
    """One stream's SUBSCRIBE on the incoming connection. ``Session.set_state`` updates a
    ticket silently: to the listener the stream stays as it is on the old connection."""

    __slots__ = ("real",)

    def __init__(self, real: StreamSlot) -> None:
        super().__init__(real.key, real.stream, real.stall_after_s)
        self.real = real
        self.state = StreamState.SUBSCRIBING


class _Merge:
    """One stream during the overlap (see the module docstring)."""

    __slots__ = (
        "closed_high",
        "draining",
        "dropped",
        "high",
        "new_first",
        "new_last",
        "old_last",
        "old_slot",
        "real",
        "reverting",
        "rot",
        "route",
        "switched",
    )

    def __init__(self, rot: Rotation, route: Route, real: StreamSlot) -> None:
        self.rot, self.route, self.real = rot, route, real
        self.high: Key | None = None  # newest frame delivered during the overlap
        self.closed_high = -1  # newest open time of a close delivered during the overlap
        self.old_last: Key | None = None
        self.new_first: Key | None = None
        self.new_last: Key | None = None
        self.switched = False
        self.reverting = False  # the new connection failed: back to the old one
        self.draining = False  # the new connection was promoted before catching up
        self.dropped = 0
        self.old_slot = _route_slot(real, self.from_old)

    def from_old(self, candle: Candle) -> bool:
        key = frame_key(candle)
        self.old_last = key
        pressure = self._merge(candle, key)
        if self.reverting:
            if self.high is None or key >= self.high:
                self.rot.old.routes[self.route] = self.real
        elif self.new_first is not None:
            self._maybe_switch()
        return pressure

    def from_new(self, candle: Candle) -> bool:
        key = frame_key(candle)
        if self.new_first is None:
            self.new_first = key
        self.new_last = key
        pressure = self._merge(candle, key)
        if self.draining:
            if self.high is None or key >= self.high:
                self.rot.new.routes[self.route] = self.real
        else:
            self._maybe_switch()
        return pressure

    def _merge(self, candle: Candle, key: Key) -> bool:
        if self.high is None or key > self.high:
            self.high = key
        elif not (candle.closed and candle.open_time > self.closed_high):
            self.dropped += 1
            return False
        if candle.closed and candle.open_time > self.closed_high:
            self.closed_high = candle.open_time
        real = self.real
        real.count += 1
        if real.state is not _LIVE:
            self.rot.s.set_state(real, _LIVE)
        return real.deliver(candle)

    def caught_up(self) -> bool:
        """The old connection holds nothing the new one lacks, and vice versa."""
        return (self.new_first is not None and self.old_last is not None
                and self.new_last is not None and self.high is not None
                and self.old_last >= self.new_first and self.new_last >= self.high)

    def _maybe_switch(self) -> None:
        if not self.switched and self.caught_up():
            self.switched = True
            self.rot.old.routes[self.route] = _route_slot(self.real, _drop)
            self.rot.new.routes[self.route] = self.real
            self.rot.switched += 1
            self.rot.old.wake.set()


class Rotation:
    """One make-before-break rotation of ``session``'s connection ``old``; driven by
    :meth:`step` from the session's supervisor loop."""

    def __init__(self, session: Session, old: Link, reason: str, now: float) -> None:
        self.s, self.old, self.reason, self.started = session, old, reason, now
        self.new = Link(session, wake=old.wake)
        self.merges: dict[Route, _Merge] = {}
        self.tickets: dict[Route, Ticket] = {}
        self.switched = 0
        self.deadline: float | None = None
        timeout = session.options.connect_timeout_s
        self.connecting: asyncio.Future[Connection] | None = asyncio.ensure_future(
            connect_within(session.connector, session.url, self.new, timeout))
        self.connecting.add_done_callback(lambda _: old.wake.set())
        log.info("%s: rotating (%s): opening a second connection", session.name, reason)
        session.emit_connection(ConnectionState.CONNECTED, f"rotating: {reason}")

    @property
    def connected(self) -> bool:
        return self.new.conn is not None

    def step(self, now: float) -> float:
        """Advance the rotation; returns how soon it wants to run again (seconds)."""
        s, new = self.s, self.new
        if not self.connected:
            fut = self.connecting
            if fut is None or not fut.done():
                return s.period_s
            self.connecting = None
            exc = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
            if exc is not None:
                self.fail(now, f"cannot open the new connection: {describe(exc)}")
                return s.period_s
            self._attach(fut.result(), now)
        if new.closed_reason is not None:
            self.fail(now, f"the new connection closed: {new.closed_reason}")
            return s.period_s
        opts = s.options
        for rid, (_, sent_at) in new.pending.items():
            if now - sent_at >= opts.ack_timeout_s:
                self.fail(now, f"no reply to SUBSCRIBE id={rid} on the new connection")
                return s.period_s
        while new.to_send and new.pacer.delay(now) == 0.0:
            s.send_subscribe(new, new.to_send.popleft(), now)
        waiting = [m for m in self.merges.values() if not m.switched and self._flowing(m)
                   and self.tickets[m.route].state is not StreamState.REJECTED]
        if not waiting and not new.pending and not new.to_send:
            self.finish(now, "")
            return s.period_s
        assert self.deadline is not None
        if now >= self.deadline:
            self.finish(now, f"{len(waiting)} stream(s) not handed over within "
                             f"{s.handover_timeout_s:.3g} s")
            return s.period_s
        delay = min(s.period_s, self.deadline - now)
        return min(delay, new.pacer.delay(now)) if new.to_send else delay

    def _flowing(self, m: _Merge) -> bool:
        """Must this stream be handed over before the old connection may close?"""
        return m.real.state is _LIVE or m.high is not None

    def _attach(self, conn: Connection, now: float) -> None:
        s, old, new = self.s, self.old, self.new
        new.attach(conn, now)
        self.deadline = now + s.handover_timeout_s
        old_routes = dict(old.routes)
        new_routes: dict[Route, StreamSlot] = {}
        for route, real in s.by_symbol_interval.items():
            if real.state is StreamState.REJECTED:
                continue
            m = _Merge(self, route, real)
            self.merges[route] = m
            self.tickets[route] = Ticket(real)
            old_routes[route] = m.old_slot
            new_routes[route] = _route_slot(real, m.from_new)
        old.routes, new.routes = old_routes, new_routes
        s.queue_subscriptions(new, list(self.tickets.values()))

    def finish(self, now: float, problem: str) -> None:
        """Promote the new connection and close the old one."""
        s, old, new = self.s, self.old, self.new
        s.rotation = None
        late = 0
        new_routes = dict(s.by_symbol_interval)
        for route, m in self.merges.items():
            if m.switched:
                continue
            real, ticket = m.real, self.tickets[route]
            lossless = m.caught_up() or (m.new_first is not None and m.old_last is not None
                                         and m.old_last >= m.new_first)
            if lossless and m.new_last is not None and m.high is not None \
                    and m.new_last < m.high:
                m.draining = True  # drop what the old connection already delivered
                new_routes[route] = _route_slot(real, m.from_new)
            if ticket.state is StreamState.REJECTED:
                s.set_state(real, StreamState.REJECTED, ticket.detail)
            elif self._flowing(m) and not lossless:
                late += 1
                s.set_state(real, StreamState.DISCONNECTED, f"connection rotated: {problem}"
                            if problem else "connection rotated before this stream resumed")
                s.set_state(real, StreamState.SUBSCRIBING)
                if ticket.state is not StreamState.SUBSCRIBING:
                    s.set_state(real, StreamState.SUBSCRIBED)
            elif real.state is StreamState.SUBSCRIBING and \
                    ticket.state is StreamState.SUBSCRIBED:
                s.set_state(real, StreamState.SUBSCRIBED)
        new.routes = new_routes
        old.routes = {route: _route_slot(real, _drop)
                      for route, real in s.by_symbol_interval.items()}
        new.pending = {rid: ([_real(t) for t in slots], at)
                       for rid, (slots, at) in new.pending.items()}
        new.to_send = deque([_real(t) for t in chunk] for chunk in new.to_send)
        dropped = sum(m.dropped for m in self.merges.values())
        s.promote(new, old, now)
        detail = (f"rotated ({self.reason}): {self.switched} of {len(self.merges)} streams "
                  f"handed over without a break in {now - self.started:.3g} s")
        if problem:
            detail += f"; {problem}, {late} reported disconnected"
            log.warning("%s: %s", s.name, detail)
        else:
            log.info("%s: %s (%d duplicate frames dropped)", s.name, detail, dropped)
        s.emit_connection(ConnectionState.CONNECTED, detail)

    def fail(self, now: float, problem: str) -> None:
        """The new connection is unusable: keep the old one and retry later."""
        s, old, new = self.s, self.old, self.new
        s.rotation = None
        for m in self.merges.values():
            m.reverting = True
            if m.switched:
                # the old link dropped this stream since the switch: frames may be missing
                s.set_state(m.real, StreamState.DISCONNECTED, f"rotation failed: {problem}")
                s.set_state(m.real, StreamState.SUBSCRIBED,
                            "still subscribed on the current connection")
                old.routes[m.route] = m.old_slot
            elif m.high is None or (m.old_last is not None and m.old_last >= m.high):
                old.routes[m.route] = m.real
            # else: the wrapper drops what the new connection already delivered, then reverts
        new.routes = {route: _route_slot(real, _drop)
                      for route, real in s.by_symbol_interval.items()}
        delay = s.rotation_failed(new)
        log.warning("%s: rotation (%s) failed: %s; keeping the current connection, retrying in"
                    " %.3g s", s.name, self.reason, problem, delay)
        s.emit_connection(ConnectionState.CONNECTED,
                          f"rotation failed: {problem}; retry in {delay:.3g} s")

    def abandon(self) -> None:
        """The session is stopping or lost the old connection: drop the new one."""
        s, fut = self.s, self.connecting
        s.rotation = None
        self.connecting = None
        self.new.routes = {route: _route_slot(real, _drop)
                           for route, real in s.by_symbol_interval.items()}
        if fut is not None:
            if not fut.done():
                fut.cancel()
            elif not fut.cancelled() and fut.exception() is None:
                fut.result().close()  # connected just now: do not leak the socket
        if self.connected:
            s.close_later(self.new)


def _real(slot: StreamSlot) -> StreamSlot:
    return slot.real if isinstance(slot, Ticket) else slot
