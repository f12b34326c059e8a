"""Per-connection frame shaping: what a WebSocket fault does to the frames of one connection.

A connection carries ``shaper = None`` until a frame fault targets it, so the push path pays one
attribute test per frame when no fault is active. While a :class:`Shaper` is attached, every
kline frame the pusher writes goes through :meth:`Shaper.kline`, which lets the first active
effect that matches the frame decide its fate, in this precedence: ``stall`` (withheld) >
``missing_close`` (a candle's closing frame dropped) > ``truncated`` (cut JSON instead of the frame)
> ``reorder`` (held back, sent after the stream's next frame) > ``duplicate`` (sent twice).
Only kline frames are shaped; control replies (acks, errors) are not.

The shaper never changes what the market is: it only decides which bytes reach the socket.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Protocol

from candlekeeper.core.candle import Candle
from candlekeeper.sim.faults import Target
from candlekeeper.sim.framing import Framing

#: (kind, fault_id, connection, stream, open_time, detail) -> None
Recorder = Callable[[str, int, int, "str | None", "int | None", str], None]


class Shaped(Protocol):
    """A connection as the shaper sees it."""

    id: int
    shaper: Shaper | None
    #: how this connection's venue frames a payload (plain text, gzip'd binary, ...)
    framing: Framing

    def write(self, data: bytes) -> None: ...


class Effect:
    """One frame fault active on one connection."""

    __slots__ = ("closed_only", "count", "dropped", "fault_id", "fraction", "held", "kind",
                 "suppress", "tail", "target", "until")

    def __init__(self, kind: str, fault_id: int, target: Target, *, until: float,
                 count: int | None, fraction: float | None, closed_only: bool,
                 tail: bool = False) -> None:
        self.kind, self.fault_id, self.target = kind, fault_id, target
        self.until = until  # loop time (monotonic seconds); inf = no time limit
        self.count = count  # hits left; None = unlimited
        self.fraction = fraction
        self.closed_only = closed_only
        self.dropped = 0  # frames withheld by a stall
        self.held: dict[str, tuple[bytes, Candle]] = {}  # reorder: stream -> frame held back
        self.tail = tail  # missing_close: drop the rest of the hit candle, not one frame
        self.suppress: dict[str, int] = {}  # missing_close tail: stream -> open time dropped

    @property
    def spent(self) -> bool:
        return (self.count is not None and self.count <= 0 and not self.held
                and not self.suppress)


class Shaper:
    __slots__ = ("_closing", "_conn", "_record", "_rng", "effects", "pings_off_until")

    def __init__(self, conn: Shaped, record: Recorder, rng: random.Random,
                 closing_name: str = "closing frame") -> None:
        self._conn, self._record, self._rng = conn, record, rng
        self._closing = closing_name  # what the log calls a closing frame on this venue
        self.effects: list[Effect] = []
        self.pings_off_until = 0.0  # loop time; inf = until the connection closes

    # -- management (called by the injector) ----------------------------------------------
    def add(self, effect: Effect) -> None:
        self.effects.append(effect)
        self.effects.sort(key=lambda e: _PRECEDENCE[e.kind])

    def _log(self, kind: str, fault_id: int, stream: str | None, open_time: int | None,
             detail: str) -> None:
        self._record(kind, fault_id, self._conn.id, stream, open_time, detail)

    def pings_off(self, now: float) -> bool:
        return now < self.pings_off_until

    def expire(self, now: float) -> None:
        """Drop effects whose time is up (releasing held frames); detach when idle."""
        for eff in [e for e in self.effects if e.until <= now or e.spent]:
            self._finish(eff)
        self._maybe_detach(now)

    def _finish(self, eff: Effect) -> None:
        self.effects.remove(eff)
        for stream, (frame, candle) in eff.held.items():
            self._conn.write(frame)
            self._log(eff.kind, eff.fault_id, stream, candle.open_time,
                         "held frame released at the fault's end")
        eff.held.clear()
        if eff.kind == "stall":
            self._log("stall", eff.fault_id, None, None,
                         f"stall ended, {eff.dropped} frames withheld")

    def connection_closed(self, reason: str) -> None:
        """The connection ended with frames still held back: they are lost with it (as a frame
        in flight is when a real connection drops), and the log says so."""
        for eff in self.effects:
            for stream, (_frame, candle) in eff.held.items():
                self._log(eff.kind, eff.fault_id, stream, candle.open_time,
                          f"held frame lost: the connection closed ({reason})")
            eff.held.clear()

    def _maybe_detach(self, now: float) -> None:
        if not self.effects and not self.pings_off(now) and self._conn.shaper is self:
            self._conn.shaper = None

    # -- the push path ----------------------------------------------------------------------
    def kline(self, frame: bytes, stream: str, candle: Candle) -> None:
        for eff in self.effects:
            if not eff.target.matches_stream(stream):
                continue
            if eff.suppress and stream in eff.suppress:
                if eff.suppress[stream] == candle.open_time:
                    return  # missing_close tail: the rest of this candle is dropped
                del eff.suppress[stream]  # the candle rolled: this frame is a new one
                if eff.spent:
                    self._finish(eff)
                    self._maybe_detach(time.monotonic())
                    self._conn.write(frame)
                    return
            if eff.held and stream in eff.held:
                held, held_candle = eff.held.pop(stream)
                self._conn.write(frame)
                self._conn.write(held)
                self._log("reorder", eff.fault_id, stream, held_candle.open_time,
                             f"{self._what(held_candle)} sent after the next frame (open_time "
                             f"{candle.open_time}, x={str(candle.closed).lower()})")
                if eff.spent:
                    self._finish(eff)
                    self._maybe_detach(time.monotonic())
                return
            if eff.closed_only and not candle.closed:
                continue
            if eff.kind == "stall":
                eff.dropped += 1
                return
            if eff.count is not None and eff.count <= 0:
                continue
            if eff.fraction is not None and self._rng.random() >= eff.fraction:
                continue
            if eff.kind == "missing_close" and not candle.closed and not eff.tail:
                continue
            if eff.count is not None:
                eff.count -= 1
            self._apply(eff, frame, stream, candle)
            if eff.spent:
                self._finish(eff)
                self._maybe_detach(time.monotonic())
            return
        self._conn.write(frame)

    def _what(self, candle: Candle) -> str:
        """A closing frame, in the venue's terms (``Personality.closing_frame_name``): a frame
        with a closed flag, or, for a venue without one, the push its pusher predicts to be a
        candle's last (marked ``closed`` for the shaper only; nothing of it reaches the wire)."""
        return self._closing if candle.closed else "update"

    def _apply(self, eff: Effect, frame: bytes, stream: str, candle: Candle) -> None:
        kind, conn = eff.kind, self._conn
        if kind == "missing_close":
            if eff.tail:
                eff.suppress[stream] = candle.open_time
                self._log(kind, eff.fault_id, stream, candle.open_time,
                          "every frame of the candle dropped from here to its close")
            else:
                self._log(kind, eff.fault_id, stream, candle.open_time,
                          f"{self._what(candle)} dropped")
        elif kind == "truncated":
            payload = conn.framing.payload(frame)
            cut = self._rng.randint(1, max(1, len(payload) - 2))
            conn.write(conn.framing.frame(payload[:cut]))
            self._log(kind, eff.fault_id, stream, candle.open_time,
                         f"{self._what(candle)} cut to {cut} of {len(payload)} bytes (frame lost)")
        elif kind == "reorder":
            eff.held[stream] = (frame, candle)
            self._log(kind, eff.fault_id, stream, candle.open_time,
                      f"{self._what(candle)} held back until the stream's next frame")
        elif kind == "duplicate":
            conn.write(frame)
            conn.write(frame)
            self._log(kind, eff.fault_id, stream, candle.open_time,
                         f"{self._what(candle)} sent twice")


_PRECEDENCE = {"stall": 0, "missing_close": 1, "truncated": 2, "reorder": 3, "duplicate": 4}
INF = math.inf
