"""OKX v5: USDT perpetual swaps (``okx-swap``) and spot (``okx-spot``), one codec each, differing
in data: candles on ``/ws/v5/business``, ``confirm`` "1" closes, a text ``ping``/``pong``
heartbeat sent by the client, REST rows newest first."""

from __future__ import annotations

from typing import Final

from candlekeeper.venues.contract import Venue
from candlekeeper.venues.okx.endpoints import OKX_SPOT, OKX_SWAP
from candlekeeper.venues.okx.history import OkxHistoryCodec
from candlekeeper.venues.okx.stream import OkxStreamCodec

VENUES: Final = (Venue(OKX_SWAP, OkxStreamCodec, OkxHistoryCodec),
                 Venue(OKX_SPOT, OkxStreamCodec, OkxHistoryCodec))
