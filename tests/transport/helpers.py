"""Test helpers for the transport: a recording listener, Binance-shaped frames, a memory venue."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Sequence

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import Clock, SystemClock
from candlekeeper.core.events import (
    ConnectionState,
    ConnectionStatus,
    StreamState,
    StreamStatus,
)
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.transport.memory import MemoryConnector, MemoryPeer
from candlekeeper.transport.options import TransportOptions
from candlekeeper.transport.pool import ConnectionPool
from candlekeeper.venues.binance.endpoints import BINANCE_USDM
from candlekeeper.venues.binance.stream import BinanceStreamCodec

USDM = "binance-usdm"


def keys(n: int, interval: str = "1m", venue: str = USDM) -> list[StreamKey]:
    return [StreamKey(venue, f"S{i:04d}USDT", interval) for i in range(n)]


def kline_frame(key: StreamKey, open_time: int = 1_626_992_700_000, *, close: str = "7.6170",
                event_time: int = 1_626_992_741_424, closed: bool = False) -> str:
    """A combined-stream kline frame shaped exactly like the real capture."""
    sym = key.symbol
    return json.dumps({
        "stream": f"{sym.lower()}@kline_{key.interval}",
        "data": {"e": "kline", "E": event_time, "s": sym, "k": {
            "t": open_time, "T": open_time + 59_999, "s": sym, "i": key.interval,
            "f": 126902874, "L": 126902986, "o": "7.6080", "c": close, "h": "7.6180",
            "l": "7.6070", "v": "3005", "n": 113, "x": closed, "q": "22875.8590",
            "V": "1900", "Q": "14464.6960", "B": "0"}},
    }, separators=(",", ":"))


class Recorder:
    """A ``StreamListener`` that records everything and lets a test await a condition."""

    def __init__(self) -> None:
        self.candles: list[Candle] = []
        self.streams: list[StreamStatus] = []
        self.conns: list[ConnectionStatus] = []
        self.malformed: list[StreamKey] = []
        self.pressure = False
        self.relieved = asyncio.Event()
        self.raise_on_candle = False
        self._waiters: list[asyncio.Future[None]] = []

    # -- StreamListener -------------------------------------------------------------------------
    def stream_sink(self, key: StreamKey) -> Callable[[Candle], bool]:
        return self.on_candle

    def on_candle(self, candle: Candle) -> bool:
        if self.raise_on_candle:
            raise RuntimeError("listener bug")
        self.candles.append(candle)
        self._notify()
        return self.pressure

    def on_stream_status(self, status: StreamStatus) -> None:
        self.streams.append(status)
        self._notify()

    def on_connection_status(self, status: ConnectionStatus) -> None:
        self.conns.append(status)
        self._notify()

    def on_malformed(self, key: StreamKey) -> None:
        self.malformed.append(key)
        self._notify()

    async def relieve(self) -> None:
        await self.relieved.wait()
        self.pressure = False

    # -- test side ------------------------------------------------------------------------------
    def _notify(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds; re-checked after every callback."""
        async with asyncio.timeout(timeout):
            while not predicate():
                fut = asyncio.get_running_loop().create_future()
                self._waiters.append(fut)
                await fut

    def state_of(self, key: StreamKey) -> StreamState | None:
        for status in reversed(self.streams):
            if status.key == key:
                return status.state
        return None

    def states(self, key: StreamKey) -> list[StreamState]:
        return [s.state for s in self.streams if s.key == key]

    def conn_states(self) -> list[ConnectionState]:
        return [c.state for c in self.conns]

    def count(self, state: StreamState) -> int:
        """How many streams are currently in ``state``."""
        latest: dict[StreamKey, StreamState] = {}
        for s in self.streams:
            latest[s.key] = s.state
        return sum(1 for v in latest.values() if v is state)


async def ack_subscriptions(peer: MemoryPeer, reject: Iterable[str] = ()) -> None:
    """Play Binance's control protocol on a memory peer: ack every SUBSCRIBE, or answer with
    the real error frame when it names a stream in ``reject``."""
    bad = set(reject)
    while not peer.closed:
        try:
            sent = await peer.recv_text(timeout=30)
        except TimeoutError:
            return
        request = json.loads(sent.payload)
        if request.get("method") != "SUBSCRIBE":
            continue
        if bad & set(request["params"]):
            peer.send(json.dumps({"error": {"code": 2, "msg": "Invalid request: invalid stream"},
                                  "id": request["id"]}))
        else:
            peer.send(json.dumps({"result": None, "id": request["id"]}))


BASE = "ws://venue.test/market"
FAST = TransportOptions(backoff_initial_s=0.01, backoff_max_s=0.05, ack_timeout_s=1.0,
                        watchdog_period_s=0.01)


class Harness:
    def __init__(self, ks: Sequence[StreamKey], options: TransportOptions = FAST,
                 clock: Clock | None = None, codec: BinanceStreamCodec | None = None) -> None:
        self.keys = list(ks)
        self.rec = Recorder()
        self.connector = MemoryConnector()
        self.pool = ConnectionPool(codec or BinanceStreamCodec(BINANCE_USDM), self.keys, self.rec,
                                   ws_base=BASE, clock=clock or SystemClock(), options=options,
                                   connector=self.connector)
        self.task: asyncio.Task[None] | None = None
        self.responders: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.task = asyncio.create_task(self.pool.run())

    async def accept(self, *, ack: bool = True, reject: Sequence[str] = ()) -> MemoryPeer:
        peer = await self.connector.accept()
        if ack:
            self.responders.append(asyncio.create_task(ack_subscriptions(peer, reject)))
        return peer

    async def close(self) -> None:
        await self.pool.stop()
        if self.task is not None:
            await asyncio.wait_for(self.task, 2)
        for r in self.responders:
            r.cancel()
        await asyncio.gather(*self.responders, return_exceptions=True)


def make(made: list[Harness], *args: object, **kwargs: object) -> Harness:
    h = Harness(*args, **kwargs)  # type: ignore[arg-type]
    made.append(h)
    h.start()
    return h


async def seconds_until_live(pool: ConnectionPool, rec: Recorder, streams: int,
                             timeout: float) -> float:
    """Run ``pool`` until ``streams`` streams are LIVE, stop it, and return how long that took
    (wall seconds from the start of the run)."""
    started = time.monotonic()
    task = asyncio.create_task(pool.run())
    try:
        await rec.until(lambda: rec.count(StreamState.LIVE) == streams, timeout=timeout)
        return time.monotonic() - started
    finally:
        await pool.stop()
        await asyncio.wait_for(task, 5)
