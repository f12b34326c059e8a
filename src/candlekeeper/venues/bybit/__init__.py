"""Bybit v5 USDT perpetuals (``bybit-linear``) and spot (``bybit-spot``): one stream codec and
one history codec, two venues described as data (``endpoints.py``)."""

from __future__ import annotations

from typing import Final

from candlekeeper.venues.bybit.endpoints import BYBIT_LINEAR, BYBIT_SPOT
from candlekeeper.venues.bybit.history import BybitHistoryCodec
from candlekeeper.venues.bybit.stream import BybitStreamCodec
from candlekeeper.venues.contract import Venue

VENUES: Final = (
    Venue(BYBIT_LINEAR, BybitStreamCodec, BybitHistoryCodec),
    Venue(BYBIT_SPOT, BybitStreamCodec, BybitHistoryCodec),
)
