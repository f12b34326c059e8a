"""Outgoing control-message pacing (pure; time is passed in).

Venues disconnect a connection that sends more control messages per second than they allow
(``VenueSpec.control_messages_per_second``), and pings, pongs and JSON requests may all count
(protocols.md). The pacer spaces
messages at least ``1/rate`` apart — no bursts — which satisfies any sliding one-second window.
Mandatory replies (pongs) are recorded with :meth:`RatePacer.force`: they go out at once but push
the next optional message (a SUBSCRIBE) further back, so the budget is shared.
"""

from __future__ import annotations


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
