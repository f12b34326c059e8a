"""Finding the stream a venue answers by dropping the connection.

Some venues answer a SUBSCRIBE for a name they do not know with no error frame at all: the
server closes the socket (one venue does so within ~100 ms), which takes every stream of the
connection down with it. Reconnecting and subscribing the same list again would repeat that
forever. So a connection that breaks within :attr:`DropIsolation.window_s` of SUBSCRIBEs still
awaiting their reply makes those streams *suspects*; the next connection subscribes every other
stream first and then the suspects one at a time, each only once nothing else awaits a reply.
A suspect that is acknowledged is cleared; one that was the only SUBSCRIBE in flight when the
connection broke :attr:`strikes` times is the culprit, and the session marks it REJECTED (one
warning line) and carries on with the others. Two strikes, not one, so that a break that merely
coincides with a subscribe (a network fault) never costs a good stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from candlekeeper.core.stream_key import StreamKey
from candlekeeper.transport.watchdog import StreamSlot

#: a break this soon after a SUBSCRIBE was sent may be the venue's answer to it (seconds)
DROP_WINDOW_S: Final = 1.0
#: lone-suspect breaks before a stream is rejected
STRIKES: Final = 2


class DropIsolation:
    """Suspect bookkeeping of one session (see the module docstring)."""

    def __init__(self, window_s: float = DROP_WINDOW_S, strikes: int = STRIKES) -> None:
        self.window_s, self.strikes = window_s, strikes
        #: suspect stream -> breaks it was in flight for
        self.counts: dict[StreamKey, int] = {}

    def split(self, slots: Sequence[StreamSlot]) -> tuple[list[StreamSlot], list[StreamSlot]]:
        """(streams to subscribe as usual, suspects to subscribe one at a time, last)."""
        normal = [s for s in slots if s.key not in self.counts]
        return normal, [s for s in slots if s.key in self.counts]

    def on_break(self, pending: Iterable[tuple[list[StreamSlot], float]],
                 now: float) -> StreamSlot | None:
        """The connection broke with these SUBSCRIBEs (slots, loop time sent) unanswered;
        returns the stream to reject, if one is now known to be the cause."""
        recent = [slot for slots, sent_at in pending if now - sent_at <= self.window_s
                  for slot in slots]
        for slot in recent:
            self.counts[slot.key] = self.counts.get(slot.key, 0) + 1
        if len(recent) == 1 and self.counts[recent[0].key] >= self.strikes:
            del self.counts[recent[0].key]
            return recent[0]
        return None

    def acked(self, slots: Iterable[StreamSlot]) -> None:
        for slot in slots:
            self.counts.pop(slot.key, None)
