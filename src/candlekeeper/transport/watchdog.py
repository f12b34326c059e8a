"""Per-stream liveness, judged in the venue's time.

How long a healthy stream may stay quiet depends on the venue. One that pushes every stream at
its cadence whether or not anything traded (``VenueSpec.pushes_when_quiet``) is overdue after
``min(interval, 60 s) + grace`` of *venue* time. One that pushes only when a trade changed the
candle (10.5 s between pushes measured on a quiet symbol, protocols.md §A.4; minutes on the
long tail of a whole universe) owes a quiet stream nothing until its candle closes: it is overdue
after ``interval + grace`` of venue time plus the venue's real close-frame delay. Judging the
long tail by the one-minute rule called its 1h streams stalled over and over at real cadence
(and asked REST for each), although nothing was wrong; a stream that really stops is still
caught when its close is late. A stream that has sent nothing for its threshold is STALLED;
one that never sent its first message after its subscription was acknowledged is SILENT — the
"subscribed but silent" failure of an unrouted legacy URL, which accepts subscriptions and then
pushes no klines. Venue durations become wall seconds through ``Clock.wall_seconds`` so the same
rules hold against an accelerated simulator.

One floor applies in *real* time: a venue pushes at most every ``VenueSpec.update_cadence_ms``
of real time (a spot venue's 2 s) and may stay quiet for ``close_frame_max_delay_ms`` after a
candle's close, whatever the clock's speed; no stream is called stalled before that quiet time
plus :data:`CADENCE_FLOOR` missed pushes. At speed 1 the floor never binds (seconds against a
minute); against a simulator at 60x a 65 s venue threshold is 1.1 s of wall time, shorter than
one 2 s push, and without the floor such streams looked stalled for the whole demo.

The hot path only increments :attr:`StreamSlot.count`; the periodic :func:`check` notices a
changed count and moves the "last seen" time, so no clock is read per frame. Its resolution is
the check period, which is a small fraction of the threshold.
"""

from __future__ import annotations

from collections.abc import Callable

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import Clock
from candlekeeper.core.events import StreamState
from candlekeeper.core.intervals import nominal_ms
from candlekeeper.core.stream_key import StreamKey

_WATCHED = (StreamState.SUBSCRIBED, StreamState.LIVE)


#: pushes a stream may miss (at the venue's real cadence) before it can count as stalled
CADENCE_FLOOR = 4


def stall_after_ms(interval: str, grace_ms: int, pushes_when_quiet: bool = True) -> int:
    """Venue milliseconds of silence after which a stream counts as stalled (the venue's real
    close-frame delay comes on top for a venue that pushes only with trades: see
    :func:`make_slot`)."""
    if pushes_when_quiet:
        return min(nominal_ms(interval), 60_000) + grace_ms
    return nominal_ms(interval) + grace_ms


def flow_after_ms(grace_ms: int) -> int:
    """Venue milliseconds within which a stream that is trading pushes, whatever its interval
    (a rotation waits this long for the streams it hands over, not a 1d stream's threshold)."""
    return 60_000 + grace_ms


class StreamSlot:
    """Mutable per-stream state owned by one session (not shared across threads)."""

    __slots__ = (
        "count",
        "deliver",
        "detail",
        "key",
        "last_wall",
        "seen",
        "since_wall",
        "stall_after_s",
        "state",
        "stream",
    )

    def __init__(self, key: StreamKey, stream: str, stall_after_s: float) -> None:
        self.key = key
        self.stream = stream
        self.stall_after_s = stall_after_s
        self.state = StreamState.DISCONNECTED
        self.detail = ""
        self.count = 0  # frames received for this stream (ever)
        self.seen = 0  # value of ``count`` at the last check
        self.last_wall = 0.0  # monotonic time a frame was last noticed
        self.since_wall = 0.0  # monotonic time of the last state change
        #: the listener's sink for this stream (set by the session); True = under pressure
        self.deliver: Callable[[Candle], bool] = _unset


def _unset(candle: Candle) -> bool:
    raise RuntimeError("stream slot used before the session attached its sink")


def make_slot(key: StreamKey, stream: str, clock: Clock, grace_ms: int,
              cadence_ms: int = 0, close_delay_ms: int = 0,
              pushes_when_quiet: bool = True) -> StreamSlot:
    """A slot whose stall threshold is the venue-time rule, but never shorter than the venue's
    real quiet time: ``close_delay_ms`` plus :data:`CADENCE_FLOOR` pushes of ``cadence_ms``.
    A venue that pushes only with trades may add its whole close delay to a quiet interval."""
    venue_s = clock.wall_seconds(stall_after_ms(key.interval, grace_ms, pushes_when_quiet))
    if not pushes_when_quiet:
        venue_s += close_delay_ms / 1000
    floor_s = (close_delay_ms + CADENCE_FLOOR * cadence_ms) / 1000
    return StreamSlot(key, stream, max(venue_s, floor_s))


def flow_after_s(clock: Clock, grace_ms: int, cadence_ms: int = 0,
                 close_delay_ms: int = 0) -> float:
    """Wall seconds within which a trading stream pushes (:func:`flow_after_ms`, with the same
    real-time floor as :func:`make_slot`)."""
    floor_s = (close_delay_ms + CADENCE_FLOOR * cadence_ms) / 1000
    return max(clock.wall_seconds(flow_after_ms(grace_ms)), floor_s)


def check(slot: StreamSlot, now: float) -> StreamState | None:
    """The state ``slot`` should move to at monotonic ``now``, or None if unchanged.

    Call periodically; it also records progress (``count`` vs ``seen``). The caller performs the
    transition (so it can emit an event).
    """
    if slot.count != slot.seen:
        slot.seen = slot.count
        slot.last_wall = now
    state = slot.state
    if state not in _WATCHED:
        return None
    if state is StreamState.SUBSCRIBED:
        # the first frame moves a stream to LIVE at once, so SUBSCRIBED means "none yet"
        return StreamState.SILENT if now - slot.since_wall >= slot.stall_after_s else None
    if now - max(slot.last_wall, slot.since_wall) >= slot.stall_after_s:
        return StreamState.STALLED
    return None


def min_stall_after_s(slots: list[StreamSlot]) -> float:
    return min((s.stall_after_s for s in slots), default=60.0)
