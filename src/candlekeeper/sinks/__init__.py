"""Storage and publishing backends (sinks) and the batching writer that feeds each one.

A *sink* is a storage or publishing backend (SQLite, PostgreSQL, NATS JetStream). It only has to
do one thing well: write a batch of candles idempotently on the natural key
``(venue, symbol, interval, open_time)``, raising :class:`~candlekeeper.errors.SinkError` when
the batch could not be stored (an outage) and returning the candles it refuses as data
(:class:`~candlekeeper.sinks.contract.Rejection`). Everything about *when* to write — batching by
size or time, retrying with the one backoff policy, bounding memory, spilling to a durable
journal during outages, draining on shutdown — lives once in
:class:`~candlekeeper.sinks.writer.BatchingWriter`, so every backend gets the same behaviour and
the feed is isolated from every backend: ``submit`` is O(1) and never blocks or raises. One
writer per sink: a slow or failing backend never stalls the others.

``SQLiteSink`` needs nothing beyond the standard library. ``PostgresSink`` (asyncpg) and
``NatsSink`` (nats-py) come with the ``service`` extra (``pip install 'candlekeeper[service]'``)
and are imported on first use, so a library install without them still has the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from candlekeeper.sinks.contract import Rejection, Sink, WriterStats
from candlekeeper.sinks.journal import Journal
from candlekeeper.sinks.sqlite import SQLiteSink
from candlekeeper.sinks.writer import BatchingWriter

if TYPE_CHECKING:  # pragma: no cover
    from candlekeeper.sinks.nats import NatsSink
    from candlekeeper.sinks.postgres import PostgresSink

__all__ = ["BatchingWriter", "Journal", "NatsSink", "PostgresSink", "Rejection", "SQLiteSink",
           "Sink", "WriterStats"]

_LAZY = {"PostgresSink": "candlekeeper.sinks.postgres", "NatsSink": "candlekeeper.sinks.nats"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)
