"""Keeping every stream's closed-candle series whole: warm-up, backfill after breaks, late
closes — the asynchronous side of :class:`~candlekeeper.core.sequence.StreamSequence`.

A stream asks for a *fill* whenever it may be behind the exchange:

* at start: resume (everything after the last candle in storage, after a restart or a
  ``kill -9``): live closes wait until the gap to storage is closed;
* at start, a stream with nothing stored: **live first**. It owes its consumers every candle
  that closes after the start, from the one forming then (``StreamSequence.live_from``). Its
  first close (WebSocket, or a REST poll's final rows) is emitted at once when it is that one,
  and held behind a hole to fill when it is later; the warm-up history (the ring buffer's
  worth, up to the first owed candle) is fetched *behind* it at the lowest priority and goes
  to the buffer and the history handlers (storage), never to ``on_close``. A universe of
  thousands of streams takes minutes to warm up inside a venue's REST budget; its live closes
  do not wait for that.
  With ``emit_history`` (history replayed to consumers in order) the old way stays: live
  closes wait for the warm-up;
* after a break: the transport reported the stream DISCONNECTED, STALLED or SILENT and it is
  LIVE again;
* on a hole: a WebSocket close skipped ahead (it is held, not emitted, until the fill);
* on a late close: the ``x:true`` frame has not arrived a grace period after the close time.

A fill fetches every closed candle from the next expected open time up to the forming candle
over REST and merges it into the sequence, which emits one ordered series. One fill runs per
stream at a time (a request during a fill makes it run once more); REST concurrency and the
rate-limit budget are the history source's business (:class:`~candlekeeper.backfill.fetcher.
KlineFetcher`), which serves fills by priority (``backfill.slots``): the live guarantee first,
then resumes (smallest gaps first), then warm-up history (shortest intervals first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from candlekeeper.backfill.planner import count_open_times
from candlekeeper.backfill.slots import LIVE, Priority, resume, warm_up
from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import Clock
from candlekeeper.core.intervals import align, close_time, next_open, nominal_ms, prev_open
from candlekeeper.core.ratelog import RateLimitedLog
from candlekeeper.core.sequence import StreamSequence
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.core.venue_clock import VenueClock
from candlekeeper.errors import CandlekeeperError
from candlekeeper.gapfill_options import MAX_WARMUP_HISTORY as MAX_WARMUP_HISTORY
from candlekeeper.gapfill_options import GapFillOptions as GapFillOptions
from candlekeeper.gapfill_track import FetchAttempts, FillStats, PacedSource, Track, history_start
from candlekeeper.gapfill_track import HistorySource as HistorySource

log = logging.getLogger(__name__)


class GapFiller:
    """Runs fills for the streams of one feed."""

    def __init__(self, source: HistorySource, clock: Clock,
                 options: GapFillOptions | None = None, *, buffer_size: int = 500,
                 clock_ready: Callable[[], Awaitable[None]] | None = None) -> None:
        self.source = source
        self.clock = clock
        #: awaited before every fill: the venue's clock is known (``ClockSync.ready``), so no
        #: window end and no REST row is judged by a host clock that may be off
        self._clock_ready = clock_ready
        self.options = options or GapFillOptions()
        #: candles of warm-up per stream (``options.history``, or the buffer size it defaults to)
        self.history = self.options.warmup(buffer_size)
        self.stats = FillStats()
        self._tracks: dict[StreamKey, Track] = {}
        self._watch: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()  # a stream started being polled: look now
        self._running = False
        self._limited = RateLimitedLog(log)
        #: the base (host) clock's reading when the feed started: each live-first stream owes
        #: its consumers every candle that closes after it (``StreamSequence.live_from``)
        self._started_base_ms: int | None = None

    def track(self, key: StreamKey, seq: StreamSequence, *, resume: bool,
              on_history: Callable[[list[Candle]], object],
              stored: tuple[int, int] | None = None) -> None:
        """Register a stream. ``resume``: its sequence is anchored at the last stored candle
        and everything after it must be emitted. ``stored``: the oldest stored candle's open
        time and how many are stored, when fewer than the warm-up wants (the last run was
        stopped before its warm-up finished): the rest is fetched behind them."""
        emit = resume or self.options.emit_history
        t = self._tracks[key] = Track(key, seq, emit, on_history, self.options.close_margin_ms)
        if stored is not None and seq.anchored and not self.options.emit_history:
            oldest, count = stored
            if 0 < count < self.history:
                t.warm, t.warm_until, t.warm_count = True, oldest, self.history - count
        if not seq.anchored and self.history > 0:
            if emit:
                seq.wait_for_anchor = True  # history replayed in order: live closes wait
            else:
                t.warm = True  # live first, history behind
                if self._started_base_ms is not None:  # a stream added to a running feed
                    self._owe_from_start(t)

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        loop = asyncio.get_running_loop()
        clock = self.clock
        self._started_base_ms = (clock.base if isinstance(clock, VenueClock) else clock).time_ms()
        for t in self._tracks.values():
            if t.warm:
                self._owe_from_start(t)
                t.warm_task = loop.create_task(self._warm(t), name=f"gapfill:warm:{t.key}")
            if t.seq.anchored or (self.history > 0 and not t.warm):
                self.request(t.key, "start")
        self._watch = loop.create_task(self._watch_late_closes(), name="gapfill:watch")
        self._poller = loop.create_task(self._poll_closes(), name="gapfill:poll")

    def _owe_from_start(self, t: Track) -> None:
        """A live-first stream's first owed candle: the one forming at the feed's start, on
        the venue's clock as far as it is known. Placed again, while the stream is not
        anchored, once the clock is known (the warm-up and the fills wait for that first): a
        host clock 15 s off must not make a candle that closed just after the start count as
        history (host ahead), or one that closed before it as owed (host behind)."""
        assert self._started_base_ms is not None
        clock = self.clock
        start = (clock.at_base(self._started_base_ms) if isinstance(clock, VenueClock)
                 else self._started_base_ms)
        t.seq.live_from = align(start, t.key.interval)

    async def stop(self) -> None:
        self._running = False
        tasks = [t.task for t in self._tracks.values() if t.task is not None]
        tasks += [t.warm_task for t in self._tracks.values() if t.warm_task is not None]
        if self._watch is not None:
            tasks.append(self._watch)
        if self._poller is not None:
            tasks.append(self._poller)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watch = self._poller = None
        for t in self._tracks.values():
            t.task = t.warm_task = None

    # -- REST polling ---------------------------------------------------------------------
    def poll(self, key: StreamKey, on: bool = True, *,
             forming: Callable[[Candle], None] | None = None) -> None:
        """Poll ``key`` over REST at every close (``on``), or stop. A polled stream is fetched
        just after each of its candles is final (its close time plus ``close_margin_ms``, venue
        time), and each poll also hands the venue's forming candle to ``forming``. Whatever
        else delivers the stream (a WebSocket that is back) may keep doing so: the sequence
        emits each candle once, whichever source brings it first."""
        t = self._tracks.get(key)
        if t is None or t.polled == on:
            return
        t.polled = on
        t.on_forming = forming if on else None
        if on:
            self.stats.polled_streams += 1
            t.polled_through = -1  # poll at once: whatever closed before is due now
            if self._poller is not None:
                self._poke.set()
        else:
            self.stats.polled_streams -= 1

    @property
    def warming(self) -> int:
        """Streams whose warm-up history is still being fetched (behind their live closes)."""
        return sum(1 for t in self._tracks.values()
                   if t.warm_task is not None and not t.warm_task.done())

    def polled(self, key: StreamKey) -> bool:
        t = self._tracks.get(key)
        return t is not None and t.polled

    def fast(self, key: StreamKey) -> None:
        """Give ``key`` fast closes: each close is asked over REST ``fast_margin_ms`` after its
        close time (venue time) and REST's rows count as final from then on, unless the
        stream's own closing frame came first (then nothing is asked)."""
        t = self._tracks.get(key)
        if t is None or t.fast:
            return
        t.fast = True
        t.margin_ms = self.options.fast_margin_ms
        self.stats.fast_streams += 1

    async def _poll_closes(self) -> None:
        """Request a fill for every polled or fast stream whose candle became final since it
        was last looked at, then sleep until the next one is due (at most a quarter second:
        the venue clock's estimate may move). Scans rather than keeps a heap: a scan of
        thousands of streams is well under a millisecond, and a stream's next due time moves
        whenever its sequence does. Polls are spaced per stream so that together they stay
        within ``poll_budget_share`` of the venue's REST budget (:meth:`_poll_spacing`)."""
        while self._running:
            now = self.clock.time_ms()
            wall = time.monotonic()
            due = now + 60_000
            spacing = self._poll_spacing()
            for t in self._tracks.values():
                if not (t.polled or t.fast):
                    continue
                first_open = align(now - t.margin_ms, t.key.interval)  # first not final yet
                if first_open > t.polled_through and wall >= t.next_poll:
                    t.polled_through = first_open
                    if t.polled:
                        self.stats.polls += 1
                        self.request(t.key, "poll")
                        t.next_poll = wall + spacing
                    elif t.seq.anchored and t.seq.expected is not None \
                            and t.seq.expected < first_open:
                        # the stream's own closing frame has not come yet: ask REST
                        self.stats.fast_closes += 1
                        self.request(t.key, "fast close")
                        t.next_poll = wall + spacing
                due = min(due, next_open(first_open, t.key.interval) + t.margin_ms)
            self._poke.clear()
            wait = max(0.0, self.clock.wall_seconds(due - self.clock.time_ms()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(0.25, wait) + 0.001):
                    await self._poke.wait()

    def _poll_spacing(self) -> float:
        """Wall seconds between two polls of one stream: the polled and fast streams share
        ``poll_budget_share`` of the requests a second the venue's budget sustains (0 when the
        source does not say, or there is room for every close)."""
        if not isinstance(self.source, PacedSource):
            return 0.0
        streams = sum(1 for t in self._tracks.values() if t.polled or t.fast)
        share = self.source.requests_per_second() * self.options.poll_budget_share
        return streams / share if share > 0 else 0.0

    # -- triggers -------------------------------------------------------------------------
    def request(self, key: StreamKey, reason: str) -> None:
        """Ask for a fill of ``key`` (coalesced with one already running)."""
        t = self._tracks.get(key)
        if t is None or not self._running:
            return
        self.stats.requested += 1
        if reason == "hole":
            self.stats.holes += 1
        elif reason == "late close":
            self.stats.late_closes += 1
        elif reason == "break":
            self.stats.breaks += 1
        if t.task is not None and not t.task.done():
            t.want_again = True
            return
        t.task = asyncio.get_running_loop().create_task(self._fill(t, reason),
                                                        name=f"gapfill:{key}")

    def interrupted(self, key: StreamKey) -> None:
        """The transport lost the stream (disconnect, stall, silence)."""
        t = self._tracks.get(key)
        if t is not None:
            t.interrupted = True

    def live(self, key: StreamKey) -> None:
        """The stream delivers again: after an interruption, fetch what was missed."""
        t = self._tracks.get(key)
        if t is not None and t.interrupted:
            t.interrupted = False
            self.request(key, "break")

    # -- the fill -------------------------------------------------------------------------
    def _window(self, t: Track) -> tuple[int, int, bool] | None:
        """``(start, end, emit)`` of the next fill, or None when there is nothing to fetch."""
        # the forming candle is excluded (with a margin for a clock ahead of the venue's)
        end = align(self.clock.time_ms() - t.margin_ms, t.key.interval)
        seq = t.seq
        if seq.anchored:
            start, emit = seq.expected, True
            assert start is not None
        elif seq.held:
            start, emit = min(seq.held), True  # a close to confirm: it anchors the stream
        elif t.warm:
            if not t.polled:
                return None  # the first live close anchors it; ``_warm`` fetches history
            if 0 <= seq.live_from < end:
                # the first poll came after the candle forming at the start closed (a
                # universe's polls are spaced): everything since is owed
                start, emit = seq.live_from, True
            else:
                # a polled stream adopts the newest final candle (stored, not emitted, as a
                # WebSocket stream's first close is the first to close after the start)
                start, emit = prev_open(end, t.key.interval), False
        elif self.history > 0:
            start, emit = history_start(end, t.key.interval, self.history), t.emit_history
        else:
            return None
        return (start, end, emit) if start < end else None

    def _priority(self, t: Track, reason: str, start: int, end: int) -> Priority:
        if reason == "start" and t.seq.anchored:
            return resume(count_open_times(start, end, t.key.interval))
        return LIVE

    async def _fill(self, t: Track, reason: str) -> None:
        if self._clock_ready is not None:
            await self._clock_ready()
            if t.warm and not t.seq.anchored:
                self._owe_from_start(t)
        o = self.options
        hole_attempts = 0
        attempts = FetchAttempts(o.retry_initial_s, o.retry_max_s, o.max_fetch_attempts)
        while True:
            t.want_again = False
            progress_from = t.seq.last
            window = self._window(t)
            if window is not None:
                start, end, emit = window
                try:
                    candles = await self.source.fetch(
                        t.key.symbol, t.key.interval, start, end, forming=t.on_forming,
                        margin_ms=t.margin_ms, priority=self._priority(t, reason, start, end))
                except (CandlekeeperError, OSError, TimeoutError) as exc:
                    self.stats.failures += 1
                    self._limited.error(f"fill:{t.key}", "%s: REST fill (%s) failed: %s",
                                        t.key, reason, exc)
                    if await attempts.failed():
                        self._give_up(t, f"REST unavailable: {exc}")
                        return
                    continue
                attempts.succeeded()
                # Only the window: a row that became final while the request was under way
                # (the forming candle a poll asked for along) is past ``end``; the sequence
                # would ignore it, so it must not reach the history handlers either, or it is
                # stored as history now and emitted by the next fill (one candle twice).
                candles = [c for c in candles if start <= c.open_time < end]
                self.stats.fills += 1
                self.stats.rest_candles += len(candles)
                if not emit and t.seq.anchored:
                    # anchored while the request was under way (the warm-up, a live close):
                    # an ordinary fill now, which emits only what follows the anchor
                    emit = True
                if not emit:
                    t.on_history(candles)
                before = t.seq.unfillable
                t.seq.fill(candles, start, end, emit=emit)
                if t.seq.unfillable > before:
                    self._report_unfillable(t, t.seq.unfillable - before)
            else:
                t.seq.wait_for_anchor = False
                t.seq.fill((), 0, 0)
            if t.seq.has_hole:
                self._drop_impossible(t)
            if t.seq.has_hole:
                first_held = min(t.seq.held)
                ready_at = close_time(first_held, t.key.interval) + t.margin_ms + 1
                wait_ms = ready_at - self.clock.time_ms()
                if wait_ms > 0:
                    # REST may not be asked for the held candle before the close margin has
                    # passed (an inferred close of a venue without a closed flag): wait for it,
                    # this is no failure. Capped: the loop looks again at least this often.
                    await asyncio.sleep(min(self.clock.wall_seconds(wait_ms), o.retry_max_s))
                    continue
                # a hole that REST is still catching up on (it made progress) is not a failure
                if t.seq.last == progress_from:
                    hole_attempts += 1
                else:
                    hole_attempts = 1
                    attempts.progressed()
                if hole_attempts >= o.max_hole_attempts:
                    self._give_up(t, "REST does not have the missing candles")
                    return
                await attempts.pause()
                continue
            if not t.want_again:
                return

    async def _warm(self, t: Track) -> None:
        """The warm-up history of a stream with nothing stored, fetched behind its live closes.

        The range ends where the stream was anchored (its first close) or, while nothing
        anchored it yet, at the forming candle — then this fill anchors it (adopted, not
        emitted), as a warm-up always did. When a live close anchors the stream while the
        request waits (the common case in a large universe, where warm-ups queue for minutes
        behind the live fills), the stretch from the fetched range up to that close is fetched
        as well, and only then is anything handed on: history always reaches the anchor, so
        what is stored never has a hole below its newest candle (a restart resumes from the
        newest stored candle and could not see one). The rows go to the buffer and the history
        handlers only; ``on_close`` never sees them."""
        pending: dict[int, Candle] = {}  # fetched, held until it reaches the anchor
        lo: int | None = None  # fetched: [lo, covered)
        covered = 0
        o = self.options
        attempts = FetchAttempts(o.retry_initial_s, o.retry_max_s, o.max_fetch_attempts)
        interval = t.key.interval
        count = t.warm_count or self.history
        seq = t.seq
        while self._running:
            if self._clock_ready is not None:
                await self._clock_ready()
                if not seq.anchored:
                    self._owe_from_start(t)
            if t.warm_until is not None:
                until = t.warm_until
            elif seq.anchored:
                until = seq.first
            else:
                until = align(self.clock.time_ms() - t.margin_ms, interval)
                if 0 <= seq.live_from < until:
                    # candles closed since the start are owed as closes, not adopted as
                    # history: the history ends before them and fills emit them
                    until = seq.live_from
            want = history_start(until, interval, count)
            if lo is None:
                lo = covered = want
            # what is missing: older history (the anchor came before the end first asked for)
            # or the stretch up to the anchor
            window = (want, lo) if want < lo else (covered, until) if covered < until else None
            if window is not None:
                start, end = window
                try:
                    candles = await self.source.fetch(t.key.symbol, interval, start, end,
                                                      margin_ms=t.margin_ms,
                                                      priority=warm_up(nominal_ms(interval)))
                except (CandlekeeperError, OSError, TimeoutError) as exc:
                    self.stats.failures += 1
                    self._limited.error(f"warm:{t.key}", "%s: warm-up history failed: %s",
                                        t.key, exc)
                    if await attempts.failed():
                        log.error("%s: warm-up history unavailable (%s); the stream stays "
                                  "live without it", t.key, exc)
                        return
                    continue
                attempts.succeeded()
                self.stats.fills += 1
                pending.update((c.open_time, c) for c in candles if start <= c.open_time < end)
                if start < lo:
                    lo = start
                else:
                    covered = end
            if not seq.anchored:  # nothing live yet: the history anchors the stream
                rows = [pending[k] for k in sorted(pending)]
                self._hand_on(t, rows)
                seq.fill(rows, lo, covered, emit=False)
                if seq.has_hole:  # a close held meanwhile (an inferred one): confirm it
                    self.request(t.key, "hole")
                return
            if window is None:  # everything from ``want`` up to the anchor is here
                self._hand_on(t, [pending[k] for k in sorted(pending) if want <= k < until])
                return

    def _hand_on(self, t: Track, candles: list[Candle]) -> None:
        self.stats.warmups += 1
        self.stats.rest_candles += len(candles)
        t.on_history(candles)

    def _drop_impossible(self, t: Track) -> None:
        """Held closes that cannot have happened yet (further ahead of the clock than
        ``future_tolerance_ms``) are dropped: waiting for them would wedge the stream."""
        limit = self.clock.time_ms() + self.options.future_tolerance_ms
        interval = t.key.interval
        bogus = [ot for ot in t.seq.held if close_time(ot, interval) > limit]
        for ot in bogus:
            del t.seq.held[ot]
        if bogus:
            self.stats.rejected += len(bogus)
            self._limited.error(f"future:{t.key}", "%s: dropped %d held close(s) from the "
                                "future (first opens at %d)", t.key, len(bogus), min(bogus))

    def _give_up(self, t: Track, why: str) -> None:
        skipped = t.seq.skip_hole()
        t.seq.wait_for_anchor = False
        if skipped:
            self._report_unfillable(t, skipped)
        log.error("%s: could not fill the series (%s); continuing with a hole of %d candle(s)",
                  t.key, why, skipped)

    def _report_unfillable(self, t: Track, n: int) -> None:
        self.stats.unfillable += n
        log.error("%s: %d candle(s) missing from the exchange's own history were skipped",
                  t.key, n)

    # -- late closes ----------------------------------------------------------------------
    def _grace_ms(self) -> float:
        o = self.options
        return max(o.close_grace_ms, o.close_grace_wall_s * 1000.0 * self.clock.speed)

    async def _watch_late_closes(self) -> None:
        """Confirm over REST any close whose ``x:true`` frame is overdue."""
        while self._running:
            await asyncio.sleep(self._period())
            now_ms = self.clock.time_ms()
            wall = time.monotonic()
            grace = self._grace_ms()
            spacing: float | None = None
            for t in self._tracks.values():
                expected = t.seq.expected
                if expected is None or (t.task is not None and not t.task.done()):
                    continue
                if now_ms <= close_time(expected, t.key.interval) + grace:
                    t.backoff_s = 0.0
                    continue
                paced = t.polled or t.fast
                if wall < t.next_check or (paced and wall < t.next_poll):
                    # a polled or fast stream asks within its polls' share of the budget:
                    # this safety net (a poll that came too early for a final row) too
                    continue
                t.backoff_s = min(max(t.backoff_s * 2, self.options.retry_initial_s),
                                  self.options.retry_max_s)
                t.next_check = wall + t.backoff_s
                if paced:
                    if spacing is None:
                        spacing = self._poll_spacing()
                    t.next_poll = wall + spacing
                self.request(t.key, "late close")

    def _period(self) -> float:
        shortest = min((nominal_ms(k.interval) for k in self._tracks), default=60_000)
        return max(0.02, min(1.0, self.clock.wall_seconds(shortest) / 8))
