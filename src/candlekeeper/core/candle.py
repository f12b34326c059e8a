"""The ``Candle`` value object.

Prices and volumes are kept as the **exact decimal text the exchange sent** (``close_str ==
"7.6170"``, trailing zeros included) and exposed as ``Decimal`` through properties
(``candle.close == Decimal("7.6170")``). Why text underneath: building eight ``Decimal`` objects
per frame was half of the per-message CPU at 80k+ frames/s (benchmarks/README.md), while most
frames are superseded live updates whose numbers nobody reads. Text is exact, cheap to carry and
to store, and a ``Decimal`` is one property access away. No float ever touches a price.

Fields a venue does not provide (some have no trade count, REST has no trade ids) are ``None``.
Build candles from numbers with :meth:`Candle.of`; the positional constructor takes text and is
meant for codecs on the hot path.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final, Literal

import msgspec

from candlekeeper.core.stream_key import StreamKey

#: who delivered a candle's values: the WebSocket, a REST answer, our own aggregation of a finer
#: stored series (a derived interval), or the venue's public bulk archive
Source = Literal["ws", "rest", "derived", "archive"]
SOURCES: Final[tuple[str, ...]] = ("ws", "rest", "derived", "archive")
Num = Decimal | str | int

#: the shape of an exchange decimal: optional sign, digits, optional fraction (no exponent)
DECIMAL_TEXT: Final = re.compile(r"-?\d+(\.\d+)?")


def decimal_text(value: Num) -> str:
    """Exact positional text of a number: ``Decimal("1E-7")`` -> ``"0.0000001"``. Floats are
    refused: they cannot represent most exchange prices exactly."""
    if isinstance(value, str):
        if not DECIMAL_TEXT.fullmatch(value):
            raise ValueError(f"not a decimal number: {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"expected Decimal, str or int, got {type(value).__name__} {value!r}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _opt_text(value: Num | None) -> str | None:
    return None if value is None else decimal_text(value)


def _opt_dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


class Candle(msgspec.Struct, frozen=True, gc=False):
    """One kline. ``closed`` is True only for a final candle."""

    venue: str
    symbol: str
    interval: str
    open_time: int
    close_time: int
    open_str: str
    high_str: str
    low_str: str
    close_str: str
    volume_str: str
    quote_volume_str: str | None = None
    trades: int | None = None
    taker_buy_base_volume_str: str | None = None
    taker_buy_quote_volume_str: str | None = None
    first_trade_id: int | None = None
    last_trade_id: int | None = None
    closed: bool = False
    event_time: int | None = None
    source: Source = "ws"

    @classmethod
    def of(cls, venue: str, symbol: str, interval: str, open_time: int, close_time: int,
           open: Num, high: Num, low: Num, close: Num, volume: Num,
           quote_volume: Num | None = None, trades: int | None = None,
           taker_buy_base_volume: Num | None = None, taker_buy_quote_volume: Num | None = None,
           first_trade_id: int | None = None, last_trade_id: int | None = None,
           closed: bool = False, event_time: int | None = None,
           source: Source = "ws") -> Candle:
        """Build a candle from numbers (``Decimal``, decimal text or ``int``)."""
        return cls(venue, symbol, interval, open_time, close_time, decimal_text(open),
                   decimal_text(high), decimal_text(low), decimal_text(close),
                   decimal_text(volume), _opt_text(quote_volume), trades,
                   _opt_text(taker_buy_base_volume), _opt_text(taker_buy_quote_volume),
                   first_trade_id, last_trade_id, closed, event_time, source)

    # -- numbers (exact) ----------------------------------------------------------------------
    @property
    def open(self) -> Decimal:
        return Decimal(self.open_str)

    @property
    def high(self) -> Decimal:
        return Decimal(self.high_str)

    @property
    def low(self) -> Decimal:
        return Decimal(self.low_str)

    @property
    def close(self) -> Decimal:
        return Decimal(self.close_str)

    @property
    def volume(self) -> Decimal:
        return Decimal(self.volume_str)

    @property
    def quote_volume(self) -> Decimal | None:
        return _opt_dec(self.quote_volume_str)

    @property
    def taker_buy_base_volume(self) -> Decimal | None:
        return _opt_dec(self.taker_buy_base_volume_str)

    @property
    def taker_buy_quote_volume(self) -> Decimal | None:
        return _opt_dec(self.taker_buy_quote_volume_str)

    @property
    def key(self) -> StreamKey:
        return StreamKey(self.venue, self.symbol, self.interval)

    def same_values(self, other: Candle, *, trade_ids: bool = True) -> bool:
        """True when every market field is equal, as exact text (ignores ``source`` and
        ``event_time``, which say how we learnt the candle, not what it is). REST klines carry
        no trade ids: compare a REST-sourced candle with ``trade_ids=False``."""
        return (
            self.key == other.key
            and self.open_time == other.open_time
            and self.close_time == other.close_time
            and self.open_str == other.open_str
            and self.high_str == other.high_str
            and self.low_str == other.low_str
            and self.close_str == other.close_str
            and self.volume_str == other.volume_str
            and self.quote_volume_str == other.quote_volume_str
            and self.trades == other.trades
            and self.taker_buy_base_volume_str == other.taker_buy_base_volume_str
            and self.taker_buy_quote_volume_str == other.taker_buy_quote_volume_str
            and (not trade_ids or (self.first_trade_id == other.first_trade_id
                                   and self.last_trade_id == other.last_trade_id))
            and self.closed == other.closed
        )


class CorrectedCandle(Candle, frozen=True, gc=False):
    """A closed candle that replaces one emitted before for the same key and open time (the
    ``candle`` of a ``CandleCorrected``). A plain ``Candle`` in every respect; the type tells a
    sink that deduplicates by natural key (NATS JetStream) to let it through."""

    @classmethod
    def replacing(cls, candle: Candle) -> CorrectedCandle:
        return cls(**msgspec.structs.asdict(candle))

