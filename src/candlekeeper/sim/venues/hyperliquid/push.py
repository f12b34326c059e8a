"""When Hyperliquid candle pushes go out (§F.3, §F.4): the current candle of every subscribed
stream, every ``cadence_s`` of wall time (1 s; the probe measured 0.9-1.8 pushes a second),
whether or not it changed, and **no closed flag**.

A client learns that the candle opening at ``T0`` closed only when a push with a later ``T``
arrives. The subtle part, reproduced on purpose (``stale_last_push=True``, the default): pushes
are on a fixed per-second tick, not on candle boundaries, so the *last* push of a candle is
from up to one cadence before its close and may not hold its final values. The truth
(``Simulator.closed_candles``) and REST (once the candle closed) always have the final candle;
a client must confirm the inferred close over REST. With ``stale_last_push=False`` the pusher
additionally sends each candle's final values at its close, before the next candle's first push
(kinder than the exchange; for tests that want the WebSocket alone to be exact).

For the fault shaper (``sim.shaper``) the push that is predicted to be a candle's last (the next
tick falls after the close), or the final push, is marked ``closed``: that is the frame a
``missing_close`` fault drops. Nothing of the mark reaches the wire.

Hyperliquid's push order around a close is undocumented (§F.4 [!]); the stale last push is the
worst case a client must survive. ``n`` on the wire is the truth's trade count.

A payload is encoded once per stream and tick and shared by every subscriber.
:meth:`HyperliquidPusher.step` is synchronous and driven by explicit times; :meth:`run` is the loop.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.core.intervals import align, next_open
from candlekeeper.sim.framing import TextFraming
from candlekeeper.sim.market import Market
from candlekeeper.sim.personality import FrameSink
from candlekeeper.sim.pump import pump
from candlekeeper.sim.venues.hyperliquid.session import push_payload
from candlekeeper.venues.hyperliquid.stream import parse_stream

log = logging.getLogger(__name__)


class Topic:
    __slots__ = ("cur", "interval", "name", "native", "subscribers", "symbol")

    def __init__(self, name: str, native: str, symbol: str, interval: str, cur: int) -> None:
        self.name, self.symbol, self.interval = name, symbol, interval
        self.native = native
        self.cur = cur  # open time of the candle being formed, as last looked at
        self.subscribers: set[FrameSink] = set()


class HyperliquidPusher:
    def __init__(self, market: Market, clock: ScaledClock, *, cadence_s: float = 1.0,
                 stale_last_push: bool = True) -> None:
        if cadence_s <= 0:
            raise ValueError(f"bad Hyperliquid push cadence {cadence_s}")
        self.market, self.clock = market, clock
        self.cadence_s = cadence_s
        self.stale_last_push = stale_last_push
        self.topics: dict[str, Topic] = {}
        self._framing = TextFraming()
        self._next_tick = 0.0
        self._wake = asyncio.Event()
        self.frames_sent = 0  # frames written, counted per connection
        self.closes_sent = 0  # final-value pushes at a close (stale_last_push=False only)
        self.errors = 0
        #: set by the fault injector once a frame fault is applied (``VenuePusher.shaping``)
        self.shaping = False

    # -- subscriptions ----------------------------------------------------------------------
    def subscribe(self, sink: FrameSink, name: str) -> None:
        topic = self.topics.get(name)
        if topic is None:
            parsed = parse_stream(name)
            if parsed is None:
                return
            coin, interval = parsed
            topic = Topic(name, coin, coin.upper(), interval,
                          align(self.clock.time_ms(), interval))
            self.topics[name] = topic
        topic.subscribers.add(sink)
        self._wake.set()

    def unsubscribe(self, sink: FrameSink, name: str) -> None:
        topic = self.topics.get(name)
        if topic is None:
            return
        topic.subscribers.discard(sink)
        if not topic.subscribers:
            del self.topics[name]

    def drop(self, sink: FrameSink) -> None:
        for name in [n for n, t in self.topics.items() if sink in t.subscribers]:
            self.unsubscribe(sink, name)

    # -- scheduling -------------------------------------------------------------------------
    def step(self, now_mono: float) -> None:
        """Write every push due at ``now_mono`` (a ``time.monotonic()`` value)."""
        venue_now = self.clock.time_ms()
        tick = now_mono >= self._next_tick
        if tick:
            self._next_tick = max(self._next_tick + self.cadence_s, now_mono)
        for topic in list(self.topics.values()):
            cur = align(venue_now, topic.interval)
            if cur != topic.cur:
                if not self.stale_last_push:
                    final = self.market.bar(topic.symbol, topic.interval, topic.cur)
                    if final is not None:
                        self._send(topic, final, closing=True)
                        self.closes_sent += len(topic.subscribers)
                topic.cur = cur
            if not tick:
                continue
            candle = self.market.forming(topic.symbol, topic.interval, venue_now)
            if candle is None or candle.open_time != cur:
                continue  # no trade in the new candle yet
            last = self.clock.wall_deadline(next_open(cur, topic.interval)) <= self._next_tick
            self._send(topic, candle, closing=last and self.stale_last_push)

    def _send(self, topic: Topic, candle: Candle, *, closing: bool) -> None:
        frame = self._framing.frame(push_payload(topic.native, candle, trades(candle)))
        if not self.shaping:
            for sink in list(topic.subscribers):
                sink.write(frame)
        else:
            marked = msgspec.structs.replace(candle, closed=closing)
            for sink in list(topic.subscribers):
                shaper = sink.shaper
                if shaper is None:
                    sink.write(frame)
                else:
                    shaper.kline(frame, topic.name, marked)
        self.frames_sent += len(topic.subscribers)

    def next_wake(self, now_mono: float) -> float:
        """The next tick, or (``stale_last_push=False``) an earlier candle boundary."""
        wake = self._next_tick
        if not self.stale_last_push:
            for topic in self.topics.values():
                boundary = self.clock.wall_deadline(next_open(topic.cur, topic.interval))
                wake = min(wake, boundary)
        return max(wake, now_mono)

    @property
    def wake(self) -> asyncio.Event:
        return self._wake

    def after_error(self, now_mono: float) -> None:
        self._next_tick = now_mono + self.cadence_s

    async def run(self) -> None:
        await pump(self, self.market.venue)


def trades(c: Candle) -> int:
    """``n`` of a push or row: the truth's trade count (Hyperliquid publishes it), else a
    count derived from the volume's leading digits (deterministic, for a replayed series that
    has none)."""
    if c.trades is not None:
        return c.trades
    digits = c.volume_str.replace(".", "").lstrip("0")
    return int(digits[:4] or "0")
