"""Request slots by priority: a freed slot goes to the most urgent waiter, ties in arrival
order; a waiter cancelled before or just as it is granted never leaks a slot."""

from __future__ import annotations

import asyncio

import pytest

from candlekeeper.backfill.slots import LIVE, PrioritySlots, resume, warm_up


async def test_waiters_are_served_by_priority_then_arrival() -> None:
    slots = PrioritySlots(1)
    order: list[str] = []
    gate = asyncio.Event()

    async def holder() -> None:
        async with slots.take(LIVE):
            await gate.wait()

    async def waiter(name: str, priority: tuple[int, int]) -> None:
        async with slots.take(priority):
            order.append(name)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    names = [("warm 1h", warm_up(3_600_000)), ("warm 1m", warm_up(60_000)),
             ("resume 50", resume(50)), ("live a", LIVE), ("resume 3", resume(3)),
             ("live b", LIVE)]
    tasks = [asyncio.create_task(waiter(n, p)) for n, p in names]
    await asyncio.sleep(0)
    assert slots.waiting == len(names)
    gate.set()
    await asyncio.gather(first, *tasks)
    assert order == ["live a", "live b", "resume 3", "resume 50", "warm 1m", "warm 1h"]


async def test_a_cancelled_waiter_does_not_leak_its_slot() -> None:
    slots = PrioritySlots(1)
    gate = asyncio.Event()

    async def holder() -> None:
        async with slots.take():
            await gate.wait()

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting.cancel()
    gate.set()
    await held
    with pytest.raises(asyncio.CancelledError):
        await waiting
    async with asyncio.timeout(1):
        async with slots.take():
            pass  # the slot came back


async def test_a_waiter_cancelled_as_it_is_granted_passes_the_slot_on() -> None:
    slots = PrioritySlots(1)
    gate = asyncio.Event()
    got: list[str] = []

    async def user(name: str) -> None:
        async with slots.take():
            got.append(name)
            await gate.wait()

    a = asyncio.create_task(user("a"))
    await asyncio.sleep(0)
    b = asyncio.create_task(user("b"))
    c = asyncio.create_task(user("c"))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.sleep(0)  # a finishes and grants b ...
    b.cancel()  # ... which is cancelled before it runs
    await asyncio.gather(a, c, b, return_exceptions=True)
    assert got == ["a", "c"]


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="n must be >= 1"):
        PrioritySlots(0)
