"""The sink contract and the batching writer that feeds one sink.

A *sink* is a storage or publishing backend (SQLite now; PostgreSQL and NATS JetStream later). It
only has to do one thing well: write a batch of candles idempotently on the natural key
``(venue, symbol, interval, open_time)``, raising :class:`~candlekeeper.errors.SinkError` when the
batch could not be stored. Everything about *when* to write — batching by size or time, retrying
with backoff, bounding memory, draining on shutdown — lives once in :class:`BatchingWriter`, so
every backend gets the same behaviour and the feed is isolated from every backend: ``submit`` is
O(1) and never blocks or raises, whatever the disk or database is doing.

Why one writer per sink: with several sinks configured (issue 4), a slow or failing one must not
stall the others, so each gets its own buffer, task and failure counters.
"""

from __future__ import annotations

from candlekeeper.sinks.contract import Sink, WriterStats, backoff_delays
from candlekeeper.sinks.writer import BatchingWriter

__all__ = ["BatchingWriter", "Sink", "WriterStats", "backoff_delays"]
