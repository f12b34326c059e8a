"""Child process for the restart tests: writes candles ``START..STOP-1`` of the test series into
an SQLite file through ``BatchingWriter`` + ``SQLiteSink``.

Usage: ``python writer_child.py DB START STOP MODE`` with MODE one of

* ``exit``: submit everything, stop (drain) and exit 0;
* ``slow``: batches of 10, printing ``written N`` after every flush, until killed;
* ``sigterm``: submit everything without flushing, print ``ready``, and on SIGTERM stop (drain)
  and exit 0 — the service's graceful shutdown path.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from sinkkit import make_candle

from candlekeeper.sinks import BatchingWriter
from candlekeeper.sinks.sqlite import SQLiteSink


async def main(db: str, start: int, stop: int, mode: str) -> None:
    batch_size = 10 if mode == "slow" else 100_000
    writer = BatchingWriter(SQLiteSink(db), batch_size=batch_size, flush_interval_s=3600.0)
    await writer.start()
    if mode == "slow":
        reported = 0
        for i in range(start, stop):
            writer.submit(make_candle(i))
            # throttled so the parent's SIGKILL always lands mid-stream, however fast we are
            await asyncio.sleep(0.001 if i % 10 == 9 else 0)
            if writer.stats.written != reported:
                reported = writer.stats.written
                print(f"written {reported}", flush=True)
        await asyncio.Event().wait()  # until killed
    for i in range(start, stop):
        writer.submit(make_candle(i))
    if mode == "sigterm":
        term = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, term.set)
        print(f"ready {writer.stats.pending}", flush=True)
        await term.wait()
    await writer.stop(drain_timeout_s=30.0)
    print(f"done {writer.stats.written}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
