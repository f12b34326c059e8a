"""The sink contract (:class:`Sink`), the writer's counters (:class:`WriterStats`) and the backoff
policy, shared by every backend and by :class:`~candlekeeper.sinks.writer.BatchingWriter`.

Kept apart from the writer so a backend can implement the contract without importing the writer
(``candlekeeper.sinks`` re-exports the public names).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import msgspec

from candlekeeper.core.candle import Candle

__all__ = ["Rejection", "Sink", "WriterStats", "candle_id"]

#: longest reason or candle identity kept in a :class:`Rejection` (a log line must stay a line)
_MAX_TEXT = 200


def candle_id(candle: Candle) -> str:
    """``venue:symbol:interval:open_time``, safe for any candle, however malformed (for logs)."""
    text = f"{candle.venue}:{candle.symbol}:{candle.interval}:{candle.open_time}"
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT - 3] + "..."


class Rejection(msgspec.Struct, frozen=True):
    """A candle a sink can never store, and why: the backend refused *this row's data* (a value
    it cannot hold, a constraint it violates). Never an outage: a backend that is down, full or
    unreachable raises instead, and the writer keeps and retries the batch."""

    candle: Candle
    reason: str

    @classmethod
    def of(cls, candle: Candle, reason: object) -> Rejection:
        text = " ".join(str(reason).split())
        return cls(candle, text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT - 3] + "...")


@runtime_checkable
class Sink(Protocol):
    """A backend that stores (or publishes) closed candles.

    Contract every implementation keeps:

    * ``open()`` and ``close()`` are idempotent (the writer calls them, and a service may too).
    * ``write()`` is idempotent on ``(venue, symbol, interval, open_time)``: writing the same
      candle twice never creates a second row/message, and a candle already stored never makes the
      batch fail (cryptofeed's "one duplicate drops the whole batch" bug).
    * ``write()`` either stores the whole batch or raises ``SinkError`` (then nothing must be
      half-visible, or the partial part must be harmless to re-write — which idempotency gives).
      The writer treats every raise as an outage: it keeps the batch and retries it.
    * A candle the backend can never store (its *data* is refused: a malformed value, a
      constraint) must not fail the batch — that would retry it forever. ``write()`` stores the
      others and returns those candles as :class:`Rejection` s (``None`` or an empty sequence:
      everything was stored). The writer counts and logs them; they are never retried.
    * Optional: ``in_order_only = True`` for a backend that must receive each series in open-time
      order (a message stream): the service then gives it no warm-up history, which is fetched
      behind the first live closes.
    * Optional: ``redact(text) -> str``, masking the sink's credentials in any text. When
      present, the writer passes every exception text it logs or keeps in ``last_error``
      through it (URL user info and ``password=`` values are masked in any case).
    """

    name: str

    async def open(self) -> None: ...

    async def write(self, candles: Sequence[Candle]) -> Sequence[Rejection] | None: ...

    async def close(self) -> None: ...


class WriterStats(msgspec.Struct, frozen=True):
    """A snapshot of one writer's counters (cheap to take; safe to show on a dashboard).

    ``pending`` is everything not yet written: ``in_memory`` (queued, in flight or being spilled)
    plus ``journal_rows`` (spilled to the on-disk journal, replayed first). ``dropped`` is the
    number of candles discarded by the overflow policy — any non-zero value means data loss.
    ``rejected`` counts candles the backend refused as data it can never store (not in
    ``written``; ``last_rejection`` names the latest and why).
    ``oldest_pending_age_s`` is how long the oldest unwritten candle has waited (wall clock, so it
    survives a restart for journalled candles); it is the backlog metric to alert on.
    ``journal_errors`` counts failed journal operations (the candles then stay in memory) and
    ``journal_corrupt_bytes`` the bytes of torn or damaged records discarded when the journal was
    opened (a crash mid-append tears at most the record being written).
    """

    written: int
    pending: int
    batches: int
    failures: int
    retries: int
    dropped: int
    last_error: str | None
    last_flush_monotonic: float | None
    in_memory: int = 0
    journal_rows: int = 0
    journal_bytes: int = 0
    spilled: int = 0
    replayed: int = 0
    journal_errors: int = 0
    journal_corrupt_bytes: int = 0
    oldest_pending_age_s: float | None = None
    rejected: int = 0
    last_rejection: str | None = None
