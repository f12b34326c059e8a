"""BingX perpetual swap (USDT-M): gzip'd frames, text Ping/Pong, no closed flag."""

from __future__ import annotations

from typing import Final

from candlekeeper.venues.bingx.endpoints import BINGX_SWAP
from candlekeeper.venues.bingx.history import BingxHistoryCodec
from candlekeeper.venues.bingx.stream import BingxStreamCodec
from candlekeeper.venues.contract import Venue

VENUES: Final = (Venue(BINGX_SWAP, BingxStreamCodec, BingxHistoryCodec),)
