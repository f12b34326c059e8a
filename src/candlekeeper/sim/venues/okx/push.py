"""When OKX candle pushes go out (protocols-more-venues.md §E.3, §E.4).

Per subscribed channel: the forming candle at most every ``cadence_s`` of wall time (1 s: "the
fastest interval 1 second push"), only when it changed and once the candle has had a trade, with
``confirm`` "0"; then exactly one push with the candle's final values and ``confirm`` "1",
``close_delay_s`` (wall, fixed per candle by the seed; OKX documents neither how many nor how
late, §H) after its close in venue time. Per channel, confirm pushes go out in open-time order
and no push of the next candle precedes them. As on Binance, the delay is capped at a quarter of
the candle's wall duration so a sped-up clock does not hold back several candles.

Every push is one frame whose ``data`` array holds one row (the client decodes every row of an
array). A payload is encoded once per channel and shared by every subscriber.
:meth:`OkxPusher.step` is synchronous and driven by explicit times; :meth:`run` is the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.core.intervals import align, next_open, prev_open
from candlekeeper.sim.framing import TEXT, ws_frame
from candlekeeper.sim.market import Market
from candlekeeper.sim.personality import FrameSink
from candlekeeper.sim.pump import pump
from candlekeeper.sim.venues.okx.session import push_payload
from candlekeeper.sim.walk import key_of, mix
from candlekeeper.venues.okx import schemas

log = logging.getLogger(__name__)


class Channel:
    __slots__ = ("arg", "cur", "interval", "last", "last_deadline", "name", "pending",
                 "subscribers", "symbol")

    def __init__(self, name: str, symbol: str, interval: str, cur: int) -> None:
        ch, _, inst = name.partition(":")
        self.name, self.symbol, self.interval = name, symbol, interval
        self.arg = schemas.Arg(ch, inst)
        self.cur = cur  # open time of the candle being formed
        self.last: Candle | None = None  # last forming candle pushed
        self.last_deadline = 0.0
        self.pending: deque[tuple[float, Candle]] = deque()  # (monotonic deadline, final)
        self.subscribers: set[FrameSink] = set()


class OkxPusher:
    def __init__(self, market: Market, clock: ScaledClock, *, cadence_s: float,
                 close_delay_s: tuple[float, float], seed: int,
                 parse: Callable[[str], tuple[str, str] | None],
                 ct_val: Callable[[str], Decimal | None]) -> None:
        if not 0 <= close_delay_s[0] <= close_delay_s[1]:
            raise ValueError(f"bad close_delay_s {close_delay_s}")
        self.market, self.clock = market, clock
        self.cadence_s = cadence_s
        self.close_delay_s = close_delay_s
        self._parse, self._ct_val = parse, ct_val
        self._key = key_of(seed, market.venue, "close-delay")
        self.channels: dict[str, Channel] = {}
        self._next_cadence = 0.0
        self._wake = asyncio.Event()
        self.frames_sent = 0
        self.closes_sent = 0
        self.errors = 0
        self.shaping = False

    # -- subscriptions ----------------------------------------------------------------------
    def subscribe(self, sink: FrameSink, name: str) -> None:
        ch = self.channels.get(name)
        if ch is None:
            parsed = self._parse(name)
            if parsed is None:
                return
            ch = self._new_channel(name, *parsed, time.monotonic())
            self.channels[name] = ch
        ch.subscribers.add(sink)
        self._wake.set()

    def unsubscribe(self, sink: FrameSink, name: str) -> None:
        ch = self.channels.get(name)
        if ch is None:
            return
        ch.subscribers.discard(sink)
        if not ch.subscribers:
            del self.channels[name]

    def drop(self, sink: FrameSink) -> None:
        for name in [n for n, ch in self.channels.items() if sink in ch.subscribers]:
            self.unsubscribe(sink, name)

    def _new_channel(self, name: str, symbol: str, interval: str, now_mono: float) -> Channel:
        cur = align(self.clock.time_ms(), interval)
        ch = Channel(name, symbol, interval, cur)
        # the previous candle's confirm push may still be due: it goes to whoever is subscribed
        prev = prev_open(cur, interval)
        deadline = self.clock.wall_deadline(cur) + self._delay(ch, prev)
        final = self.market.bar(symbol, interval, prev)
        if deadline > now_mono and final is not None:
            ch.pending.append((deadline, final))
            ch.last_deadline = deadline
        return ch

    def _delay(self, ch: Channel, open_time: int) -> float:
        lo, hi = self.close_delay_s
        u = mix(self._key ^ key_of(ch.name, open_time)) / float(1 << 64)
        cap = self.clock.wall_seconds(next_open(open_time, ch.interval) - open_time) / 4
        return min(lo + (hi - lo) * u, cap)

    # -- scheduling -------------------------------------------------------------------------
    def step(self, now_mono: float) -> None:
        """Write every push due at ``now_mono`` (a ``time.monotonic()`` value)."""
        venue_now = self.clock.time_ms()
        cadence = now_mono >= self._next_cadence
        if cadence:
            self._next_cadence = max(self._next_cadence + self.cadence_s, now_mono)
        for ch in list(self.channels.values()):
            self._roll(ch, venue_now)
            while ch.pending and ch.pending[0][0] <= now_mono:
                _, final = ch.pending.popleft()
                self._send(ch, final, confirm=True)
                self.closes_sent += len(ch.subscribers)
            if cadence and not ch.pending:
                c = self.market.forming(ch.symbol, ch.interval, venue_now)
                if c is not None and c.open_time == ch.cur and c != ch.last:
                    ch.last = c
                    self._send(ch, c, confirm=False)

    def _roll(self, ch: Channel, venue_now: int) -> None:
        """Queue the confirm push of every candle that closed since the last look."""
        nxt = next_open(ch.cur, ch.interval)
        while nxt <= venue_now:
            final = self.market.bar(ch.symbol, ch.interval, ch.cur)
            if final is not None:
                deadline = max(self.clock.wall_deadline(nxt) + self._delay(ch, ch.cur),
                               ch.last_deadline)
                ch.last_deadline = deadline
                ch.pending.append((deadline, final))
            ch.cur, ch.last = nxt, None
            nxt = next_open(nxt, ch.interval)

    def _send(self, ch: Channel, candle: Candle, *, confirm: bool) -> None:
        frame = ws_frame(TEXT, push_payload(ch.arg, candle, confirm, self._ct_val(ch.symbol)))
        if not self.shaping:
            for sink in list(ch.subscribers):
                sink.write(frame)
        else:
            for sink in list(ch.subscribers):
                shaper = sink.shaper
                if shaper is None:
                    sink.write(frame)
                else:
                    shaper.kline(frame, ch.name, candle)
        self.frames_sent += len(ch.subscribers)

    def next_wake(self, now_mono: float) -> float:
        wake = self._next_cadence
        for ch in self.channels.values():
            if ch.pending and ch.pending[0][0] < wake:
                wake = ch.pending[0][0]
            boundary = self.clock.wall_deadline(next_open(ch.cur, ch.interval))
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
