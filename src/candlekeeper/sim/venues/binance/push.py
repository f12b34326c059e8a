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

Cost at a venue's whole universe (7,500 streams at speed 1): a tick asks the market one
activity stamp per *symbol* and computes forming candles only for symbols that traded since the
last tick (a quiet symbol's streams cost nothing); closing frames wait in one heap and candle
boundaries are kept per interval, so a wake-up never walks every stream. A payload is encoded
once per stream and shared by all its subscribers. The scheduling logic
(:meth:`Pusher.step`) is synchronous and driven by explicit times, so tests can drive it
without sleeping; :meth:`Pusher.run` is the thin loop around it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
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


class SymbolState:
    """The subscribed streams of one symbol, and the market's activity stamp they were last
    brought up to date with (``Market.activity``): an unchanged stamp means no forming candle
    of the symbol changed, so a quiet symbol costs one call per tick, not one per stream."""

    __slots__ = ("dirty", "stamp", "streams", "symbol")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.streams: dict[str, StreamState] = {}
        self.stamp: tuple[int, int] | None = None
        self.dirty = True  # look at every stream at the next tick whatever the stamp


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
        self._symbols: dict[str, SymbolState] = {}
        #: per interval: its streams, and the venue time its current candles close
        self._by_interval: dict[str, dict[str, StreamState]] = {}
        self._rolls: dict[str, int] = {}
        #: (deadline, seq, stream) for every queued closing frame; a stream's own deque keeps
        #: its order, the heap only says when to look at it
        self._due: list[tuple[float, int, StreamState]] = []
        self._seq = itertools.count()
        self._next_cadence = 0.0
        #: frames of the current step per connection, written at its end
        self._batch: dict[FrameSink, list[bytes]] = {}
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
            sym = self._symbols.get(symbol)
            if sym is None:
                sym = self._symbols[symbol] = SymbolState(symbol)
            sym.streams[name] = st
            self._by_interval.setdefault(interval, {})[name] = st
            roll = next_open(st.cur, interval)
            self._rolls[interval] = min(self._rolls.get(interval, roll), roll)
        self._symbols[st.symbol].dirty = True
        st.subscribers.add(sink)
        self._wake.set()

    def unsubscribe(self, sink: FrameSink, name: str) -> None:
        st = self.streams.get(name)
        if st is None:
            return
        st.subscribers.discard(sink)
        if not st.subscribers:
            del self.streams[name]
            sym = self._symbols[st.symbol]
            del sym.streams[name]
            if not sym.streams:
                del self._symbols[st.symbol]
            same = self._by_interval[st.interval]
            del same[name]
            if not same:
                del self._by_interval[st.interval], self._rolls[st.interval]

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
            self._queue(st, deadline, final)
        return st

    def _queue(self, st: StreamState, deadline: float, final: Candle) -> None:
        st.pending.append((deadline, final))
        st.last_deadline = deadline
        heapq.heappush(self._due, (deadline, next(self._seq), st))

    def _delay(self, st: StreamState, open_time: int) -> float:
        lo, hi = self.close_delay_s
        u = mix(self._key ^ key_of(st.name, open_time)) / float(1 << 64)
        cap = self.clock.wall_seconds(next_open(open_time, st.interval) - open_time) / 4
        return min(lo + (hi - lo) * u, cap)

    # -- scheduling -------------------------------------------------------------------------
    def step(self, now_mono: float) -> None:
        """Write every frame due at ``now_mono`` (a ``time.monotonic()`` value). A
        connection's frames of one step go out in one write (in order): at thousands of frames
        a second, one socket send per frame was the pusher's largest cost."""
        try:
            self._step(now_mono)
        finally:
            batch, self._batch = self._batch, {}
            for sink, frames in batch.items():
                sink.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def _step(self, now_mono: float) -> None:
        venue_now = self.clock.time_ms()
        for interval, boundary in list(self._rolls.items()):
            if boundary <= venue_now:
                for st in self._by_interval[interval].values():
                    self._roll(st, venue_now)
                self._rolls[interval] = next_open(align(venue_now, interval), interval)
        due = self._due
        while due and due[0][0] <= now_mono:
            st = heapq.heappop(due)[2]
            while st.pending and st.pending[0][0] <= now_mono:
                _, final = st.pending.popleft()
                if st.subscribers:
                    self._send(st, final, max(venue_now, final.close_time + 1))
                    self.closes_sent += len(st.subscribers)
            if not st.pending and st.symbol in self._symbols:
                self._symbols[st.symbol].dirty = True  # its forming candle may go out now
        if now_mono < self._next_cadence:
            return
        self._next_cadence = max(self._next_cadence + self.cadence_s, now_mono)
        market = self.market
        for sym in self._symbols.values():
            stamp = market.activity(sym.symbol, venue_now)
            if stamp == sym.stamp and not sym.dirty:
                continue  # no trade since the last look: no candle of the symbol changed
            sym.stamp, sym.dirty = stamp, False
            for st in sym.streams.values():
                if st.pending:
                    continue  # the closing frame goes first; marked dirty when it has
                c = market.forming(st.symbol, st.interval, venue_now)
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
                self._queue(st, deadline, final)
            st.cur, st.last = nxt, None
            nxt = next_open(nxt, st.interval)

    def _send(self, st: StreamState, candle: Candle, event_time: int) -> None:
        payload = kline_payload(candle, event_time)
        raw = wrapped = b""
        if not self.shaping:  # no frame fault was ever applied: the plain loop
            batch = self._batch
            for sink in st.subscribers:
                if sink.combined:
                    wrapped = wrapped or text_frame(combined(st.name_bytes, payload))
                    frame = wrapped
                else:
                    raw = frame = raw or text_frame(payload)
                queued = batch.get(sink)
                if queued is None:
                    batch[sink] = [frame]
                else:
                    queued.append(frame)
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
        if self._due and self._due[0][0] < wake:
            wake = self._due[0][0]
        for boundary in self._rolls.values():
            at = self.clock.wall_deadline(boundary)
            if at < wake:
                wake = at
        return max(wake, now_mono)

    @property
    def wake(self) -> asyncio.Event:
        return self._wake

    def after_error(self, now_mono: float) -> None:
        self._next_cadence = now_mono + self.cadence_s

    async def run(self) -> None:
        await pump(self, self.market.venue)
