"""When each Binance kline frame goes out (protocols.md §A.4, §B.2, §E).

One :class:`Pusher` per venue tracks every stream that has at least one subscriber on a
kline-carrying connection, and decides, at each wake-up, which frames are due:

* the forming candle, every ``cadence_s`` of *wall* time (usdm 250 ms, spot 2000 ms), only when
  it changed since the last push and only once the candle has had a trade;
* the ``x:true`` frame, exactly once per candle, ``close_delay_s`` (wall, 0.2–2 s by default,
  fixed per candle by the seed) after the candle's close in *venue* time. Per stream, closed
  frames go out in open-time order and no frame of the next candle precedes them. The delay is
  capped at a quarter of the candle's own wall duration: at speed 1 that changes nothing (a 1m
  candle lasts 60 s), while at a speed-up of 300 (a 1m candle every 0.2 s) an uncapped 2 s delay
  would hold back ten candles and starve the forming updates, which no real stream does.

A payload is encoded once per stream and shared by all its subscribers. The scheduling logic
(:meth:`Pusher.step`) is synchronous and driven by explicit times, so tests can drive it
without sleeping; :meth:`Pusher.run` is the thin loop around it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.core.intervals import align, next_open, prev_open
from candlekeeper.sim.market import Market
from candlekeeper.sim.personality import FrameSink
from candlekeeper.sim.pump import pump
from candlekeeper.sim.venues.binance.frames import combined, kline_payload, text_frame
from candlekeeper.sim.venues.binance.session import is_kline_stream
from candlekeeper.sim.walk import key_of, mix

log = logging.getLogger(__name__)


class StreamState:
    __slots__ = ("cur", "interval", "last", "last_deadline", "name", "name_bytes", "pending",
                 "subscribers", "symbol")

    def __init__(self, name: str, symbol: str, interval: str, cur: int) -> None:
        self.name, self.symbol, self.interval = name, symbol, interval
        self.name_bytes = name.encode()
        self.cur = cur  # open time of the candle being formed
        self.last: Candle | None = None  # last forming candle pushed
        self.last_deadline = 0.0
        self.pending: deque[tuple[float, Candle]] = deque()  # (monotonic deadline, final)
        self.subscribers: set[FrameSink] = set()


class Pusher:
    def __init__(self, market: Market, clock: ScaledClock, *, cadence_s: float,
                 close_delay_s: tuple[float, float] = (0.2, 2.0), seed: int = 1) -> None:
        if not 0 <= close_delay_s[0] <= close_delay_s[1]:
            raise ValueError(f"bad close_delay_s {close_delay_s}")
        self.market, self.clock = market, clock
        self.cadence_s = cadence_s
        self.close_delay_s = close_delay_s
        self._key = key_of(seed, market.venue, "close-delay")
        self.streams: dict[str, StreamState] = {}
        self._next_cadence = 0.0
        self._wake = asyncio.Event()
        self.frames_sent = 0  # frames written, counted per connection
        self.closes_sent = 0  # x:true frames written, counted per connection
        self.errors = 0
        #: set by the fault injector once a frame fault is applied; until then ``_send`` does
        #: not look at ``sink.shaper`` at all (about 18 ns per frame per connection saved)
        self.shaping = False

    # -- subscriptions ----------------------------------------------------------------------
    def subscribe(self, sink: FrameSink, name: str) -> None:
        st = self.streams.get(name)
        if st is None:
            parsed = is_kline_stream(name)
            if parsed is None:
                return
            symbol, interval = parsed
            st = self._new_state(name, symbol, interval, time.monotonic())
            self.streams[name] = st
        st.subscribers.add(sink)
        self._wake.set()

    def unsubscribe(self, sink: FrameSink, name: str) -> None:
        st = self.streams.get(name)
        if st is None:
            return
        st.subscribers.discard(sink)
        if not st.subscribers:
            del self.streams[name]

    def drop(self, sink: FrameSink) -> None:
        for name in [n for n, st in self.streams.items() if sink in st.subscribers]:
            self.unsubscribe(sink, name)

    def _new_state(self, name: str, symbol: str, interval: str, now_mono: float) -> StreamState:
        cur = align(self.clock.time_ms(), interval)
        st = StreamState(name, symbol, interval, cur)
        # the previous candle's x:true may still be due: the exchange sends it to whoever is
        # subscribed at that moment, including a subscriber that just arrived
        prev = prev_open(cur, interval)
        deadline = self.clock.wall_deadline(cur) + self._delay(st, prev)
        final = self.market.bar(symbol, interval, prev)
        if deadline > now_mono and final is not None:
            st.pending.append((deadline, final))
            st.last_deadline = deadline
        return st

    def _delay(self, st: StreamState, open_time: int) -> float:
        lo, hi = self.close_delay_s
        u = mix(self._key ^ key_of(st.name, open_time)) / float(1 << 64)
        cap = self.clock.wall_seconds(next_open(open_time, st.interval) - open_time) / 4
        return min(lo + (hi - lo) * u, cap)

    # -- scheduling -------------------------------------------------------------------------
    def step(self, now_mono: float) -> None:
        """Write every frame due at ``now_mono`` (a ``time.monotonic()`` value)."""
        venue_now = self.clock.time_ms()
        cadence = now_mono >= self._next_cadence
        if cadence:
            self._next_cadence = max(self._next_cadence + self.cadence_s, now_mono)
        for st in list(self.streams.values()):
            self._roll(st, venue_now)
            while st.pending and st.pending[0][0] <= now_mono:
                _, final = st.pending.popleft()
                self._send(st, final, max(venue_now, final.close_time + 1))
                self.closes_sent += len(st.subscribers)
            if cadence and not st.pending:
                c = self.market.forming(st.symbol, st.interval, venue_now)
                if c is not None and c.open_time == st.cur and c != st.last:
                    st.last = c
                    self._send(st, c, venue_now)

    def _roll(self, st: StreamState, venue_now: int) -> None:
        """Queue the x:true frame of every candle that closed since the last look."""
        nxt = next_open(st.cur, st.interval)
        while nxt <= venue_now:
            final = self.market.bar(st.symbol, st.interval, st.cur)
            if final is not None:
                deadline = max(self.clock.wall_deadline(nxt) + self._delay(st, st.cur),
                               st.last_deadline)
                st.last_deadline = deadline
                st.pending.append((deadline, final))
            st.cur, st.last = nxt, None
            nxt = next_open(nxt, st.interval)

    def _send(self, st: StreamState, candle: Candle, event_time: int) -> None:
        payload = kline_payload(candle, event_time)
        raw = wrapped = b""
        if not self.shaping:  # no frame fault was ever applied: the plain loop
            for sink in list(st.subscribers):
                if sink.combined:
                    wrapped = wrapped or text_frame(combined(st.name_bytes, payload))
                    sink.write(wrapped)
                else:
                    raw = raw or text_frame(payload)
                    sink.write(raw)
            self.frames_sent += len(st.subscribers)
            return
        for sink in list(st.subscribers):
            if sink.combined:
                wrapped = frame = wrapped or text_frame(combined(st.name_bytes, payload))
            else:
                raw = frame = raw or text_frame(payload)
            shaper = sink.shaper
            if shaper is None:
                sink.write(frame)
            else:  # a fault plan is shaping this connection's frames
                shaper.kline(frame, st.name, candle)
        self.frames_sent += len(st.subscribers)

    def next_wake(self, now_mono: float) -> float:
        """The next moment something may be due: a cadence tick, a close, a pending x:true."""
        wake = self._next_cadence
        for st in self.streams.values():
            if st.pending and st.pending[0][0] < wake:
                wake = st.pending[0][0]
            boundary = self.clock.wall_deadline(next_open(st.cur, st.interval))
            if boundary < wake:
                wake = boundary
        return max(wake, now_mono)

    @property
    def wake(self) -> asyncio.Event:
        return self._wake

    def after_error(self, now_mono: float) -> None:
        self._next_cadence = now_mono + self.cadence_s

    async def run(self) -> None:
        await pump(self, self.market.venue)
