"""One connection of a session: the ``FrameHandler`` with the per-frame hot path.

``on_frame`` is the only code that runs for every kline: decode (one msgspec call in the codec),
one dict lookup for the stream's slot, a counter, and the stream's sink (whose result is the
backpressure signal).
No await, no task, no log, no clock read. The lookup goes through :attr:`Link.routes`, which is
the session's own slot index except while a make-before-break rotation runs two links side by
side: ``rotation.py`` then swaps in per-stream wrappers on both links, so the overlap's
bookkeeping costs nothing outside the overlap. Everything rarer — acks, error frames, pings,
shutdown notices, malformed frames — leaves the hot path through ``_on_other``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from candlekeeper.core.candle import Candle
from candlekeeper.core.events import StreamState
from candlekeeper.transport.backoff import describe
from candlekeeper.transport.base import Connection
from candlekeeper.transport.pacing import pacer_for
from candlekeeper.transport.watchdog import StreamSlot
from candlekeeper.venues.contract import (
    Ack,
    ErrorReply,
    Frame,
    Ignored,
    Malformed,
    Message,
    Pong,
    Reply,
    ServerShutdown,
)

if TYPE_CHECKING:
    from candlekeeper.transport.session import Session

_LIVE = StreamState.LIVE
_SUBSCRIBING = StreamState.SUBSCRIBING


class Link:
    """Connection-scoped state: the socket, requests awaiting a reply, the control budget."""

    def __init__(self, session: Session, wake: asyncio.Event | None = None) -> None:
        self.s = session
        self.conn: Connection | None = None
        self.connected_at: float | None = None
        #: request id -> (slots in that SUBSCRIBE, loop time it was sent)
        self.pending: dict[int, tuple[list[StreamSlot], float]] = {}
        self.to_send: deque[list[StreamSlot]] = deque()
        #: suspects of a dropped connection, sent one at a time after ``to_send``
        self.isolated: deque[list[StreamSlot]] = deque()
        self.pacer = pacer_for(session.codec.spec, session.control_rate,
                               session.options.control_rate_fraction)
        #: data frames that are not klines (klines are counted per stream in ``StreamSlot``
        #: only, so the per-frame path does one counter increment, not two)
        self.messages = 0
        self.control_frames = 0  # pings and pongs
        self.pings = 0
        self.frames_seen = 0
        self.last_frame_at = 0.0
        self.idle_ping_sent = False
        #: loop time our application heartbeat (``codec.heartbeat``) was last sent, and when the
        #: one still waiting for its answer went out (None: none outstanding)
        self.heartbeat_sent_at = 0.0
        self.heartbeat_outstanding: float | None = None
        self.closed_reason: str | None = None
        self.shutdown_notice = False
        self.paused = False
        self.relief: asyncio.Task[None] | None = None
        #: set when the supervisor should look (both links of a rotation share one)
        self.wake = wake if wake is not None else asyncio.Event()
        # hot-path bindings
        self._decode = session.codec.decode
        #: (symbol, interval) -> where this link delivers that stream: the session's slots,
        #: except during a make-before-break rotation (``rotation.py`` swaps the entries)
        self.routes: dict[tuple[str, str], StreamSlot] = session.by_symbol_interval

    def attach(self, conn: Connection, now: float) -> None:
        self.conn = conn
        self.connected_at = self.last_frame_at = now

    def lived(self, now: float) -> float:
        """Seconds this connection has been open (0 if it never opened)."""
        return 0.0 if self.connected_at is None else now - self.connected_at

    # -- FrameHandler -------------------------------------------------------------------------
    def on_frame(self, data: Frame) -> None:
        try:
            msg = self._decode(data)
            if type(msg) is Candle:  # the hot path, inlined (a call costs ~3 % per frame)
                slot = self.routes.get((msg.symbol, msg.interval))
                if slot is None:
                    self.messages += 1
                    self.s.unexpected_candle(msg)
                    return
                slot.count += 1
                if slot.state is not _LIVE:
                    self.s.set_state(slot, _LIVE)
                if slot.deliver(msg):
                    self._pause()
            elif type(msg) is list:  # a frame that carried several messages, oldest first
                for one in msg:
                    if type(one) is Candle:
                        self._candle(one)
                    else:
                        self._on_other(one)
            else:
                self._on_other(msg)  # type: ignore[arg-type]
        except Exception as exc:  # a listener bug must not cost the connection
            self.s.listener_errors += 1
            self.s.ratelog.error("listener", "%s: error while handling a frame: %s",
                                 self.s.name, describe(exc))

    def _candle(self, msg: Candle) -> None:
        slot = self.routes.get((msg.symbol, msg.interval))
        if slot is None:
            self.messages += 1
            self.s.unexpected_candle(msg)
            return
        slot.count += 1
        if slot.state is not _LIVE:
            self.s.set_state(slot, _LIVE)
        if slot.deliver(msg):
            self._pause()

    def on_ping(self, payload: bytes) -> None:
        self.control_frames += 1
        self.pings += 1
        if self.conn is not None and not self.conn.closed:
            self.conn.send_pong(payload)  # RFC 6455: echo the payload (venues check it)
            self.pacer.force(self.s._now())

    def on_pong(self, payload: bytes) -> None:
        self.control_frames += 1

    def on_oversized(self, size: int) -> None:
        s = self.s
        s.oversized += 1
        s.malformed += 1
        s.ratelog.error("oversized", "%s: the venue sent a message of over %d bytes; dropping "
                        "the connection", s.name, size)

    def on_closed(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
        self.wake.set()

    # -- everything that is not a kline ----------------------------------------------------------
    def _on_other(self, msg: Message) -> None:
        s = self.s
        self.messages += 1
        if type(msg) is Ack:
            pending = self.pending.pop(msg.request_id, None)  # type: ignore[arg-type]
            if pending is not None:
                s.isolation.acked(pending[0])
                for slot in pending[0]:
                    if slot.state is _SUBSCRIBING:
                        s.set_state(slot, StreamState.SUBSCRIBED)
        elif type(msg) is ErrorReply:
            self._on_error(msg)
        elif type(msg) is Reply:
            if self.conn is not None and not self.conn.closed:
                self.conn.send_text(msg.payload)
                self.pacer.force(s._now())
        elif type(msg) is Pong:
            self.control_frames += 1
            self.heartbeat_outstanding = None
        elif type(msg) is Malformed:
            s.malformed += 1
            s.ratelog.warning("malformed", "%s: dropped a malformed frame (%s): %r",
                              s.name, msg.reason, msg.snippet)
            if msg.key is not None:
                s.malformed_candle(msg.key)
        elif type(msg) is ServerShutdown:
            self.shutdown_notice = True
            self.wake.set()
        elif type(msg) is not Ignored:
            s.ratelog.warning("unknown", "%s: codec returned an unknown message %r",
                              s.name, type(msg).__name__)

    def _on_error(self, msg: ErrorReply) -> None:
        s = self.s
        s.error_frames += 1
        rid = msg.request_id
        pending = self.pending.pop(rid, None) if isinstance(rid, int) else None
        if pending is None:
            s.ratelog.warning("error-frame", "%s: venue error frame (id=%r): code %d %s",
                              s.name, rid, msg.code, msg.msg)
            return
        slots = pending[0]
        if len(slots) > 1:
            # The venue refuses a whole SUBSCRIBE for one bad name; bisect to isolate it and
            # keep every other stream. Halves go first in the queue, paced like the rest.
            half = len(slots) // 2
            self.to_send.appendleft(slots[half:])
            self.to_send.appendleft(slots[:half])
            s.ratelog.warning("bisect", "%s: venue refused a SUBSCRIBE of %d streams (code %d"
                              " %s); retrying in halves to find the refused stream(s)",
                              s.name, len(slots), msg.code, msg.msg)
            self.wake.set()
            return
        slot = slots[0]
        s.rejected += 1
        s.ratelog.warning(f"rejected:{slot.stream}", "%s: venue rejected stream %s: code %d %s",
                          s.name, slot.stream, msg.code, msg.msg)
        s.set_state(slot, StreamState.REJECTED, f"code {msg.code}: {msg.msg}")

    # -- backpressure -------------------------------------------------------------------------
    def _pause(self) -> None:
        if self.paused or self.conn is None:
            return
        self.paused = True
        self.conn.pause_reading()
        self.relief = asyncio.get_running_loop().create_task(self._relieve())

    async def _relieve(self) -> None:
        try:
            await self.s.listener.relieve()
        except Exception as exc:
            self.s.ratelog.error("relieve", "%s: listener.relieve raised: %s", self.s.name,
                                 describe(exc))
        self.relief = None
        self.paused = False
        self.s.after_resume(self.s._now())
        if self.conn is not None and not self.conn.closed:
            self.conn.resume_reading()
