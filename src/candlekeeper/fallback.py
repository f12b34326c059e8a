"""Which streams of a feed are polled over REST, and the state they show: the transport mode.

* ``websocket``: never; the stream's states are the transport's.
* ``rest``: every stream, from the start, for good (state ``polling``, detail ``rest mode``).
* ``auto``: a stream the WebSocket has not kept ``live`` for ``fallback_after_s`` (the
  connection is refused — an HTTP 451/403 on the handshake —, keeps dropping, or the stream was
  acknowledged and stays silent), or whose connection broke ``fallback_breaks`` times within that
  time, is polled over REST instead (state ``polling``); once the WebSocket has kept it ``live``
  for ``recover_after_s`` again, polling stops and the stream shows ``live``.

Switching can never cost a candle or repeat one: the stream's sequence emits each open time once
and in order whichever source brings it, so a candle that both a poll and the WebSocket deliver
around a switch is emitted once, and a hole between them is filled like any other. The transport
keeps reconnecting in the background while a stream is polled; that is how it comes back.

The controller only decides; the gap filler polls (:meth:`GapFiller.poll`). Times here are
wall seconds (they are about connections, not candles).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable

from candlekeeper.backfill.options import DEFAULT_HEADROOM
from candlekeeper.core.events import StreamState, StreamStatus
from candlekeeper.core.intervals import MINUTE, nominal_ms
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.transport.options import TransportMode, TransportOptions
from candlekeeper.venues.contract import VenueSpec, klines_weight

log = logging.getLogger(__name__)

#: the detail of a stream that is polled because the feed runs in ``rest`` mode
REST_MODE = "rest mode"


class _Stream:
    __slots__ = ("breaks", "down_since", "live_since", "polled", "transport", "why")

    def __init__(self, now: float) -> None:
        self.transport = StreamState.SUBSCRIBING  # what the transport last said
        self.live_since: float | None = None  # when the transport last made it live
        self.down_since: float | None = now  # when it last stopped being live
        self.breaks: deque[float] = deque()  # when its connection broke, recently
        self.polled = False
        self.why = ""


class Fallback:
    """Decides, per stream, between the WebSocket and REST polling (see the module doc).

    ``poll(key, on)`` starts or stops polling a stream; ``show(status)`` publishes the state a
    consumer sees. ``now`` is injectable for tests (defaults to the running loop's time).
    """

    def __init__(self, mode: TransportMode, keys: Iterable[StreamKey],
                 options: TransportOptions, *, poll: Callable[[StreamKey, bool], None],
                 show: Callable[[StreamStatus], None], now_ms: Callable[[], int],
                 now: Callable[[], float] | None = None) -> None:
        self.mode = mode
        self.options = options
        self._poll = poll
        self._show = show
        self._now_ms = now_ms
        self._now = now or (lambda: asyncio.get_running_loop().time())
        self._streams: dict[StreamKey, _Stream] = {}
        self._keys = list(keys)
        self._task: asyncio.Task[None] | None = None
        self.fallbacks = 0  # streams moved to polling (auto mode)
        self.recoveries = 0  # streams moved back to the WebSocket

    @property
    def uses_websocket(self) -> bool:
        return self.mode is not TransportMode.REST

    def start(self) -> None:
        now = self._now()
        self._streams = {k: _Stream(now) for k in self._keys}
        if self.mode is TransportMode.REST:
            for key in self._keys:
                self._switch(key, True, REST_MODE)
        elif self.mode is TransportMode.AUTO:
            self._task = asyncio.get_running_loop().create_task(self._watch(),
                                                                name="fallback")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def polled(self, key: StreamKey) -> bool:
        st = self._streams.get(key)
        return st is not None and st.polled

    def polled_count(self) -> int:
        return sum(1 for st in self._streams.values() if st.polled)

    # -- what the transport says ------------------------------------------------------------
    def on_transport(self, status: StreamStatus) -> bool:
        """Record a transport state; True when it should be shown (the stream is not polled)."""
        st = self._streams.get(status.key)
        if st is None:
            return True
        now = self._now()
        if status.state is StreamState.LIVE:
            if st.transport is not StreamState.LIVE:
                st.live_since = now
            st.down_since = None
        else:
            if st.transport is StreamState.LIVE or st.down_since is None:
                st.down_since = now
            st.live_since = None
            if status.state is StreamState.DISCONNECTED and st.transport is StreamState.LIVE:
                st.breaks.append(now)
        st.transport = status.state
        if not st.polled:
            st.why = status.detail
        return not st.polled

    # -- the decision -----------------------------------------------------------------------
    def check(self) -> None:
        """One look at every stream (called periodically in ``auto`` mode)."""
        if self.mode is not TransportMode.AUTO:
            return
        o = self.options
        now = self._now()
        for key, st in self._streams.items():
            while st.breaks and now - st.breaks[0] > o.fallback_after_s:
                st.breaks.popleft()
            if not st.polled:
                # acknowledged and waiting for its first frame is no failure: a quiet symbol
                # may send nothing for most of an interval. The watchdog turns it SILENT if the
                # frame never comes (then the time down counts from before the subscribe)
                waiting = st.transport is StreamState.SUBSCRIBED
                if not waiting and st.down_since is not None \
                        and now - st.down_since >= o.fallback_after_s:
                    self._switch(key, True, f"websocket unavailable for "
                                            f"{now - st.down_since:.0f} s"
                                 + (f" ({st.why})" if st.why else ""))
                elif len(st.breaks) >= o.fallback_breaks:
                    self._switch(key, True, f"websocket broke {len(st.breaks)} times in "
                                            f"{o.fallback_after_s:g} s")
            elif st.live_since is not None and now - st.live_since >= o.recover_after_s:
                self._switch(key, False, "websocket back")

    def _switch(self, key: StreamKey, on: bool, why: str) -> None:
        st = self._streams[key]
        st.polled = on
        if on:
            st.breaks.clear()
            if why != REST_MODE:
                self.fallbacks += 1
                log.warning("%s: polling over REST: %s", key, why)
        else:
            self.recoveries += 1
            log.info("%s: back on the WebSocket (live for %.0f s); polling stops", key,
                     self.options.recover_after_s)
        self._poll(key, on)
        self._show(StreamStatus(key, StreamState.POLLING if on else st.transport, why,
                                self._now_ms()))

    async def _watch(self) -> None:
        period = max(0.05, min(1.0, self.options.fallback_after_s / 10))
        while True:
            await asyncio.sleep(period)
            self.check()


def poll_budget(spec: VenueSpec, keys: Iterable[StreamKey], share: float = 1.0,
                headroom: float = DEFAULT_HEADROOM) -> tuple[float, float, dict[str, int]]:
    """What polling ``keys`` asks of the venue's REST budget: ``(weight per minute needed,
    weight per minute the polls may use, streams of each interval that alone sustains)``.
    A poll is one klines request for two rows (the candle that closed and the forming one);
    the budget is the tightest of the venue's windows, scaled to a minute, of which the polls
    get ``share`` (``gap_fill.poll_budget_share``: the rest stays for fills)."""
    per_poll = klines_weight(spec, 2)
    allowed = min(w.limit * 60.0 / w.seconds for w in spec.rest_limits) * headroom * share
    need = 0.0
    intervals: dict[str, int] = {}
    for key in keys:
        need += per_poll * MINUTE / nominal_ms(key.interval)
        intervals[key.interval] = intervals.get(key.interval, 0) + 1
    sustains = {i: int(allowed / (per_poll * MINUTE / nominal_ms(i))) for i in intervals}
    return need, allowed, sustains


def say_budget(venue: str, spec: VenueSpec, keys: list[StreamKey], share: float = 1.0) -> bool:
    """One line at start: what REST polling of ``keys`` costs against the share of the venue's
    budget the polls may use, and a warning when it cannot keep up. True when it suffices."""
    need, allowed, sustains = poll_budget(spec, keys, share)
    per = ", ".join(f"{n:,} {i} streams" for i, n in sorted(
        sustains.items(), key=lambda kv: nominal_ms(kv[0])))
    part = "" if share >= 1.0 else f" ({share:.0%} of the venue's budget)"
    if need <= allowed:
        log.info("%s: polling %d stream(s) over REST needs %.0f of %.0f weight/min%s", venue,
                 len(keys), need, allowed, part)
        return True
    log.warning("%s: polling %d stream(s) over REST needs %.0f weight/min but the polls may use "
                "%.0f%s: polls will fall behind (that alone sustains at most %s)", venue,
                len(keys), need, allowed, part, per)
    return False
