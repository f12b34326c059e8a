"""Bookkeeping of the gap filler (``gapfill.py``): per-stream state, counters, retries.

Kept apart so that the filler's module holds the decisions (what to fetch, when, in which
order) and this one the state they act on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

import msgspec

from candlekeeper.backfill.slots import LIVE, Priority
from candlekeeper.core.backoff import backoff_delays
from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import prev_open
from candlekeeper.core.sequence import StreamSequence
from candlekeeper.core.stream_key import StreamKey


class HistorySource(Protocol):
    """Closed candles over REST (implemented by ``KlineFetcher``)."""

    async def fetch(self, symbol: str, interval: str, start: int, end: int, *,
                    forming: Callable[[Candle], None] | None = None,
                    margin_ms: int | None = None, priority: Priority = LIVE) -> list[Candle]:
        """Every closed candle with ``start <= open_time < end``, ascending; with ``forming``,
        the venue's forming candle (if it returns one) is handed to it (REST polling).
        ``margin_ms``: how long after its close a row counts as final (a fast close).
        ``priority``: the fetch's place in the queue (``backfill.slots``)."""
        ...


@runtime_checkable
class PacedSource(Protocol):
    """A history source that knows its venue's REST budget (``KlineFetcher``); a source
    that does not (a test's fake, a replay) sets no pace."""

    def requests_per_second(self, rows: int = 2) -> float:
        """Klines requests of ``rows`` rows a wall second the budget sustains."""
        ...


class FillStats(msgspec.Struct, kw_only=True):
    requested: int = 0
    fills: int = 0
    rest_candles: int = 0
    failures: int = 0
    holes: int = 0
    late_closes: int = 0
    breaks: int = 0
    unfillable: int = 0
    #: held closes dropped because they claimed to close impossibly far ahead of the clock
    rejected: int = 0
    #: REST polls requested (one per polled stream per close), and streams polled now
    polls: int = 0
    polled_streams: int = 0
    #: fast closes asked over REST (``close_policy: fast``), and streams that have them
    fast_closes: int = 0
    fast_streams: int = 0
    #: warm-up history fetches made behind live streams (streams with nothing stored)
    warmups: int = 0


class Track:
    """Fill bookkeeping of one stream."""

    __slots__ = ("backoff_s", "emit_history", "fast", "interrupted", "key", "margin_ms",
                 "next_check", "next_poll", "on_forming", "on_history", "polled",
                 "polled_through", "seq",
                 "task", "want_again", "warm", "warm_count", "warm_task", "warm_until")

    def __init__(self, key: StreamKey, seq: StreamSequence, emit_history: bool,
                 on_history: Callable[[list[Candle]], object], margin_ms: int) -> None:
        self.key = key
        self.seq = seq
        self.emit_history = emit_history
        self.on_history = on_history
        self.task: asyncio.Task[None] | None = None
        self.want_again = False
        self.interrupted = False
        self.next_check = 0.0  # monotonic time before which no late-close fill is requested
        self.backoff_s = 0.0
        #: polled over REST at every close (REST-only mode, or the WebSocket is unavailable)
        self.polled = False
        #: open time of the first candle not yet final when this stream was last polled
        self.polled_through = -1
        #: monotonic time before which this stream is not polled again (the polls' share of
        #: the REST budget, spread over every polled stream)
        self.next_poll = 0.0
        #: where a poll's forming candle goes (a live update), if anywhere
        self.on_forming: Callable[[Candle], None] | None = None
        #: fast closes: each close is asked over REST ``margin_ms`` after it
        self.fast = False
        #: venue ms after its close time from which a REST row of this stream is final
        self.margin_ms = margin_ms
        #: nothing stored: live closes go out at once, the warm-up history is fetched behind
        self.warm = False
        self.warm_task: asyncio.Task[None] | None = None
        #: a resumed stream short of its warm-up: history goes behind this open time (the
        #: oldest stored candle), this many candles; None/0: the warm-up's own defaults
        self.warm_until: int | None = None
        self.warm_count = 0


class FetchAttempts:
    """Failed REST attempts of one fill: counted, spaced by the one backoff policy
    (``core.backoff``), and given up after ``max_attempts`` in a row; and the pauses while a
    hole is still open after an answer, growing while REST brings nothing new.

    A fill can run on and on (a venue whose every close is confirmed over REST, at speed):
    :meth:`succeeded` after each answer restarts the failure count and its waits, and
    :meth:`progressed` after each answer that moved the stream restarts the pauses. Neither was
    done: a long fill's pauses between catch-up fetches grew to ``max_s`` although every fetch
    made progress (the stream fell further behind with each), and five failures spread over an
    hour gave up as if in a row."""

    __slots__ = ("_fail_delays", "_initial_s", "_max_s", "_pause_delays", "failures",
                 "max_attempts")

    def __init__(self, initial_s: float, max_s: float, max_attempts: int) -> None:
        self._initial_s, self._max_s = initial_s, max_s
        self._fail_delays = self._delays()
        self._pause_delays = self._delays()
        self.failures = 0
        self.max_attempts = max_attempts

    def _delays(self) -> Iterator[float]:
        return backoff_delays(self._initial_s, 2.0, self._max_s, jitter=0.2)

    def succeeded(self) -> None:
        """An answer came: the next failure is the first in a row again."""
        if self.failures:
            self.failures = 0
            self._fail_delays = self._delays()

    def progressed(self) -> None:
        """The answer moved the stream on: the next pause is the first again."""
        self._pause_delays = self._delays()

    async def failed(self) -> bool:
        """Count a failure; True when it is time to give up, else wait the next delay."""
        self.failures += 1
        if self.failures >= self.max_attempts:
            return True
        await asyncio.sleep(next(self._fail_delays))
        return False

    async def pause(self) -> None:
        """Wait the next delay without counting a failure (a hole REST is catching up on)."""
        await asyncio.sleep(next(self._pause_delays))


def history_start(end: int, interval: str, n: int) -> int:
    """Open time ``n`` candles before ``end``."""
    start = end
    for _ in range(n):
        start = prev_open(start, interval)
    return start

