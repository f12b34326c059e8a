"""One venue-agnostic WebSocket session: connect → subscribe (paced) → confirm acks → read.

Everything venue-specific comes from the ``VenueCodec`` (URLs, frames, replies) and its
``VenueSpec`` (limits); the session never branches on the venue. Its structure:

- :class:`Session.run` is the reconnect loop: pure policy from ``backoff.py`` (delays and
  ``classify``), one clear log line per failure, a ``ConnectionStatus`` on every change.
- :class:`_Link` is one connection. It is the connector's ``FrameHandler``: frames arrive as
  synchronous callbacks, are decoded and handed to the listener without any await, task or log
  on the hot path (counters only).
- :meth:`Session._serve` is a small supervisor loop per connection that wakes on events or a
  periodic tick: it sends queued SUBSCRIBEs under the venue's control-message rate, times out
  missing acks, runs the stream and connection watchdogs, and decides to rotate.

A proactive replacement (server shutdown notice, ``rotate_after_s``) is make-before-break: a
:class:`~candlekeeper.transport.rotation.Rotation` runs a second ``Link`` beside the current one
and hands the streams over one by one (``rotation.py``). Only a *lost* connection is a break:
then every stream goes DISCONNECTED → SUBSCRIBING → SUBSCRIBED → LIVE, which tells the
gap-filler to backfill.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import Clock
from candlekeeper.core.events import ConnectionState, ConnectionStatus, StreamState, StreamStatus
from candlekeeper.core.ratelog import RateLimitedLog
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.transport.backoff import Verdict, backoff_delays, classify, describe
from candlekeeper.transport.base import ConnectError, Connection, ConnectionLost, Connector
from candlekeeper.transport.connect_gate import connect_within
from candlekeeper.transport.isolation import DropIsolation
from candlekeeper.transport.keepalive import keep_alive
from candlekeeper.transport.link import Link
from candlekeeper.transport.options import SessionStats, StreamListener, TransportOptions
from candlekeeper.transport.rotation import Rotation, Ticket
from candlekeeper.transport.watchdog import (
    StreamSlot,
    check,
    flow_after_s,
    make_slot,
    min_stall_after_s,
)
from candlekeeper.venues.contract import StreamCodec

log = logging.getLogger("candlekeeper.transport")

_WATCHED = (StreamState.SUBSCRIBED, StreamState.LIVE)


class Session:
    """One connection's worth of streams, kept subscribed for as long as :meth:`run` runs."""

    def __init__(self, name: str, codec: StreamCodec, keys: Sequence[StreamKey],
                 listener: StreamListener, *, ws_base: str, clock: Clock,
                 options: TransportOptions, connector: Connector) -> None:
        self.name = name
        self.codec = codec
        self.listener = listener
        self.clock = clock
        self.options = options
        self.connector = connector
        self.url = codec.connect_url(ws_base, [])
        spec = codec.spec
        self.slots = [make_slot(k, codec.stream_name(k), clock, options.stall_grace_ms,
                                spec.update_cadence_ms, spec.close_frame_max_delay_ms,
                                spec.pushes_when_quiet)
                      for k in keys]
        for slot in self.slots:
            slot.deliver = listener.stream_sink(slot.key)
        #: hot-path index: (symbol, interval) of a decoded Candle -> its slot
        self.by_symbol_interval = {(s.key.symbol, s.key.interval): s for s in self.slots}
        self.period_s = options.watchdog_period_s or max(
            0.005, min(0.5, min_stall_after_s(self.slots) / 8))
        self.control_rate = codec.spec.control_messages_per_second * options.control_rate_fraction
        #: a trading stream sends within a minute (a quiet one within its stall threshold, which
        #: may be a day: too long to hold two connections), and the SUBSCRIBE needs its ack
        flowing_s = flow_after_s(clock, options.stall_grace_ms, spec.update_cadence_ms,
                                 spec.close_frame_max_delay_ms)
        self.handover_timeout_s = options.handover_timeout_s or (
            min(max((s.stall_after_s for s in self.slots), default=60.0), flowing_s)
            + options.ack_timeout_s)
        self.ratelog = RateLimitedLog(log, options.log_period_s)
        self.state = ConnectionState.CLOSED
        self.reconnects = 0
        self.rotations = 0
        self.rotation: Rotation | None = None
        self._rotation_delays = self._delays()
        self._rotate_not_before = 0.0
        self._closing: set[asyncio.Task[None]] = set()
        self.last_error = ""
        # totals of finished links; the live link's counters are added in stats()
        self.messages = self.malformed = self.error_frames = self.rejected = 0
        self.unexpected = self.pings = self.listener_errors = 0
        #: messages over the connector's size limit (each cost its connection)
        self.oversized = 0
        self._next_id = 1
        #: streams whose SUBSCRIBE may make the venue drop the connection (``isolation.py``)
        self.isolation = DropIsolation()
        self._link: Link | None = None
        self._connected_at: float | None = None
        self._last_frame_at: float | None = None
        self._connect_task: asyncio.Future[Connection] | None = None
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._done: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        """Keep the streams subscribed until :meth:`stop`. Network failures never escape; a
        configuration error (``classify`` → FATAL) is raised after one error line."""
        if self._done is not None:
            raise RuntimeError(f"session {self.name} is already running")
        self._loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        delays = self._delays()
        try:
            if not self._stopping:
                self.emit_connection(ConnectionState.CONNECTING)
            while not self._stopping:
                link = Link(self)
                try:
                    await self._attempt(link)
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if self._stopping and task is not None and task.cancelling() == 0:
                        break  # stop() cancelled the connect, not our caller
                    raise
                except Exception as exc:
                    reason = describe(exc)
                    self.last_error = reason
                    if classify(exc) is Verdict.FATAL:
                        log.error("%s: giving up: %s", self.name, reason)
                        raise
                    if link.lived(self._now()) >= self.options.healthy_after_s:
                        delays = self._delays()
                    delay = next(delays)
                    log.warning("%s: %s; reconnecting in %.3g s", self.name, reason, delay)
                    self._reconnecting(f"{reason}; retry in {delay:.3g} s")
                    await self._sleep(delay)
                    continue
                break  # _attempt returns only when stopping
        finally:
            self._disconnect_streams("stopped" if self._stopping else self.last_error)
            if self._closing:
                await asyncio.gather(*self._closing, return_exceptions=True)
            self.emit_connection(ConnectionState.CLOSED, self.last_error)
            self._done.set()

    async def stop(self) -> None:
        """Close the connection promptly and make :meth:`run` return. Idempotent."""
        self._stopping = True
        self._stop_event.set()
        if self._connect_task is not None:
            self._connect_task.cancel()
        if self._link is not None:
            self._link.wake.set()
        if self._done is not None:
            await self._done.wait()

    # -- one connection -----------------------------------------------------------------------
    async def _attempt(self, link: Link) -> None:
        """Open, serve (rotating as needed) and close one connection. Returns when stopping;
        raises when the connection fails or breaks."""
        timeout = self.options.connect_timeout_s
        self._connect_task = asyncio.ensure_future(
            connect_within(self.connector, self.url, link, timeout))
        try:
            conn = await self._connect_task
        except TimeoutError as exc:
            raise ConnectError(f"cannot connect to {self.url}: no answer within {timeout:g} s") \
                from exc
        finally:
            self._connect_task = None
        link.attach(conn, self._now())
        self._link = link
        self._connected_at = self._now()
        self._rotate_not_before = 0.0
        try:
            self.emit_connection(ConnectionState.CONNECTED)
            return await self._serve(link)
        finally:
            if self.rotation is not None:
                self.rotation.abandon()
            current = self._link or link  # a rotation may have replaced the first link
            self._link = None
            self._connected_at = None
            self._absorb(current)
            await self._teardown(current)

    async def _serve(self, link: Link) -> None:
        """Serve the connection (and the ones rotations replace it with) until stopping;
        raises ConnectionLost when it breaks."""
        opts = self.options
        wanted = [s for s in self.slots if s.state is not StreamState.REJECTED]
        for slot in wanted:
            self.set_state(slot, StreamState.SUBSCRIBING)
        normal, suspects = self.isolation.split(wanted)
        self.queue_subscriptions(link, normal)
        link.isolated.extend([slot] for slot in suspects)
        while True:
            if self._stopping:
                return
            now = self._now()
            rot = self.rotation
            if link.closed_reason is not None:
                if rot is None or not rot.connected:
                    self._isolate(link, now)
                    raise ConnectionLost(link.closed_reason)
                rot.finish(now, f"the old connection closed early ({link.closed_reason})")
            elif rot is None:
                reason = self._rotation_due(link, now)
                if reason is not None:
                    self.rotation = Rotation(self, link, reason, now)
            timeout = self.period_s
            if self.rotation is not None:
                timeout = self.rotation.step(now)
            link = self._link or link  # a finished rotation promoted the new connection
            while link.to_send and link.pacer.delay(now) == 0.0:
                self.send_subscribe(link, link.to_send.popleft(), now)
            if (link.isolated and not link.to_send and not link.pending
                    and link.pacer.delay(now) == 0.0):  # a suspect alone in flight
                self.send_subscribe(link, link.isolated.popleft(), now)
            for rid, (slots, sent_at) in link.pending.items():
                if now - sent_at >= opts.ack_timeout_s:
                    raise ConnectionLost(f"no reply to SUBSCRIBE id={rid} ({len(slots)} streams)"
                                         f" within {opts.ack_timeout_s:g} s")
            if not link.paused:
                self._check_idle(link, now)
                self._check_streams(now)
            if link.to_send:
                timeout = min(timeout, link.pacer.delay(now))
            link.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await link.wake.wait()

    def _rotation_due(self, link: Link, now: float) -> str | None:
        if now < self._rotate_not_before:
            return None
        if link.shutdown_notice:
            return "the venue announced it will close this connection"
        after = self.options.rotate_after_s
        if after is not None and link.lived(now) >= after:
            return f"connection open for {link.lived(now):.6g} s, rotate_after_s={after:g}"
        return None

    def _isolate(self, link: Link, now: float) -> None:
        """The venue dropped the connection: was a SUBSCRIBE in flight the cause?"""
        culprit = self.isolation.on_break(link.pending.values(), now)
        if culprit is None:
            return
        self.rejected += 1
        self.ratelog.warning(f"rejected:{culprit.stream}", "%s: venue rejected stream %s: it "
                             "drops the connection each time it is subscribed (unknown to the "
                             "venue?); the other streams carry on", self.name, culprit.stream)
        self.set_state(culprit, StreamState.REJECTED,
                       "the venue drops the connection on its SUBSCRIBE")

    def queue_subscriptions(self, link: Link, slots: Sequence[StreamSlot]) -> None:
        chunk = self.codec.spec.max_streams_per_subscribe
        for i in range(0, len(slots), chunk):
            link.to_send.append(list(slots[i:i + chunk]))

    def promote(self, new: Link, old: Link, now: float) -> None:
        """A rotation finished: ``new`` is the connection now; ``old`` is closed behind it."""
        self._link = new
        self._connected_at = new.connected_at
        self.rotations += 1
        self._rotation_delays = self._delays()
        self._absorb(old)
        self.close_later(old)

    def rotation_failed(self, new: Link) -> float:
        """A rotation's new connection is unusable; returns the delay before the next try."""
        delay = next(self._rotation_delays)
        self._rotate_not_before = self._now() + delay
        self._absorb(new)
        self.close_later(new)
        return delay

    def close_later(self, link: Link) -> None:
        """Close ``link`` without holding up the supervisor; ``run`` awaits it at the end."""
        task = asyncio.get_running_loop().create_task(self._teardown(link))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def send_subscribe(self, link: Link, slots: list[StreamSlot], now: float) -> None:
        rid = self._next_id
        self._next_id += 1
        assert link.conn is not None
        link.conn.send_text(self.codec.subscribe([s.stream for s in slots], rid))
        link.pacer.take(now)
        link.pending[rid] = (slots, now)

    def _check_idle(self, link: Link, now: float) -> None:
        """Keep the connection alive and notice when it is dead (``keepalive.py``)."""
        frames = link.messages + link.control_frames + self.kline_frames()
        if frames != link.frames_seen:
            link.frames_seen = frames
            link.last_frame_at = self._last_frame_at = now
            link.idle_ping_sent = False
        keep_alive(link, now, self.codec.heartbeat, self.options)

    def _check_streams(self, now: float) -> None:
        for slot in self.slots:
            new = check(slot, now)
            if new is not None:
                what = "no first message" if new is StreamState.SILENT else "no message"
                self.set_state(slot, new, f"{what} for {now - slot.since_wall:.1f} s "
                                          f"(threshold {slot.stall_after_s:.3g} s)")

    def after_resume(self, now: float) -> None:
        """Reading was paused for backpressure: silence in that time is ours, not the venue's."""
        for slot in self.slots:
            if slot.state in _WATCHED:
                slot.since_wall = max(slot.since_wall, now)
        if self._link is not None:
            self._link.last_frame_at = now

    async def _teardown(self, link: Link) -> None:
        if link.relief is not None:
            link.relief.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await link.relief
        if link.conn is not None:
            link.conn.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.close_timeout_s):
                    await link.conn.wait_closed()

    def _absorb(self, link: Link) -> None:
        self.messages += link.messages
        self.pings += link.pings
        link.messages = link.pings = 0

    # -- state and events ---------------------------------------------------------------------
    def set_state(self, slot: StreamSlot, state: StreamState, detail: str = "") -> None:
        slot.state = state
        slot.detail = detail
        slot.since_wall = self._now()
        if type(slot) is Ticket:  # a rotation's subscription: not the stream's state
            return
        status = StreamStatus(slot.key, state, detail, self.clock.time_ms())
        try:
            self.listener.on_stream_status(status)
        except Exception as exc:
            self.ratelog.error("status", "%s: listener.on_stream_status raised: %s",
                               self.name, describe(exc))

    def emit_connection(self, state: ConnectionState, detail: str = "") -> None:
        self.state = state
        status = ConnectionStatus(self.name, state, len(self.slots), detail, self.reconnects,
                                  self.clock.time_ms())
        try:
            self.listener.on_connection_status(status)
        except Exception as exc:
            self.ratelog.error("status", "%s: listener.on_connection_status raised: %s",
                               self.name, describe(exc))

    def _reconnecting(self, reason: str) -> None:
        self.reconnects += 1
        self._disconnect_streams(reason)
        self.emit_connection(ConnectionState.RECONNECTING, reason)

    def _disconnect_streams(self, reason: str) -> None:
        for slot in self.slots:
            if slot.state not in (StreamState.REJECTED, StreamState.DISCONNECTED):
                self.set_state(slot, StreamState.DISCONNECTED, reason)

    # -- helpers ------------------------------------------------------------------------------
    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _delays(self) -> Iterator[float]:
        o = self.options
        return backoff_delays(o.backoff_initial_s, o.backoff_factor, o.backoff_max_s,
                              o.backoff_jitter)

    async def _sleep(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._stop_event.wait()

    def malformed_candle(self, key: StreamKey) -> None:
        """A frame of ``key``'s stream was dropped as malformed: the listener fetches the
        candle another way (REST), so the series keeps no hole."""
        try:
            self.listener.on_malformed(key)
        except Exception as exc:
            self.ratelog.error("status", "%s: listener.on_malformed raised: %s", self.name,
                               describe(exc))

    def unexpected_candle(self, candle: Candle) -> None:
        self.unexpected += 1
        self.ratelog.warning("unexpected", "%s: dropped a kline for %s:%s, which this connection"
                             " did not subscribe", self.name, candle.symbol, candle.interval)

    def kline_frames(self) -> int:
        """Kline frames received on this session, ever (summed from the per-stream counters)."""
        return sum(slot.count for slot in self.slots)

    def stats(self) -> SessionStats:
        link = self._link
        states: dict[str, int] = {}
        for slot in self.slots:
            states[slot.state.value] = states.get(slot.state.value, 0) + 1
        return SessionStats(
            name=self.name, url=self.url, streams=len(self.slots), state=self.state,
            reconnects=self.reconnects,
            messages=self.messages + (link.messages if link else 0) + self.kline_frames(),
            malformed=self.malformed, error_frames=self.error_frames, rejected=self.rejected,
            unexpected=self.unexpected, pings=self.pings + (link.pings if link else 0),
            oversized=self.oversized,
            listener_errors=self.listener_errors, rotations=self.rotations,
            last_message_monotonic=self._last_frame_at,
            connected_since_monotonic=self._connected_at,
            last_error=self.last_error, stream_states=states,
        )

