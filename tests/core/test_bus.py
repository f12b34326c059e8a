from __future__ import annotations

import asyncio
import threading

import pytest

from candlekeeper.core.bus import EventBus, OverflowPolicy


class Ev:
    def __init__(self, n: int) -> None:
        self.n = n


async def test_sync_and_async_handlers_receive_in_order() -> None:
    bus = EventBus()
    got_sync: list[int] = []
    got_async: list[int] = []
    done = asyncio.Event()

    async def ahandler(e: Ev) -> None:
        got_async.append(e.n)
        if e.n == 99:
            done.set()

    bus.subscribe(Ev, lambda e: got_sync.append(e.n))
    bus.subscribe(Ev, ahandler)
    await bus.start()
    for i in range(100):
        bus.publish(Ev(i))
    await asyncio.wait_for(done.wait(), 5)
    await bus.stop()
    assert got_sync == list(range(100))
    assert got_async == list(range(100))


async def test_raising_handler_is_counted_and_feed_continues() -> None:
    bus = EventBus()
    seen: list[int] = []

    def bad(e: Ev) -> None:
        if e.n % 2:
            raise RuntimeError("boom")
        seen.append(e.n)

    sub = bus.subscribe(Ev, bad)
    inline = bus.subscribe(Ev, bad, inline=True)
    await bus.start()
    for i in range(10):
        bus.publish(Ev(i))
    await bus.stop()
    assert seen.count(0) == 2 and len(seen) == 10
    assert sub.errors == 5 and sub.delivered == 5
    assert inline.errors == 5 and inline.delivered == 5


async def test_drop_oldest_keeps_newest_and_counts() -> None:
    bus = EventBus()
    got: list[int] = []
    sub = bus.subscribe(Ev, lambda e: got.append(e.n), maxsize=3,
                        policy=OverflowPolicy.DROP_OLDEST)
    for i in range(10):  # not started: nothing drains
        bus.publish(Ev(i))
    assert sub.dropped == 7
    await bus.start()
    await bus.stop()
    assert got == [7, 8, 9]


async def test_drop_newest_keeps_queued() -> None:
    bus = EventBus()
    got: list[int] = []
    sub = bus.subscribe(Ev, lambda e: got.append(e.n), maxsize=3,
                        policy=OverflowPolicy.DROP_NEWEST)
    for i in range(10):
        bus.publish(Ev(i))
    await bus.start()
    await bus.stop()
    assert got == [0, 1, 2] and sub.dropped == 7


async def test_block_policy_never_drops_and_signals_pressure() -> None:
    bus = EventBus()
    got: list[int] = []
    release = asyncio.Event()

    async def slow(e: Ev) -> None:
        await release.wait()
        got.append(e.n)

    sub = bus.subscribe(Ev, slow, maxsize=5, policy=OverflowPolicy.BLOCK)
    await bus.start()
    for i in range(20):  # over capacity: accepted anyway (never dropped), pressure raised
        bus.publish(Ev(i))
    assert bus.pressure
    await asyncio.sleep(0.01)  # the handler takes the queued batch and blocks on the first
    for i in range(20, 25):  # the queue refills to capacity while the handler is stuck
        bus.publish(Ev(i))
    relieved = asyncio.create_task(bus.relieve())
    await asyncio.sleep(0.01)
    assert not relieved.done()  # the publisher stays blocked while the consumer is
    release.set()
    await asyncio.wait_for(relieved, 5)
    assert not bus.pressure
    await bus.stop()
    assert got == list(range(25)) and sub.dropped == 0


async def test_stream_iterator_ends_on_stop() -> None:
    bus = EventBus()
    await bus.start()
    it = bus.stream(Ev)
    out: list[int] = []

    async def consume() -> None:
        async for e in it:
            out.append(e.n)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    for i in range(5):
        bus.publish(Ev(i))
    await asyncio.sleep(0.01)
    await bus.stop()
    await asyncio.wait_for(task, 5)
    assert out == [0, 1, 2, 3, 4]


def test_inline_rejects_async_handler() -> None:
    async def h(e: Ev) -> None:
        return None

    with pytest.raises(TypeError):
        EventBus().subscribe(Ev, h, inline=True)


def test_publish_without_subscribers_is_noop() -> None:
    EventBus().publish(Ev(1))
    assert threading.active_count() >= 1
