"""The sink contract and the batching writer that feeds one sink.

A *sink* is a storage or publishing backend (SQLite, PostgreSQL, NATS JetStream). It
only has to do one thing well: write a batch of candles idempotently on the natural key
``(venue, symbol, interval, open_time)``, raising :class:`~candlekeeper.errors.SinkError` when the
batch could not be stored (an outage) and returning the candles it refuses as data
(:class:`~candlekeeper.sinks.contract.Rejection`). Everything about *when* to write — batching
by size or time, retrying with backoff, bounding memory, spilling to a durable journal during
outages, draining on shutdown — lives once in :class:`BatchingWriter`, so every backend gets the
same behaviour and the feed is isolated from every backend: ``submit`` is O(1) and never blocks
or raises, whatever the disk or database is doing.

Why one writer per sink: with several sinks configured (issue 4), a slow or failing one must not
stall the others, so each gets its own buffer, task, journal and failure counters.

This module re-exports the pieces: the contract and counters live in
:mod:`candlekeeper.sinks.contract`, the writer in :mod:`candlekeeper.sinks.writer`, the outage
journal in :mod:`candlekeeper.sinks.journal`.
"""

from __future__ import annotations

from candlekeeper.sinks.contract import Rejection, Sink, WriterStats
from candlekeeper.sinks.writer import BatchingWriter

__all__ = ["BatchingWriter", "Rejection", "Sink", "WriterStats"]
