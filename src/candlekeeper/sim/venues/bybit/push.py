"""When Bybit kline pushes go out (§D.3, §D.4).

One :class:`BybitPusher` per venue tracks every topic with at least one subscriber and, at each
wake-up, writes what is due:

* the forming candle (``confirm: false``), every ``cadence_s`` of wall time (1 s: the docs say
  "1-60s"), only when it changed and once the candle has had a trade;
* the closing frame (``confirm: true``), exactly once per candle, ``close_delay_s`` (wall,
  fixed per candle by the seed) after the candle's close in venue time, capped at a quarter of
  the candle's wall duration (see ``sim.venues.binance.push`` for why). Per topic, closing
  frames go out in open-time order and no frame of the next candle precedes them;
* on every other close (candles whose index since the epoch is even: :func:`pairs_next`), the
  closing frame also carries the next candle as it
  stands, in the same ``data`` array: "Bybit can ship the closing bar and the newly opened one
  together" (§D.3 [!]). A client that reads only ``data[0]`` loses nothing it cannot get from
  the next push, but one that stops at the first candle misses the array's point.

A payload is encoded once per topic and shared by all its subscribers. :meth:`step` is
synchronous and driven by explicit times; :meth:`run` is the loop around it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.core.intervals import INTERVAL_MS, align, next_open, prev_open
from candlekeeper.sim.framing import text_frame
from candlekeeper.sim.market import Market
from candlekeeper.sim.personality import FrameSink
from candlekeeper.sim.pump import pump
from candlekeeper.sim.venues.bybit.session import push_payload
from candlekeeper.sim.walk import key_of, mix
from candlekeeper.venues.bybit.stream import parse_topic


def pairs_next(final: Candle) -> bool:
    """Does the closing frame of ``final`` also carry the next candle? Every other candle, so
    both shapes occur on every stream, predictably."""
    return (final.open_time // INTERVAL_MS[final.interval]) % 2 == 0


class TopicState:
    __slots__ = ("cur", "interval", "last", "last_deadline", "name", "pending", "subscribers",
                 "symbol")

    def __init__(self, name: str, symbol: str, interval: str, cur: int) -> None:
        self.name, self.symbol, self.interval = name, symbol, interval
        self.cur = cur  # open time of the candle being formed
        self.last: Candle | None = None  # last forming candle pushed
        self.last_deadline = 0.0
        self.pending: deque[tuple[float, Candle]] = deque()  # (monotonic deadline, final)
        self.subscribers: set[FrameSink] = set()


class BybitPusher:
    def __init__(self, market: Market, clock: ScaledClock, *, cadence_s: float,
                 close_delay_s: tuple[float, float], seed: int) -> None:
        if not 0 <= close_delay_s[0] <= close_delay_s[1]:
            raise ValueError(f"bad close_delay_s {close_delay_s}")
        self.market, self.clock = market, clock
        self.cadence_s = cadence_s
        self.close_delay_s = close_delay_s
        self._key = key_of(seed, market.venue, "close-delay")
        self.topics: dict[str, TopicState] = {}
        self._next_cadence = 0.0
        self._wake = asyncio.Event()
        self.frames_sent = 0  # frames written, counted per connection
        self.closes_sent = 0  # confirm:true frames written, counted per connection
        self.errors = 0
        #: set by the fault injector once a frame fault is applied
        self.shaping = False

    # -- subscriptions ----------------------------------------------------------------------
    def subscribe(self, sink: FrameSink, name: str) -> None:
        st = self.topics.get(name)
        if st is None:
            parsed = parse_topic(name)
            if parsed is None:
                return
            st = self._new_state(name, *parsed, now_mono=time.monotonic())
            self.topics[name] = st
        st.subscribers.add(sink)
        self._wake.set()

    def unsubscribe(self, sink: FrameSink, name: str) -> None:
        st = self.topics.get(name)
        if st is None:
            return
        st.subscribers.discard(sink)
        if not st.subscribers:
            del self.topics[name]

    def drop(self, sink: FrameSink) -> None:
        for name in [n for n, st in self.topics.items() if sink in st.subscribers]:
            self.unsubscribe(sink, name)

    def _new_state(self, name: str, symbol: str, interval: str, *,
                   now_mono: float) -> TopicState:
        cur = align(self.clock.time_ms(), interval)
        st = TopicState(name, symbol, interval, cur)
        # the previous candle's closing frame may still be due: it goes to whoever is
        # subscribed at that moment, including a subscriber that just arrived
        prev = prev_open(cur, interval)
        deadline = self.clock.wall_deadline(cur) + self._delay(st, prev)
        final = self.market.bar(symbol, interval, prev)
        if deadline > now_mono and final is not None:
            st.pending.append((deadline, final))
            st.last_deadline = deadline
        return st

    def _delay(self, st: TopicState, open_time: int) -> float:
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
        for st in list(self.topics.values()):
            self._roll(st, venue_now)
            while st.pending and st.pending[0][0] <= now_mono:
                _, final = st.pending.popleft()
                candles = [final]
                if not st.pending and pairs_next(final):
                    nxt = self.market.forming(st.symbol, st.interval, venue_now)
                    if nxt is not None and nxt.open_time == st.cur:
                        candles.append(nxt)
                        st.last = nxt
                self._send(st, candles, max(venue_now, final.close_time + 1))
                self.closes_sent += len(st.subscribers)
            if cadence and not st.pending:
                c = self.market.forming(st.symbol, st.interval, venue_now)
                if c is not None and c.open_time == st.cur and c != st.last:
                    st.last = c
                    self._send(st, [c], venue_now)

    def _roll(self, st: TopicState, venue_now: int) -> None:
        """Queue the closing frame of every candle that closed since the last look."""
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

    def _send(self, st: TopicState, candles: list[Candle], ts: int) -> None:
        frame = text_frame(push_payload(st.name, candles, ts))
        if not self.shaping:  # no frame fault was ever applied: the plain loop
            for sink in list(st.subscribers):
                sink.write(frame)
        else:
            for sink in list(st.subscribers):
                shaper = sink.shaper
                if shaper is None:
                    sink.write(frame)
                else:  # a fault plan shapes this connection's frames (by the first candle)
                    shaper.kline(frame, st.name, candles[0])
        self.frames_sent += len(st.subscribers)

    def next_wake(self, now_mono: float) -> float:
        """The next moment something may be due: a cadence tick, a close, a pending close."""
        wake = self._next_cadence
        for st in self.topics.values():
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
