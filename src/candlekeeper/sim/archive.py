"""The simulated public kline archive: the venue's layout, served from the simulated market.

A venue that publishes an archive (``Venue.archive`` in its client folder, an
``ARCHIVE_WRITERS`` entry in its simulator folder) gets it served on the venue's own port, under
the same paths as the real archive host: ``Simulator.archive_base(venue)`` is a drop-in for
the archive's base URL. Each file is a zip holding one CSV (the venue's writer decides header
and timestamp unit by the file's date, as the real archive does) and a checksum file beside it
(``"<sha256>  <zip name>"``). Files exist for whole periods that are over in venue time: the
current day and month, a symbol the market lacks and a period before the listing answer 404.
Rows are the market's final candles, so a file equals what REST serves for the same period.

Faults for tests (:attr:`ArchiveServer.faults`, by zip file name): ``missing`` (404),
``missing_checksum`` (404 for the checksum only), ``bad_checksum`` (a checksum of other
bytes), ``corrupt_zip`` (a truncated zip whose checksum matches it: verification passes,
unzipping fails), ``garbled_zip`` (a zip whose compressed data is damaged, with a matching
checksum: the zip opens, its member does not inflate), ``hole`` (five candles left out of the
CSV) and ``flaky`` (the next request for the file answers 503, once: a client's retry gets it).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec
from aiohttp import web

from candlekeeper.core.clock import ScaledClock
from candlekeeper.core.intervals import open_times
from candlekeeper.sim.market import Market
from candlekeeper.sim.venues import ArchiveWriter, archive_writer_for
from candlekeeper.venues.contract import ArchiveCodec, ArchivePeriod
from candlekeeper.venues.registry import archive_codec

__all__ = ["FAULTS", "ArchiveFault", "ArchiveServer", "ArchiveStats", "archive_server_for"]

ArchiveFault = Literal["missing", "missing_checksum", "bad_checksum", "corrupt_zip",
                       "garbled_zip", "hole", "flaky"]
FAULTS: Final[tuple[str, ...]] = ("missing", "missing_checksum", "bad_checksum", "corrupt_zip",
                                  "garbled_zip", "hole", "flaky")
#: files kept built (a client asks for a zip, then for its checksum)
_CACHE: Final = 8


class ArchiveStats(msgspec.Struct):
    files: int = 0  # zip files served
    checksums: int = 0  # checksum files served
    not_found: int = 0  # 404s: not published (yet), unknown symbol or interval, a fault
    faulted: int = 0  # answers a fault changed
    bytes: int = 0


class ArchiveServer:
    """The archive of one simulated venue (see the module docstring)."""

    def __init__(self, codec: ArchiveCodec, writer: ArchiveWriter, market: Market,
                 clock: ScaledClock) -> None:
        self.codec, self.writer, self.market, self.clock = codec, writer, market, clock
        self.stats = ArchiveStats()
        #: zip file name (``BTCUSDT-1m-2024-01.zip``) -> the fault its answers get
        self.faults: dict[str, ArchiveFault] = {}
        self._files: OrderedDict[str, tuple[bytes, bytes]] = OrderedDict()

    def handles(self, path: str) -> bool:
        return self.codec.parse_path(path) is not None

    async def handle(self, request: web.Request) -> web.Response:
        parsed = self.codec.parse_path(request.path)
        if parsed is None:
            return self._not_found()
        symbol, interval, period, is_checksum = parsed
        name = request.path.rsplit("/", 1)[-1].removesuffix(self.codec.checksum_suffix)
        fault = self.faults.get(name)
        if fault == "flaky":
            del self.faults[name]
            self.stats.faulted += 1
            return web.Response(status=503, text="Service Unavailable")
        if fault == "missing" or (fault == "missing_checksum" and is_checksum):
            self.stats.faulted += 1
            return self._not_found()
        built = self._file(symbol, interval, period, name, fault)
        if built is None:
            return self._not_found()
        body, checksum = built
        if is_checksum:
            self.stats.checksums += 1
            return web.Response(body=checksum, content_type="text/plain")
        self.stats.files += 1
        self.stats.bytes += len(body)
        return web.Response(body=body, content_type="application/zip")

    def _not_found(self) -> web.Response:
        self.stats.not_found += 1
        return web.Response(status=404, text="Not Found")

    def _file(self, symbol: str, interval: str, period: ArchivePeriod, name: str,
              fault: ArchiveFault | None) -> tuple[bytes, bytes] | None:
        """(zip, checksum file) of a published period, None when there is none."""
        market = self.market
        if (symbol not in market.symbols or not market.has_stream(symbol, interval)
                or period.end > self.clock.time_ms()):
            return None
        key = f"{name}|{fault}"
        cached = self._files.get(key)
        if cached is not None:
            self._files.move_to_end(key)
            return cached
        candles = [c for c in (market.bar(symbol, interval, t)
                               for t in open_times(period.start, period.end, interval))
                   if c is not None]
        if not candles:  # before the listing
            return None
        if fault == "hole" and len(candles) > 20:
            candles = candles[:10] + candles[15:]
        body = _zip(name.removesuffix(".zip") + ".csv", self.writer(candles, period), period)
        if fault == "corrupt_zip":
            body = body[: len(body) // 2]
        elif fault == "garbled_zip":  # the start of the deflate stream: zlib refuses it
            at = 30 + len(name) + 16  # past the local file header (30 bytes + the name)
            body = body[:at] + bytes(b ^ 0x5A for b in body[at:at + 64]) + body[at + 64:]
        digest = hashlib.sha256(b"other bytes" if fault == "bad_checksum" else body).hexdigest()
        if fault is not None:
            self.stats.faulted += 1
        built = (body, f"{digest}  {name}\n".encode())
        self._files[key] = built
        if len(self._files) > _CACHE:
            self._files.popitem(last=False)
        return built


def _zip(member: str, text: str, period: ArchivePeriod) -> bytes:
    """A deterministic zip (the member's date is the period's), so a checksum stays valid."""
    day = datetime.fromtimestamp(period.start / 1000, tz=UTC)
    info = zipfile.ZipInfo(member, date_time=(day.year, day.month, day.day, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(info, text)
    return out.getvalue()


def archive_server_for(venue: str, market: Market, clock: ScaledClock) -> ArchiveServer | None:
    """The simulated archive of ``venue``, None when the venue publishes none."""
    codec, writer = archive_codec(venue), archive_writer_for(venue)
    if codec is None or writer is None:
        return None
    return ArchiveServer(codec, writer, market, clock)
