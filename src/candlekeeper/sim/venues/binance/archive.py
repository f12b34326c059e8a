"""The simulated Binance archive files: the client's own format facts, written out.

Header row and timestamp unit follow the file's date exactly as the real archive does
(``venues.binance.archive.FORMATS``): USDⓈ-M files carry a header from 2023, spot files µs
timestamps from 2025-01-01.
"""

from __future__ import annotations

from collections.abc import Sequence

from candlekeeper.core.candle import Candle
from candlekeeper.sim.venues import ArchiveWriter
from candlekeeper.venues.binance.archive import FORMATS, encode_rows
from candlekeeper.venues.contract import ArchivePeriod


def writer(venue: str) -> ArchiveWriter:
    fmt = FORMATS[venue]

    def write(candles: Sequence[Candle], period: ArchivePeriod) -> str:
        return encode_rows(list(candles), fmt, period)

    return write
