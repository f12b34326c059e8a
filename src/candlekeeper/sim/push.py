"""When kline pushes go out, for every simulated venue: one pusher, the venue's rules as data.

A venue differs from another in two things only, and its ``sim/venues/<venue>/push.py`` says
just those:

* **how a push is rendered** (:class:`Wire`): which stream names carry klines, the payload of
  one push, the frame around it, the wrapper of a combined stream, and whether a closing
  frame also carries the next candle;
* **when pushes go out** (:class:`Timing`), in one of two families:

  - *a venue with a closed flag* (``close_delay_s`` set): the forming candle every
    ``cadence_s`` of wall time, only when it changed and once it has had a trade; then exactly
    one closing frame per candle, ``close_delay_s`` (wall, fixed per candle by the
    seed) after its close in venue time. Per stream, closing frames go out in open-time order
    and no frame of the next candle precedes them. The delay is capped at a quarter of the
    candle's wall duration: at a speed-up of 300 (a 1m candle every 0.2 s) an uncapped 2 s
    delay would hold back ten candles, which no real stream does;
  - *a venue without one* (``close_delay_s=None``): the current candle of every stream on a
    fixed tick, whether or not it changed. With ``stale_last_push=True``
    (what the exchanges do) the last push of a candle is from up to one tick before its close
    and may not hold its final values; ``False`` also sends each candle's final values at its
    close, before the next candle's first push (for tests that want the WebSocket alone to be
    exact). For the fault shaper (``sim.shaper``) the push predicted to be a candle's last
    (the next tick falls after its close), or the final push, is marked ``closed``: the frame
    a ``missing_close`` fault drops. Nothing of the mark reaches the wire.

Cost at a venue's whole universe (7,500 streams at speed 1): a closed-flag tick asks the market
one activity stamp per *symbol* and computes forming candles only for symbols that traded since
the last tick (a quiet symbol's streams cost nothing); closing frames wait in one heap and
candle boundaries are kept per interval, so a wake-up never walks every stream. A payload is
rendered and framed once per stream and push and shared by all its subscribers, and a
connection's frames of one step go out in one socket write. :meth:`KlinePusher.step` is
synchronous and driven by explicit times, so tests can drive it without sleeping;
:meth:`KlinePusher.run` is the loop around it (``sim.pump``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.core.intervals import align, next_open, prev_open
from candlekeeper.sim.market import Market
from candlekeeper.sim.personality import FrameSink
from candlekeeper.sim.pump import pump
from candlekeeper.sim.walk import key_of, mix

Render = Callable[[Sequence[Candle], int], bytes]
"""The payload of one push of one stream, from its candles and the event time (venue ms).
More than one candle only where the venue ships a closing candle and the next one together;
a candle's ``closed`` is the venue's closed flag (always False on a forming candle)."""


class Wire(NamedTuple):
    """How a venue's pushes look on the wire."""

    #: stream name -> (canonical symbol, interval, how its pushes are rendered); None when the
    #: name is no kline stream
    parse: Callable[[str], tuple[str, str, Render] | None]
    #: payload -> the complete WebSocket frame (``Framing.frame``)
    frame: Callable[[bytes], bytes]
    #: (stream name, payload) -> the payload a *combined* connection gets; None: the venue has
    #: one form only
    wrap: Callable[[bytes, bytes], bytes] | None = None
    #: does the closing frame of this final candle also carry the next candle as it stands?
    #: None: never
    pairs_next: Callable[[Candle], bool] | None = None


class Timing(NamedTuple):
    """When a venue's pushes go out (see the module docstring for the two families)."""

    cadence_s: float  # wall seconds between forming-candle ticks
    #: a venue with a closed flag: (lo, hi) wall seconds between a candle's close and its
    #: closing frame; None: a venue without one, which pushes every stream on every tick
    close_delay_s: tuple[float, float] | None
    #: a venue without a closed flag: True: the last push of a candle predates its close;
    #: False: the final values also go out at the close
    stale_last_push: bool = True


def _unrendered(candles: Sequence[Candle], event_time: int) -> bytes:
    raise TypeError("a Topic built without a Render cannot be pushed")  # tests build bare ones


class Topic:
    """One subscribed stream."""

    __slots__ = ("cur", "interval", "last", "last_deadline", "name", "name_bytes", "pending",
                 "render", "subscribers", "symbol")

    def __init__(self, name: str, symbol: str, interval: str, cur: int,
                 render: Render = _unrendered) -> None:
        self.name, self.symbol, self.interval = name, symbol, interval
        self.name_bytes = name.encode()
        self.render = render
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
        self.streams: dict[str, Topic] = {}
        self.stamp: tuple[int, int] | None = None
        self.dirty = True  # look at every stream at the next tick whatever the stamp


class KlinePusher:
    """Tracks every stream with at least one subscriber on a kline-carrying connection and, at
    each wake-up, writes what is due (the ``VenuePusher`` of every personality)."""

    def __init__(self, market: Market, clock: ScaledClock, wire: Wire, timing: Timing, *,
                 seed: int = 1) -> None:
        if not timing.cadence_s > 0:
            raise ValueError(f"bad push cadence {timing.cadence_s}")
        delay = timing.close_delay_s
        if delay is not None and not 0 <= delay[0] <= delay[1]:
            raise ValueError(f"bad close_delay_s {delay}")
        self.market, self.clock = market, clock
        self.cadence_s = timing.cadence_s
        self.close_delay_s = delay
        self._parse, self._frame, self._wrap = wire.parse, wire.frame, wire.wrap
        self._pairs_next = wire.pairs_next
        #: no closed flag: every stream on every tick, changed or not
        self._every_tick = delay is None
        #: no closed flag: the push before the close is marked for the shaper
        self._marks_last = delay is None and timing.stale_last_push
        #: no closed flag: each final candle goes out at its close
        self._final_at_close = delay is None and not timing.stale_last_push
        self._key = key_of(seed, market.venue, "close-delay")
        self.streams: dict[str, Topic] = {}
        self._symbols: dict[str, SymbolState] = {}
        #: per interval: its streams, and the venue time its current candles close
        self._by_interval: dict[str, dict[str, Topic]] = {}
        self._rolls: dict[str, int] = {}
        #: (deadline, seq, stream) for every queued closing frame; a stream's own deque keeps
        #: its order, the heap only says when to look at it
        self._due: list[tuple[float, int, Topic]] = []
        self._seq = itertools.count()
        self._next_cadence = 0.0
        #: frames of the current step per connection, written at its end
        self._batch: dict[FrameSink, list[bytes]] = {}
        self._wake = asyncio.Event()
        self.frames_sent = 0  # frames written, counted per connection
        self.closes_sent = 0  # closing (or final-value) frames written, counted per connection
        self.errors = 0
        #: set by the fault injector once a frame fault is applied; until then ``_send`` does
        #: not look at ``sink.shaper`` at all (about 18 ns per frame per connection saved)
        self.shaping = False

    # -- subscriptions ----------------------------------------------------------------------
    def subscribe(self, sink: FrameSink, name: str) -> None:
        st = self.streams.get(name)
        if st is None:
            parsed = self._parse(name)
            if parsed is None or not self.market.has_stream(parsed[0], parsed[1]):
                return  # nothing would ever be pushed on it
            st = self._add(name, *parsed)
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

    def _add(self, name: str, symbol: str, interval: str, render: Render) -> Topic:
        cur = align(self.clock.time_ms(), interval)
        st = self.streams[name] = Topic(name, symbol, interval, cur, render)
        if self.close_delay_s is not None:
            # the previous candle's closing frame may still be due: the exchange sends it to
            # whoever is subscribed at that moment, including a subscriber that just arrived
            prev = prev_open(cur, interval)
            deadline = self.clock.wall_deadline(cur) + self._delay(st, prev)
            final = self.market.bar(symbol, interval, prev)
            if deadline > time.monotonic() and final is not None:
                self._queue(st, deadline, final)
        sym = self._symbols.get(symbol)
        if sym is None:
            sym = self._symbols[symbol] = SymbolState(symbol)
        sym.streams[name] = st
        self._by_interval.setdefault(interval, {})[name] = st
        roll = next_open(cur, interval)
        self._rolls[interval] = min(self._rolls.get(interval, roll), roll)
        return st

    def _queue(self, st: Topic, deadline: float, final: Candle) -> None:
        st.pending.append((deadline, final))
        st.last_deadline = deadline
        heapq.heappush(self._due, (deadline, next(self._seq), st))

    def _delay(self, st: Topic, open_time: int) -> float:
        """Wall seconds between the close of ``st``'s candle opening at ``open_time`` and its
        closing frame: fixed per candle by the seed, capped at a quarter of the candle."""
        lo, hi = self.close_delay_s or (0.0, 0.0)
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
        if self._every_tick:
            self._step_every(now_mono, venue_now)
            return
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
                    self._close(st, final, venue_now)
            if not st.pending and st.symbol in self._symbols:
                self._symbols[st.symbol].dirty = True  # its forming candle may go out now
        if now_mono < self._next_cadence:
            return
        self._next_cadence = max(self._next_cadence + self.cadence_s, now_mono)
        self._tick_changed(venue_now)

    def _close(self, st: Topic, final: Candle, venue_now: int) -> None:
        """The closing frame of ``final``, with the next candle where the venue pairs them."""
        candles: tuple[Candle, ...] = (final,)
        pairs = self._pairs_next
        if pairs is not None and not st.pending and pairs(final):
            nxt = self.market.forming(st.symbol, st.interval, venue_now)
            if nxt is not None and nxt.open_time == st.cur:
                candles = (final, nxt)
                st.last = nxt
        self._send(st, candles, max(venue_now, final.close_time + 1), True)
        self.closes_sent += len(st.subscribers)

    def _tick_changed(self, venue_now: int) -> None:
        """A closed-flag tick: the forming candles that changed, skipping quiet symbols."""
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
                    self._send(st, (c,), venue_now, False)

    def _step_every(self, now_mono: float, venue_now: int) -> None:
        """A step without a closed flag: per stream, in subscription order, the final of a
        candle that closed (``stale_last_push=False``), then on a tick its current candle,
        changed or not. Every stream is looked at: such a venue pushes every one anyway."""
        tick = now_mono >= self._next_cadence
        if tick:
            self._next_cadence = max(self._next_cadence + self.cadence_s, now_mono)
        market, wall_deadline = self.market, self.clock.wall_deadline
        next_tick, marks_last = self._next_cadence, self._marks_last
        for st in self.streams.values():
            self._roll(st, venue_now)
            if not tick:
                continue
            c = market.forming(st.symbol, st.interval, venue_now)
            if c is None or c.open_time != st.cur:
                continue  # no trade in the candle yet
            last = marks_last and wall_deadline(next_open(st.cur, st.interval)) <= next_tick
            self._send(st, (c,), venue_now, last)
        for interval, boundary in self._rolls.items():
            if boundary <= venue_now:
                self._rolls[interval] = next_open(align(venue_now, interval), interval)

    def _roll(self, st: Topic, venue_now: int) -> None:
        """Move ``st`` to the candle forming at ``venue_now``. With a closed flag, queue the
        closing frame of every candle that closed since the last look; without one and with
        ``stale_last_push=False``, send the final of the candle last looked at now (a candle
        that a late step skipped entirely gets none)."""
        nxt = next_open(st.cur, st.interval)
        if nxt > venue_now:
            return
        if self._final_at_close:
            final = self.market.bar(st.symbol, st.interval, st.cur)
            if final is not None:
                self._send(st, (final,), venue_now, True)
                self.closes_sent += len(st.subscribers)
        delayed = self.close_delay_s is not None
        while nxt <= venue_now:
            final = self.market.bar(st.symbol, st.interval, st.cur) if delayed else None
            if final is not None:
                deadline = max(self.clock.wall_deadline(nxt) + self._delay(st, st.cur),
                               st.last_deadline)
                self._queue(st, deadline, final)
            st.cur, st.last = nxt, None
            nxt = next_open(nxt, st.interval)

    def _send(self, st: Topic, candles: Sequence[Candle], event_time: int,
              closing: bool) -> None:
        """Render once, frame once per form (bare or combined), and queue the frame for every
        subscriber; ``closing`` is the shaper's mark (a closing frame, or the predicted last
        push of a candle on a venue without a closed flag)."""
        payload = st.render(candles, event_time)
        frame_of, wrap = self._frame, self._wrap
        raw = wrapped = b""
        if not self.shaping:  # no frame fault was ever applied: the plain loop
            batch = self._batch
            for sink in st.subscribers:
                if wrap is not None and sink.combined:
                    wrapped = frame = wrapped or frame_of(wrap(st.name_bytes, payload))
                else:
                    raw = frame = raw or frame_of(payload)
                queued = batch.get(sink)
                if queued is None:
                    batch[sink] = [frame]
                else:
                    queued.append(frame)
            self.frames_sent += len(st.subscribers)
            return
        first = candles[0]
        marked = first if first.closed is closing else msgspec.structs.replace(first,
                                                                               closed=closing)
        for sink in list(st.subscribers):
            if wrap is not None and sink.combined:
                wrapped = frame = wrapped or frame_of(wrap(st.name_bytes, payload))
            else:
                raw = frame = raw or frame_of(payload)
            shaper = sink.shaper
            if shaper is None:
                sink.write(frame)
            else:  # a fault plan is shaping this connection's frames
                shaper.kline(frame, st.name, marked)
        self.frames_sent += len(st.subscribers)

    def next_wake(self, now_mono: float) -> float:
        """The next moment something may be due: a tick, a pending closing frame, or (where a
        close sends or queues something) a candle boundary."""
        wake = self._next_cadence
        if self._due and self._due[0][0] < wake:
            wake = self._due[0][0]
        if not self._every_tick or self._final_at_close:
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
