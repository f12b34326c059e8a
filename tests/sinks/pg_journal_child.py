"""Child process for the PostgreSQL outage tests: a ``BatchingWriter`` + ``PostgresSink`` with an
outage journal, started while the database is down (``retry_open``).

Usage: ``python pg_journal_child.py DSN JOURNAL_DIR COUNT``: submits candles ``0..COUNT-1``, prints
``spilled N`` once all of them are in the journal, then waits to be killed (``kill -9``).
"""

from __future__ import annotations

import asyncio
import sys

from sinkkit import make_candle

from candlekeeper.sinks import BatchingWriter
from candlekeeper.sinks.postgres import PostgresSink


async def main(dsn: str, journal: str, count: int) -> None:
    sink = PostgresSink(dsn, connect_timeout_s=1.0)
    writer = BatchingWriter(sink, batch_size=50, flush_interval_s=0.0, retry_initial_s=0.05,
                            retry_max_s=0.2, journal_dir=journal, retry_open=True)
    await writer.start()
    for i in range(count):
        writer.submit(make_candle(i))
    while writer.stats.journal_rows < count:
        await asyncio.sleep(0.01)
    print(f"spilled {writer.stats.journal_rows}", flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
