"""Storage and publishing backends (sinks) and the batching writer that feeds each one.

``SQLiteSink`` needs nothing beyond the standard library. ``PostgresSink`` (asyncpg) and
``NatsSink`` (nats-py) come with the ``service`` extra (``pip install 'candlekeeper[service]'``)
and are imported on first use, so a library install without them still has the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from candlekeeper.sinks.base import BatchingWriter, Sink, WriterStats
from candlekeeper.sinks.contract import Rejection
from candlekeeper.sinks.journal import Journal
from candlekeeper.sinks.sqlite import SQLiteSink

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
