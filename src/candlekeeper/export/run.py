"""The export itself: pick the streams, stream their pages into a writer, audit on the way.

Streams are written one after the other (each in open-time order), so a file holds every
stream's rows contiguously; memory holds one page (and, for Parquet, one row group) at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from candlekeeper import __version__
from candlekeeper.backfill.planner import count_open_times
from candlekeeper.core.intervals import INTERVAL_MS, align
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError
from candlekeeper.export.audit import StreamAuditor
from candlekeeper.export.writers import COLUMNS, Writer
from candlekeeper.stored import DEFAULT_PAGE_ROWS, StoredCandles
from candlekeeper.venues.registry import VENUES, canonical_symbol

__all__ = ["audit_end", "export_streams", "planned_rows", "select_keys"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def audit_end(key: StreamKey, end: int | None, now_ms: int) -> int | None:
    """Candles are expected up to ``end`` but not past the one forming now (not closed yet);
    no ``end``: up to the last stored candle (None)."""
    return None if end is None else min(end, align(now_ms, key.interval))


async def select_keys(source: StoredCandles, venues: Sequence[str], symbols: Sequence[str],
                      intervals: Sequence[str]) -> list[StreamKey]:
    """The streams to export. Venue, symbols and intervals all named: exactly those (a stream
    with nothing stored is exported empty, its audit says so). Otherwise the stored streams
    that match whatever is named."""
    bad = [i for i in intervals if i not in INTERVAL_MS]
    if bad:
        raise ConfigError(f"unknown interval(s) {', '.join(map(repr, bad))}; expected one of "
                          f"{', '.join(INTERVAL_MS)}")
    unknown = [v for v in venues if v not in VENUES]
    if unknown:
        raise ConfigError(f"unknown venue(s) {', '.join(map(repr, unknown))}; expected one of "
                          f"{', '.join(VENUES)}")
    if venues and symbols and intervals:
        return list(dict.fromkeys(StreamKey(v, canonical_symbol(v, s), i)
                                  for v in venues for s in symbols for i in intervals))
    keys = []
    for k in await source.keys():
        if (venues and k.venue not in venues) or (intervals and k.interval not in intervals):
            continue
        if symbols and k.venue in VENUES and \
                k.symbol not in {canonical_symbol(k.venue, s) for s in symbols}:
            continue
        keys.append(k)
    if not keys:
        raise ConfigError(f"no stored stream in {source.shown} matches the selection")
    return keys


def planned_rows(keys: Sequence[StreamKey], start: int | None, end: int | None,
                 now_ms: int) -> int | None:
    """How many candles the range holds when complete (None without both bounds: unknown)."""
    if start is None or end is None:
        return None
    return sum(count_open_times(start, min(end, align(now_ms, k.interval)), k.interval)
               for k in keys)


async def export_streams(source: StoredCandles, keys: Sequence[StreamKey], start: int | None,
                         end: int | None, writer: Writer, *, fmt: str,
                         advance: Callable[[int], None] = lambda n: None,
                         page_rows: int = DEFAULT_PAGE_ROWS,
                         now_ms: int | None = None) -> dict[str, Any]:
    """Write the candles of ``keys`` with ``start <= open_time < end`` and return the metadata
    (``finish`` has been called with it): what was exported and each stream's gap audit."""
    now = _now_ms() if now_ms is None else now_ms
    audits = []
    rows = 0
    for key in keys:
        auditor = StreamAuditor(key, start, audit_end(key, end, now))
        async for batch in source.pages(key, start, end, page_rows):
            writer.write(batch)
            for c in batch:
                auditor.feed(c.open_time)
            rows += len(batch)
            advance(len(batch))
        audits.append(auditor.result())
    meta = {
        "exporter": f"candlekeeper {__version__}",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source.shown, "format": fmt, "rows": rows,
        "start": start, "end": end, "columns": list(COLUMNS),
        "decimals": "exact text as stored", "time_unit": "ms since the Unix epoch, UTC",
        "holes_are": "[start, end) ranges of missing open times",
        "streams": audits,
    }
    writer.finish(meta)
    return meta
