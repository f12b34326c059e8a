"""Outgoing control-message pacing (pure; time is passed in).

Venues disconnect a connection that sends more control messages per second than they allow
(``VenueSpec.control_messages_per_second``), and pings, pongs and JSON requests may all count
(protocols.md). The pacer spaces
messages at least ``1/rate`` apart — no bursts — which satisfies any sliding one-second window.
Mandatory replies (pongs) are recorded with :meth:`RatePacer.force`: they go out at once but push
the next optional message (a SUBSCRIBE) further back, so the budget is shared.

A venue may also cap the messages one IP sends across *all* its connections
(``VenueSpec.ip_message_limits``, e.g. 2000 a minute). Every connection of the process
to such a venue then shares one :class:`WindowPacer` (:func:`ip_pacer_for`), combined with its
own :class:`RatePacer` (:class:`SharedPacer`): a message waits for both.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Final, Protocol

from candlekeeper.venues.contract import RestWindow, VenueSpec

#: each per-IP window is treated as this much longer than the venue states (the venue counts
#: arrivals, and a message may take a little longer on the wire than the one before it)
WINDOW_MARGIN: Final = 0.1


class Pacer(Protocol):
    def delay(self, now: float) -> float: ...

    def take(self, now: float) -> None: ...

    def force(self, now: float) -> None: ...


class RatePacer:
    def __init__(self, rate_per_s: float) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate must be > 0")
        self.spacing = 1.0 / rate_per_s
        self._next = float("-inf")

    def delay(self, now: float) -> float:
        """Seconds to wait before the next message may be sent (0 when it may go now)."""
        return max(0.0, self._next - now)

    def take(self, now: float) -> None:
        """Record a message sent at ``now`` (which should be when :meth:`delay` is 0)."""
        self._next = max(self._next, now) + self.spacing

    def force(self, now: float) -> None:
        """Record a mandatory message sent at ``now`` regardless of the budget."""
        self.take(now)


class WindowPacer:
    """Messages in sliding windows (``(seconds, limit)``, each widened by ``margin``), shared by
    every connection of a process to one venue: :meth:`delay` says how long until one more
    fits in every window. Mandatory messages (:meth:`force`) are counted whatever the count,
    so the optional ones (subscribes) leave room for them. Thread-safe (one instance serves
    every event loop of the process)."""

    def __init__(self, windows: tuple[RestWindow, ...], *, fraction: float = 1.0,
                 margin: float = WINDOW_MARGIN) -> None:
        if not windows or any(w.limit < 1 or w.seconds <= 0 for w in windows):
            raise ValueError(f"bad message limits {windows}")
        self.windows = tuple((w.seconds * (1 + margin), max(1, int(w.limit * fraction)))
                             for w in windows)
        self._longest = max(s for s, _ in self.windows)
        self._sent: deque[float] = deque()  # send times, ascending
        self._lock = threading.Lock()

    def delay(self, now: float) -> float:
        with self._lock:
            self._prune(now)
            wait = 0.0
            sent = self._sent
            for seconds, limit in self.windows:
                if len(sent) >= limit:
                    # the message ``limit`` places back must have left the window
                    wait = max(wait, sent[-limit] + seconds - now)
            return wait

    def take(self, now: float) -> None:
        with self._lock:
            self._prune(now)
            sent = self._sent
            sent.append(max(now, sent[-1]) if sent else now)

    def force(self, now: float) -> None:
        self.take(now)

    def _prune(self, now: float) -> None:
        sent = self._sent
        while sent and sent[0] <= now - self._longest:
            sent.popleft()


class SharedPacer:
    """A connection's own :class:`RatePacer` and its venue's per-IP :class:`WindowPacer`: a
    message may go when both allow it, and counts against both."""

    __slots__ = ("own", "shared")

    def __init__(self, own: RatePacer, shared: WindowPacer) -> None:
        self.own, self.shared = own, shared

    def delay(self, now: float) -> float:
        return max(self.own.delay(now), self.shared.delay(now))

    def take(self, now: float) -> None:
        self.own.take(now)
        self.shared.take(now)

    def force(self, now: float) -> None:
        self.own.force(now)
        self.shared.force(now)


_IP_PACERS: dict[tuple[str, tuple[RestWindow, ...], float], WindowPacer] = {}
_IP_PACERS_LOCK = threading.Lock()


def ip_pacer_for(spec: VenueSpec, fraction: float) -> WindowPacer | None:
    """The process-wide per-IP message pacer of one venue, keeping to ``fraction`` of each
    window's limit (None when the venue states no per-IP message limit)."""
    if not spec.ip_message_limits:
        return None
    key = (spec.id, spec.ip_message_limits, fraction)
    with _IP_PACERS_LOCK:
        pacer = _IP_PACERS.get(key)
        if pacer is None:
            pacer = _IP_PACERS[key] = WindowPacer(spec.ip_message_limits, fraction=fraction)
        return pacer


def pacer_for(spec: VenueSpec, rate_per_s: float, fraction: float) -> Pacer:
    """One connection's pacer: its own rate, and the venue's per-IP windows if it has any."""
    own = RatePacer(rate_per_s)
    shared = ip_pacer_for(spec, fraction)
    return own if shared is None else SharedPacer(own, shared)
