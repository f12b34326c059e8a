"""The ``Candle`` value object.

Prices and volumes are ``Decimal`` built directly from the exchange's decimal strings, so the
stored value equals what the exchange sent, trailing zeros included (``str(c.close) == "7.6170"``).
Fields a venue does not provide (BingX has no trade count, for example) are ``None``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from candlekeeper.core.stream_key import StreamKey

Source = Literal["ws", "rest"]


class Candle(msgspec.Struct, frozen=True, gc=False):
    """One kline. ``closed`` is True only for a final candle."""

    venue: str
    symbol: str
    interval: str
    open_time: int
    close_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal | None = None
    trades: int | None = None
    taker_buy_base_volume: Decimal | None = None
    taker_buy_quote_volume: Decimal | None = None
    first_trade_id: int | None = None
    last_trade_id: int | None = None
    closed: bool = False
    event_time: int | None = None
    source: Source = "ws"

    @property
    def key(self) -> StreamKey:
        return StreamKey(self.venue, self.symbol, self.interval)

    def same_values(self, other: Candle) -> bool:
        """True when every market field is equal (ignores ``source`` and ``event_time``)."""
        return (
            self.key == other.key
            and self.open_time == other.open_time
            and self.close_time == other.close_time
            and self.open == other.open
            and self.high == other.high
            and self.low == other.low
            and self.close == other.close
            and self.volume == other.volume
            and self.quote_volume == other.quote_volume
            and self.trades == other.trades
            and self.taker_buy_base_volume == other.taker_buy_base_volume
            and self.taker_buy_quote_volume == other.taker_buy_quote_volume
            and self.first_trade_id == other.first_trade_id
            and self.last_trade_id == other.last_trade_id
            and self.closed == other.closed
        )
