"""Where ``candlekeeper backfill`` takes each venue's history from (``--source``), and the
archive's line of its summary.

* ``rest``: REST only, as before archives existed.
* ``auto`` (the default): a venue's public archive for whole days and months, REST for the
  rest. The venue's own archive is used only when the feed's REST is the venue's production
  endpoint (no ``rest_url``, no ``testnet``): a testnet's or a simulator's market is not the one
  the public archive describes, and mixing the two would store another market's candles. An
  ``archive_url`` (config) or ``--archive-url`` names the archive to use anyway. A venue that
  publishes no archive is REST only.
* ``archive``: the same, but every selected venue must publish an archive (one clear error
  otherwise), and the venue's own archive is used even when REST points elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from candlekeeper.backfill.archive import ArchiveFiller, ArchiveStats
from candlekeeper.config import FeedConfig
from candlekeeper.errors import ConfigError
from candlekeeper.venues.registry import archive_codec

__all__ = ["SOURCES", "archive_fillers", "archive_summary"]

SOURCES = ("auto", "archive", "rest")


def archive_fillers(feeds: Sequence[FeedConfig], source: str,
                    archive_url: str | None) -> dict[str, ArchiveFiller]:
    """venue -> the archive its history comes from first (see the module docstring)."""
    if source not in SOURCES:
        raise ConfigError(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")
    if source == "rest":
        return {}
    capable = [f for f in feeds if archive_codec(f.venue) is not None]
    if source == "archive":
        lacking = [f.venue for f in feeds if archive_codec(f.venue) is None]
        if lacking:
            raise ConfigError(f"--source archive: {', '.join(lacking)} publishes no kline "
                              "archive; use --source auto (REST for it) or --source rest")
    if archive_url is not None and len(capable) > 1:
        raise ConfigError("--archive-url names one archive: select one venue with --venue "
                          "(or set archive_url: per feed in the config)")
    out: dict[str, ArchiveFiller] = {}
    for feed in capable:
        codec = archive_codec(feed.venue)
        assert codec is not None
        url = archive_url or feed.archive_url
        production = feed.rest_url is None and not feed.testnet
        if url is None and (source == "archive" or production):
            url = codec.base_url
        if url is not None:
            out[feed.venue] = ArchiveFiller(codec, url)
    return out


def archive_summary(stats: Sequence[ArchiveStats]) -> str:
    """One line: what the archives gave, and what went to REST instead and why."""
    s = stats
    return (f"archive: {sum(x.files for x in s)} files, {sum(x.candles for x in s)} candles, "
            f"{sum(x.not_published for x in s)} not published, "
            f"{sum(x.checksum_missing for x in s)} without checksum, "
            f"{sum(x.checksum_mismatch for x in s)} checksum mismatches, "
            f"{sum(x.corrupt for x in s)} corrupt, {sum(x.failed for x in s)} failed downloads,"
            f" {sum(x.retries for x in s)} retries, {sum(x.holes for x in s)} candles missing "
            "inside files (REST for all of those)")
