"""Storage and publishing backends (sinks) and the batching writer that feeds each one."""

from candlekeeper.sinks.base import BatchingWriter, Sink, WriterStats
from candlekeeper.sinks.contract import Rejection
from candlekeeper.sinks.journal import Journal
from candlekeeper.sinks.postgres import PostgresSink
from candlekeeper.sinks.sqlite import SQLiteSink

__all__ = ["BatchingWriter", "Journal", "PostgresSink", "Rejection", "SQLiteSink", "Sink",
           "WriterStats"]
