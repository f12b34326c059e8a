"""Binance USDⓈ-M futures and spot: one stream codec and one history codec, two venues
described as data (``endpoints.py``), with their public kline archive (``archive.py``)."""

from __future__ import annotations

from typing import Final

from candlekeeper.venues.binance.archive import BinanceArchive
from candlekeeper.venues.binance.endpoints import BINANCE_SPOT, BINANCE_USDM
from candlekeeper.venues.binance.history import BinanceHistoryCodec
from candlekeeper.venues.binance.stream import BinanceStreamCodec
from candlekeeper.venues.contract import Venue

VENUES: Final = (
    Venue(BINANCE_USDM, BinanceStreamCodec, BinanceHistoryCodec, archive=BinanceArchive),
    Venue(BINANCE_SPOT, BinanceStreamCodec, BinanceHistoryCodec, archive=BinanceArchive),
)
