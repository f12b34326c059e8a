"""Builders for candles and snapshot rows shared by the observability tests."""

from __future__ import annotations

from decimal import Decimal

from candlekeeper.core.candle import Candle
from candlekeeper.observability.snapshot import StreamRow


def candle(close: str = "64000.10", *, open_time: int = 1_700_000_040_000,
           event_time: int | None = 1_700_000_041_000, closed: bool = False,
           symbol: str = "BTCUSDT", interval: str = "1m") -> Candle:
    return Candle.of(
        venue="binance-usdm", symbol=symbol, interval=interval, open_time=open_time,
        close_time=open_time + 59_999, open=Decimal("63990.00"), high=Decimal("64010.50"),
        low=Decimal("63980.00"), close=Decimal(close), volume=Decimal("12.345"),
        closed=closed, event_time=event_time)


def row(symbol: str = "BTCUSDT", state: str = "live", **kw: object) -> StreamRow:
    fields: dict[str, object] = {"venue": "binance-usdm", "symbol": symbol, "interval": "1m",
                                 "state": state}
    fields.update(kw)
    return StreamRow(**fields)  # type: ignore[arg-type]
