"""candlekeeper: gap-free, real-time candles (klines) from crypto exchanges."""

from candlekeeper.core.candle import Candle
from candlekeeper.core.events import (
    CandleClosed,
    CandleUpdate,
    ConnectionState,
    ConnectionStatus,
    StreamState,
    StreamStatus,
)
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import (
    BackfillError,
    CandlekeeperError,
    ConfigError,
    DecodeError,
    SinkError,
    TransportError,
)
from candlekeeper.feed import CandleFeed

__all__ = [
    "BackfillError",
    "Candle",
    "CandleClosed",
    "CandleFeed",
    "CandleUpdate",
    "CandlekeeperError",
    "ConfigError",
    "ConnectionState",
    "ConnectionStatus",
    "DecodeError",
    "SinkError",
    "StreamKey",
    "StreamState",
    "StreamStatus",
    "TransportError",
]
__version__ = "0.1.0"
