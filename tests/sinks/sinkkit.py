"""Shared helpers for the sink tests (imported by name: pytest puts this folder on sys.path):
a candle factory and sink wrappers that record, fail, block or hang on purpose around a real
SQLiteSink."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from candlekeeper.core.candle import Candle, Source
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import SinkError
from candlekeeper.sinks import Sink

if TYPE_CHECKING:
    from candlekeeper.sinks.contract import Rejection

KEY = StreamKey("binance-usdm", "SUSHIUSDT", "1m")
MINUTE = 60_000
T0 = 1_626_992_700_000


def make_candle(i: int, *, key: StreamKey = KEY, close: str = "7.6170", closed: bool = True,
                source: Source = "ws", first_trade_id: int | None = 126902874,
                event_time: int | None = None) -> Candle:
    """Candle number ``i`` of ``key`` (open time ``T0 + i`` minutes) with exchange-style decimal
    strings, trailing zeros included."""
    open_time = T0 + i * MINUTE
    return Candle.of(
        venue=key.venue, symbol=key.symbol, interval=key.interval,
        open_time=open_time, close_time=open_time + MINUTE - 1,
        open=Decimal("7.6080"), high=Decimal("7.6180"), low=Decimal("7.6070"),
        close=Decimal(close), volume=Decimal("3005"), quote_volume=Decimal("22875.8590"),
        trades=113 + i, taker_buy_base_volume=Decimal("1900"),
        taker_buy_quote_volume=Decimal("14464.6960"),
        first_trade_id=first_trade_id,
        last_trade_id=None if first_trade_id is None else first_trade_id + 112,
        closed=closed, event_time=open_time + MINUTE + 203 if event_time is None else event_time,
        source=source,
    )


class RecordingSink:
    """Delegates to a real sink and records every call; ``wait_for`` awaits a condition on the
    recorded state instead of sleeping."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.name = f"recording:{inner.name}"
        self.batches: list[list[Candle]] = []
        self.attempts = 0
        self.opens = 0
        self.closes = 0
        self._changed = asyncio.Condition()

    async def open(self) -> None:
        self.opens += 1
        await self.inner.open()

    async def close(self) -> None:
        self.closes += 1
        await self.inner.close()

    async def write(self, candles: Sequence[Candle]) -> Sequence[Rejection] | None:
        self.attempts += 1
        try:
            await self.before_write(candles)
            rejected = await self.inner.write(candles)
            self.batches.append(list(candles))
            return rejected
        finally:
            async with self._changed:
                self._changed.notify_all()

    async def before_write(self, candles: Sequence[Candle]) -> None:
        """Hook for the failure-injecting subclasses."""

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    @property
    def sizes(self) -> list[int]:
        return [len(b) for b in self.batches]


class FailingSink(RecordingSink):
    """The first ``fail_times`` writes raise (like a full disk); later ones go through."""

    def __init__(self, inner: Sink, fail_times: int, exc: Exception | None = None) -> None:
        super().__init__(inner)
        self.fail_times = fail_times
        self.exc = exc

    async def before_write(self, candles: Sequence[Candle]) -> None:
        if self.attempts <= self.fail_times:
            raise self.exc or SinkError(f"simulated failure {self.attempts}/{self.fail_times}")


class GateSink(RecordingSink):
    """Each write waits until ``gate`` is set; ``entered`` is set when a write is waiting."""

    def __init__(self, inner: Sink) -> None:
        super().__init__(inner)
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def before_write(self, candles: Sequence[Candle]) -> None:
        self.entered.set()
        await self.gate.wait()


class HangOnceSink(RecordingSink):
    """The first write never returns (a database that stopped answering)."""

    async def before_write(self, candles: Sequence[Candle]) -> None:
        if self.attempts == 1:
            await asyncio.Event().wait()
