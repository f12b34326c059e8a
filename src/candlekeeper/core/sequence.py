"""Per-stream ordering of closed candles: exactly once, in open-time order, no silent holes.

This is the pure heart of the gap-free guarantee (no I/O, no clock, no asyncio; the async
orchestration lives in :mod:`candlekeeper.gapfill`). Closed candles reach a stream from two
sources — the WebSocket (``x:true`` frames) and REST (warm-up, backfill after a break,
confirmation of a late close) — in any order and possibly more than once. The sequence emits
each open time once, oldest first, and never lets a newer candle overtake a hole that REST may
still fill:

* a WebSocket close for the *next* open time is emitted at once (the common, fast path);
* one that skips ahead is **held**, and the caller is told a fill is needed;
* a REST fill for ``[start, end)`` is merged with what is held: everything in the window is
  emitted in order. REST is the exchange's own history, so an open time it does not return
  inside a window it covered does not exist there; it is counted as *unfillable* and skipped
  (the documented limit of the guarantee) instead of blocking the stream forever;
* anything at or before the last emitted open time is a duplicate (or a late repeat) and is
  dropped.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import next_open, open_times, prev_open


class Offer(enum.Enum):
    EMITTED = "emitted"
    DUPLICATE = "duplicate"  # the same open time as the last emitted candle
    LATE = "late"  # older than the last emitted candle
    HELD = "held"  # newer than the next expected: a hole to fill first


class StreamSequence:
    """Closed-candle sequencing for one stream; ``emit`` receives candles in order."""

    __slots__ = ("duplicates", "emit", "first", "held", "interval", "last", "late", "live_from",
                 "max_held", "overflow", "prefer_rest", "unfillable", "wait_for_anchor")

    def __init__(self, interval: str, emit: Callable[[Candle], None], *,
                 last: int | None = None, wait_for_anchor: bool = False,
                 prefer_rest: bool = False, max_held: int = 10_000) -> None:
        self.interval = interval
        self.emit = emit
        #: open time of the last emitted candle; -1 = not anchored yet
        self.last = -1 if last is None else last
        #: open time of the candle that anchored the stream (the first emitted or adopted);
        #: -1 while not anchored. A warm-up filling history *behind* live closes stops there.
        self.first = self.last
        #: closes that arrived ahead of a hole, by open time
        self.held: dict[int, Candle] = {}
        #: hold even the first close until a fill anchors the stream (warm-up in flight)
        self.wait_for_anchor = wait_for_anchor
        #: open time of the first candle a not yet anchored stream owes its consumers (the one
        #: forming when the feed started; -1: none). A first close *after* it anchors the
        #: stream just before it, so the candles between are a hole to fill, not history: a
        #: candle that closed while the WebSocket was still subscribing is still a close.
        self.live_from = -1
        #: when a held WebSocket close and REST disagree, REST wins (for venues whose closes are
        #: inferred, not flagged final); a frame flagged final by the venue is final
        self.prefer_rest = prefer_rest
        #: closes held at most; beyond it a new one is not kept (REST fetches it with the hole),
        #: so a long REST outage cannot grow memory without bound
        self.max_held = max_held
        self.overflow = 0
        self.duplicates = 0
        self.late = 0
        self.unfillable = 0

    @property
    def anchored(self) -> bool:
        return self.last >= 0

    @property
    def expected(self) -> int | None:
        """Open time of the next candle to emit (None before the stream is anchored)."""
        return next_open(self.last, self.interval) if self.last >= 0 else None

    @property
    def has_hole(self) -> bool:
        return bool(self.held)

    def offer(self, candle: Candle) -> Offer:
        """A closed candle from the WebSocket."""
        t = candle.open_time
        last = self.last
        if t <= last:
            if t == last:
                self.duplicates += 1
                return Offer.DUPLICATE
            self.late += 1
            return Offer.LATE
        if last < 0:
            last = self._anchor_before_live_from(t)
        if last < 0:
            if self.wait_for_anchor:
                self._keep(t, candle)
                return Offer.HELD
        elif t != next_open(last, self.interval):
            self._keep(t, candle)
            return Offer.HELD
        self._emit(candle)
        self._release()
        return Offer.EMITTED

    def hold(self, candle: Candle) -> Offer:
        """Keep a close back until a fill confirms it (a close *inferred* from the next push on
        venues without a closed flag: REST then supplies the final values)."""
        t = candle.open_time
        if t <= self.last:
            if t == self.last:
                self.duplicates += 1
                return Offer.DUPLICATE
            self.late += 1
            return Offer.LATE
        if self.last < 0:
            self._anchor_before_live_from(t)
        self._keep(t, candle)
        return Offer.HELD

    def fill(self, candles: Iterable[Candle], start: int, end: int, *,
             emit: bool = True) -> int:
        """Merge REST history fetched for ``[start, end)`` (closed candles, any order).

        REST is trusted up to the newest open time it returned (``rest_max``): held WebSocket
        closes up to there are merged with it and everything is emitted in order (or, with
        ``emit=False``, only adopted as the anchor: warm-up of a buffer without replaying
        history to consumers). An open time missing *before* ``rest_max`` is absent from the
        exchange's own history: it is counted as unfillable and skipped. Held closes *after*
        ``rest_max`` stay held (REST may simply lag behind the WebSocket); the caller retries.
        Returns the number of candles emitted/adopted.
        """
        rest = {c.open_time: c for c in candles
                if start <= c.open_time < end and c.open_time > self.last}
        self.wait_for_anchor = False
        if not rest:
            self._release()
            return 0
        rest_max = max(rest)
        for t in [t for t in self.held if t <= rest_max]:
            held = self.held.pop(t)
            if not self.prefer_rest or t not in rest:
                rest[t] = held  # a final WebSocket close is richer (trade ids, event time)
        first = self.expected if self.anchored else min(rest)
        assert first is not None
        self.unfillable += sum(1 for t in open_times(first, rest_max, self.interval)
                               if t not in rest)
        for t in sorted(rest):
            c = rest[t]
            if emit:
                self._emit(c)
            else:
                if self.last < 0:
                    self.first = t
                self.last = t
        self._release()
        return len(rest)

    def skip_hole(self) -> int:
        """Give up on the current hole (REST cannot fill it): emit what is held. Returns the
        number of open times skipped."""
        if not self.held:
            return 0
        first_held = min(self.held)
        skipped = 0
        if self.anchored:
            expected = self.expected
            assert expected is not None
            skipped = len(open_times(expected, first_held, self.interval))
        self.unfillable += skipped
        held, self.held = self.held, {}
        for t in sorted(held):
            self._emit(held[t])
        self.wait_for_anchor = False
        return skipped

    # -- internals --------------------------------------------------------------------------
    def _anchor_before_live_from(self, t: int) -> int:
        """The first close of a live-first stream (open time ``t``): when it comes after
        ``live_from``, anchor just before ``live_from`` (adopted, nothing emitted) so that
        ``t`` is held behind a hole. Returns ``last``."""
        if not self.wait_for_anchor and 0 <= self.live_from < t:
            self.last = prev_open(self.live_from, self.interval)
            self.first = self.live_from
        return self.last

    def _keep(self, t: int, candle: Candle) -> None:
        if t in self.held or len(self.held) < self.max_held:
            self.held[t] = candle
        else:
            self.overflow += 1

    def _emit(self, candle: Candle) -> None:
        if self.last < 0:
            self.first = candle.open_time
        self.last = candle.open_time
        self.emit(candle)

    def _release(self) -> None:
        """Emit held closes that are now contiguous. Inferred closes (``prefer_rest``) are never
        released this way: they wait for REST's final values (or :meth:`skip_hole`)."""
        if self.prefer_rest:
            for t in [t for t in self.held if t <= self.last]:
                del self.held[t]
                self.duplicates += 1
            return
        held = self.held
        while held:
            nxt = next_open(self.last, self.interval) if self.last >= 0 else min(held)
            c = held.pop(nxt, None)
            if c is None:
                # stale entries at/below last (a fill overtook them) are duplicates
                for t in [t for t in held if t <= self.last]:
                    del held[t]
                    self.duplicates += 1
                return
            self._emit(c)
