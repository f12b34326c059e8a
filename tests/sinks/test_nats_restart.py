"""A nats-server restart (and a crash) mid-run loses nothing and duplicates nothing: a
``BatchingWriter(NatsSink)`` keeps receiving candles while the server goes away and comes back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from natskit import msg_ids, stream_messages
from sinkkit import make_candle

from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.sinks import BatchingWriter
from candlekeeper.sinks.nats import NatsSink
from candlekeeper.sinks.nats_schema import msg_id
from servers import NatsServer

KEYS = [StreamKey("binance-usdm", f"SYM{i}USDT", "1m") for i in range(5)]


def crash(server: NatsServer) -> None:
    """kill -9: no graceful shutdown, acks in flight are lost."""
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait(timeout=10)
    server.proc = None


async def until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("outage", ["restart", "crash"])
async def test_outage_mid_run_loses_and_duplicates_nothing(nats: NatsServer, outage: str) -> None:
    sink = NatsSink(nats.url, reconnect_wait_s=0.1, ack_timeout_s=1.0)
    writer = BatchingWriter(sink, batch_size=25, flush_interval_s=0.02, retry_initial_s=0.05,
                            retry_max_s=0.3, write_timeout_s=5.0)
    await writer.start()
    submitted: list[Candle] = []

    async def feed(n: int) -> None:
        for _ in range(n):
            i = len(submitted)
            c = make_candle(i // len(KEYS), key=KEYS[i % len(KEYS)])
            submitted.append(c)
            writer.submit(c)
            await asyncio.sleep(0.001)

    try:
        await feed(300)
        await until(lambda: writer.stats.written >= 150)
        producer = asyncio.create_task(feed(700))  # the feed never pauses for the outage
        await asyncio.to_thread(nats.stop if outage == "restart" else lambda: crash(nats))
        await until(lambda: writer.stats.failures >= 1)  # the writer noticed and keeps retrying
        await asyncio.to_thread(nats.start)
        await producer
        await until(lambda: writer.stats.written == len(submitted), timeout=30)
    finally:
        await writer.stop(drain_timeout_s=20)
    stats = writer.stats
    assert stats.pending == 0 and stats.dropped == 0 and stats.failures >= 1
    ids = msg_ids(await stream_messages(nats.url))
    assert len(submitted) == 1000
    assert len(ids) == len(set(ids)) == 1000, "one message per natural key"
    assert set(ids) == {msg_id(c) for c in submitted}
    # per series the stream holds the closes in open-time order
    for key in KEYS:
        series = [i for i in ids if i.startswith(f"{key}:")]
        assert series == sorted(series, key=lambda s: int(s.rsplit(":", 1)[1]))
