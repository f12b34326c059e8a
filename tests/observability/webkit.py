"""A running service with its web page, fed by the in-process simulator (shared by the web
tests)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from candlekeeper.config import Config
from candlekeeper.service import Service
from candlekeeper.sim import Simulator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def web_config(sim: Simulator, db: Path, venues: tuple[str, ...], symbols: tuple[str, ...],
               intervals: tuple[str, ...], port: int, **http: Any) -> dict[str, Any]:
    return {
        "feeds": [{"venue": v, "symbols": list(symbols), "intervals": list(intervals),
                   "ws_url": sim.ws_base(v), "rest_url": sim.rest_base(v)} for v in venues],
        "sinks": {"sqlite": {"path": str(db), "flush_interval_s": 0.1}},
        "observability": {"http": {"port": port, **http}, "dashboard": False},
        "gap_fill": {"history": 60},
    }


@contextlib.asynccontextmanager
async def running_service(config: dict[str, Any], sim: Simulator) -> AsyncIterator[Service]:
    """The service running ``config`` on the simulator's (accelerated) clock until the block
    ends (ready: every feed started)."""
    service = Service(Config.from_dict(config), clock=sim.clock)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        async with asyncio.timeout(30):
            ready = asyncio.create_task(service.ready.wait())
            await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                ready.cancel()
                task.result()
                raise AssertionError("the service stopped before it was ready")
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def wait_for(cond: Any, timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None
