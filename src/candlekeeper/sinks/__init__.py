"""Storage and publishing backends (sinks) and the batching writer that feeds each one."""

from candlekeeper.sinks.base import BatchingWriter, Sink, WriterStats, backoff_delays
from candlekeeper.sinks.sqlite import SQLiteSink

__all__ = ["BatchingWriter", "SQLiteSink", "Sink", "WriterStats", "backoff_delays"]
