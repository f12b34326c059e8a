"""Binance's public kline archive (data.binance.vision) as data and a Sans-I/O parser.

Layout (binance/binance-public-data README; protocols.md §B.5): one zip per symbol, interval
and period, holding one CSV named like the zip, and beside it ``<zip>.CHECKSUM`` holding
``"<sha256 hex>  <zip name>"``::

    /data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip
    /data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-31.zip
    /data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip       (spot: same below)

Daily files appear the day after, monthly ones in the first days of the next month (the
README: "at the first monday of the month"): the caller treats a 404 as "not published yet".

Rows are the 12 columns of the REST klines answer (``open_time, open, high, low, close, volume,
close_time, quote_volume, count, taker_buy_volume, taker_buy_quote_volume, ignore``). Two
documented format changes, both accepted whatever the file's date:

* a header row (the column names) in USDⓈ-M files from 2023 (the sample in
  ``../shared/protocol-samples/binance_vision_csv_rows.txt``); spot files have none;
* spot timestamps in **microseconds** from 2025-01-01 ("The timestamp for SPOT Data from
  January 1st 2025 onwards will be in microseconds"); they are normalised to ms here. A value of
  16 digits or more is µs (ms timestamps stay 13 digits until the year 2286).

:class:`ArchiveFormat` says which variant a venue writes from when; the simulator writes files
by it and the parser's tests check both variants against the real sample rows.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import INTERVAL_MS, MONTH_NAME
from candlekeeper.errors import DecodeError
from candlekeeper.venues.binance.endpoints import BINANCE_SPOT, BINANCE_USDM
from candlekeeper.venues.binance.stream import native_symbol
from candlekeeper.venues.contract import ArchivePeriod, VenueSpec

BASE_URL: Final = "https://data.binance.vision"
CHECKSUM_SUFFIX: Final = ".CHECKSUM"
#: the header row of the files that have one (the sample's, verbatim)
HEADER: Final = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                 "taker_buy_volume,taker_buy_quote_volume,ignore")
#: timestamps at or above this are µs (ms values stay below it until the year 2286)
_MICROS_FLOOR: Final = 10**15


def _utc_ms(year: int, month: int, day: int = 1) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp()) * 1000


class ArchiveFormat(msgspec.Struct, frozen=True, kw_only=True):
    """One venue's archive: its folder and the dates its format changed (period starts, ms)."""

    #: the folder under ``/data`` (``futures/um`` or ``spot``)
    market: str
    #: files of periods starting at or after this carry a header row (None: never)
    header_from: int | None
    #: files of periods starting at or after this carry µs timestamps (None: never)
    micros_from: int | None

    def has_header(self, period: ArchivePeriod) -> bool:
        return self.header_from is not None and period.start >= self.header_from

    def micros(self, period: ArchivePeriod) -> bool:
        return self.micros_from is not None and period.start >= self.micros_from


FORMATS: Final[dict[str, ArchiveFormat]] = {
    BINANCE_USDM.id: ArchiveFormat(market="futures/um", header_from=_utc_ms(2023, 1),
                                   micros_from=None),
    BINANCE_SPOT.id: ArchiveFormat(market="spot", header_from=None,
                                   micros_from=_utc_ms(2025, 1)),
}

_PATH: Final = re.compile(
    r"/data/(?P<market>[a-z/]+)/(?P<kind>monthly|daily)/klines/(?P<sym>[A-Z0-9]+)/"
    r"(?P<iv>\w+)/(?P=sym)-(?P=iv)-(?P<label>\d{4}-\d{2}(?:-\d{2})?)\.zip"
    r"(?P<checksum>\.CHECKSUM)?")
_SHA256: Final = re.compile(r"[0-9a-fA-F]{64}")


def period_of(kind: str, label: str) -> ArchivePeriod | None:
    """The period a file name's date stands for (None for an impossible date)."""
    try:
        if kind == "monthly" and len(label) == 7:
            y, m = int(label[:4]), int(label[5:7])
            start = _utc_ms(y, m)
            end = _utc_ms(y + m // 12, m % 12 + 1)
            return ArchivePeriod("monthly", start, end, label)
        if kind == "daily" and len(label) == 10:
            start = _utc_ms(int(label[:4]), int(label[5:7]), int(label[8:10]))
            return ArchivePeriod("daily", start, start + INTERVAL_MS["1d"], label)
    except ValueError:
        return None
    return None


class BinanceArchive:
    """The archive of one Binance venue (:class:`~candlekeeper.venues.contract.ArchiveCodec`)."""

    base_url = BASE_URL
    checksum_suffix = CHECKSUM_SUFFIX

    def __init__(self, spec: VenueSpec) -> None:
        self.spec = spec
        self.format = FORMATS[spec.id]
        day = INTERVAL_MS["1d"]
        # files hold whole days of candles: intervals that tile a day (3d, 1w, 1M go to REST)
        self.intervals = tuple(i for i in spec.intervals
                               if i != MONTH_NAME and day % INTERVAL_MS[i] == 0)

    def file_path(self, symbol: str, interval: str, period: ArchivePeriod) -> str:
        sym = native_symbol(symbol)
        return (f"/data/{self.format.market}/{period.kind}/klines/{sym}/{interval}/"
                f"{sym}-{interval}-{period.label}.zip")

    def parse_path(self, path: str) -> tuple[str, str, ArchivePeriod, bool] | None:
        m = _PATH.fullmatch(path)
        if m is None or m["market"] != self.format.market or m["iv"] not in self.intervals:
            return None
        period = period_of(m["kind"], m["label"])
        if period is None:
            return None
        return m["sym"], m["iv"], period, m["checksum"] is not None

    def decode_checksum(self, body: bytes) -> str | None:
        """``"<64 hex>  <file name>"`` (sha256sum's output) -> the hex digest."""
        first = body.decode("ascii", "replace").strip().split(maxsplit=1)
        if not first or not _SHA256.fullmatch(first[0]):
            return None
        return first[0].lower()

    def decode_rows(self, text: str, symbol: str, interval: str) -> list[Candle]:
        venue, sym = self.spec.id, native_symbol(symbol)
        span = INTERVAL_MS[interval] - 1  # archive intervals are fixed-length (no 1M)
        out: list[Candle] = []
        append = out.append
        for no, line in enumerate(text.splitlines(), 1):
            if not line:
                continue
            cells = line.split(",")
            if len(cells) != 12:
                raise DecodeError(f"line {no}: {len(cells)} columns, expected 12: {line[:80]!r}")
            first, last, count = cells[0], cells[6], cells[8]
            if not (first.isascii() and first.isdigit()):
                if no == 1 and first.strip() == "open_time":
                    continue  # the header row of newer files
                raise DecodeError(f"line {no}: bad open time {first[:40]!r}")
            t = int(first)
            if t >= _MICROS_FLOOR:
                t //= 1000
            if not (count.isascii() and count.isdigit()):
                raise DecodeError(f"line {no}: bad trade count {count[:40]!r}")
            end = int(last) if last.isascii() and last.isdigit() else -1
            if end >= _MICROS_FLOOR:
                end //= 1000
            if end != t + span:
                raise DecodeError(f"line {no}: close time {last[:20]!r} does not end the "
                                  f"{interval} candle opening at {t}")
            append(Candle(venue, sym, interval, t, end, cells[1], cells[2], cells[3], cells[4],
                          cells[5], cells[7], int(count), cells[9], cells[10], None, None, True,
                          None, "archive"))
        return out


def encode_rows(candles: list[Candle], fmt: ArchiveFormat, period: ArchivePeriod) -> str:
    """The CSV member of a file as the archive writes it for ``period`` (header and timestamp
    unit by date). Lives beside the parser so both read the same facts; the simulator calls
    it."""
    micros = fmt.micros(period)
    lines = [HEADER] if fmt.has_header(period) else []
    for c in candles:
        t, end = (c.open_time * 1000, c.close_time * 1000 + 999) if micros else (c.open_time,
                                                                                  c.close_time)
        lines.append(f"{t},{c.open_str},{c.high_str},{c.low_str},{c.close_str},{c.volume_str},"
                     f"{end},{c.quote_volume_str},{c.trades},{c.taker_buy_base_volume_str},"
                     f"{c.taker_buy_quote_volume_str},0")
    return "\n".join(lines) + "\n"
