"""One stream inside a :class:`~candlekeeper.feed.CandleFeed`: the per-frame hot path and the
state behind the stream's guarantees (its sequence of closes, its forming candle, its buffer).

Kept apart from ``feed.py`` so the library face stays small: the feed wires streams together,
this module is what runs for every kline frame.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from candlekeeper.core.buffers import RingBuffer
from candlekeeper.core.bus import EventBus
from candlekeeper.core.candle import Candle, CorrectedCandle
from candlekeeper.core.events import CandleClosed, CandleCorrected, CandleUpdate, StreamState
from candlekeeper.core.sequence import Offer, StreamSequence
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.observability.metrics import StreamMetrics

__all__ = ["StreamStats"]


class StreamStats:
    """One stream inside the feed: its hot path and the state behind its guarantees.

    :meth:`deliver` is what the transport calls for every kline frame of this stream (resolved
    once per stream, so no per-frame lookup). Closed candles go through ``seq`` (a
    :class:`StreamSequence`), which emits each open time exactly once and in order, holding
    closes that skip ahead until the gap filler has fetched what is missing. Counters shown on
    ``/metrics`` and the dashboard live in ``metrics`` (shared with the service's
    :class:`Metrics`).
    """

    __slots__ = ("_closed_subs", "_corrected_subs", "_on_hole", "_on_rejected", "_pressure",
                 "_update_subs", "buffer", "forming", "future_tolerance_ms", "infer_close", "key",
                 "last_closed", "metrics", "now_ms", "retaps", "seq", "taps")

    def __init__(self, key: StreamKey, metrics: StreamMetrics, buffer: RingBuffer, bus: EventBus,
                 now_ms: Callable[[], int], on_hole: Callable[[StreamKey], None], *,
                 closed_flag: bool = True, future_tolerance_ms: int = 60_000,
                 max_held: int = 10_000,
                 on_rejected: Callable[[Candle, str], None] | None = None) -> None:
        self.key = key
        self.metrics = metrics
        self.buffer = buffer
        self.last_closed: Candle | None = None
        self.now_ms = now_ms
        #: no closed flag on the wire: a push for a newer candle closes the forming one;
        #: that inferred close is held until REST confirms it (REST wins where they differ)
        self.infer_close = not closed_flag
        self.forming: Candle | None = None
        self.seq = StreamSequence(key.interval, self._emit, prefer_rest=self.infer_close,
                                  max_held=max_held)
        self._on_hole = on_hole
        #: a close from further ahead of our clock than this is impossible: rejected, counted
        self.future_tolerance_ms = future_tolerance_ms
        self._on_rejected = on_rejected
        self._update_subs = bus.subscribers(CandleUpdate)
        self._closed_subs = bus.subscribers(CandleClosed)
        self._corrected_subs = bus.subscribers(CandleCorrected)
        self._pressure = bus.pressure_flag
        #: called with every emitted close after the consumers (derived streams built on it)
        self.taps: list[Callable[[Candle], None]] = []
        #: called with every correction of an emitted close (after the buffer holds it)
        self.retaps: list[Callable[[Candle], None]] = []

    @property
    def state(self) -> StreamState:
        return self.metrics.state

    @property
    def messages(self) -> int:
        return self.metrics.messages

    @property
    def closed(self) -> int:
        return self.metrics.closed

    @property
    def duplicates(self) -> int:
        return self.seq.duplicates

    @property
    def late(self) -> int:
        return self.seq.late

    def deliver(self, candle: Candle) -> bool:
        """Every frame of this stream. Returns True when a consumer asks for backpressure."""
        self.metrics.last_event_time_ms = candle.event_time
        for sub in self._update_subs:
            sub.offer(candle)
        if candle.closed:
            if self._from_the_future(candle, candle.close_time):
                return self._pressure.on
            offer = self.seq.offer(candle)
            if offer is Offer.HELD:
                self._on_hole(self.key)
            elif offer is not Offer.EMITTED:
                self._recheck(candle)
        elif self.infer_close:
            self._infer(candle)
        return self._pressure.on

    def offer_update(self, candle: Candle) -> None:
        """A forming candle that came another way (a REST poll): an update for consumers only
        (the stream's own closes come from the poll's closed rows)."""
        for sub in self._update_subs:
            sub.offer(candle)

    def _from_the_future(self, candle: Candle, at_ms: int) -> bool:
        """True (and the candle rejected) when ``at_ms`` is impossibly far ahead of our clock:
        one such close would make the stream wait for it forever (a hostile or broken frame)."""
        if at_ms <= self.now_ms() + self.future_tolerance_ms:
            return False
        if self._on_rejected is not None:
            self._on_rejected(candle, f"{'close' if candle.closed else 'open'} time {at_ms} is "
                                      f"more than {self.future_tolerance_ms} ms ahead of the "
                                      "clock")
        return True

    def _infer(self, candle: Candle) -> None:
        forming = self.forming
        if forming is None or candle.open_time > forming.open_time:
            if self._from_the_future(candle, candle.open_time):
                return
            self.forming = candle
            if forming is not None:
                inferred = msgspec.structs.replace(forming, closed=True)
                if self.seq.hold(inferred) is Offer.HELD:
                    self._on_hole(self.key)
        elif candle.open_time == forming.open_time:
            self.forming = candle

    def _recheck(self, candle: Candle) -> None:
        """The venue's closing frame for a candle already emitted: if that one came from REST
        (a fast close, a late close) with other values, the frame corrects it."""
        previous = self._emitted(candle.open_time)
        if previous is None or previous.source != "rest" \
                or previous.same_values(candle, trade_ids=False):
            return
        self.metrics.corrections += 1
        candle = CorrectedCandle.replacing(candle)
        self.buffer.replace(candle)
        if self.last_closed is previous:
            self.last_closed = candle
        event = CandleCorrected(previous, candle)
        for sub in self._corrected_subs:
            sub.offer(event)
        for tap in self.retaps:
            tap(candle)

    def _emitted(self, open_time: int) -> Candle | None:
        last = self.last_closed
        if last is not None and last.open_time == open_time:
            return last
        return self.buffer.find(open_time)

    def _emit(self, candle: Candle) -> None:
        """The sequence decided: this is the next closed candle of the stream."""
        self.last_closed = candle
        self.metrics.on_closed(candle, self.now_ms())
        if candle.source == "rest":
            self.metrics.backfilled += 1
        self.buffer.append(candle)
        for sub in self._closed_subs:
            sub.offer(candle)
        for tap in self.taps:
            tap(candle)
