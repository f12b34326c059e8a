"""Which stream rows the dashboard shows, and the summary it shows when they do not all fit.

Why a module of its own: at a venue's whole universe (``symbols: all`` x 15 intervals = 7,500
streams) the terminal shows a few dozen rows. Sorting all of them twice a second to show the
first 40 cost more than the drawing, and the 40 shown said little about the other 7,460. So:

* :func:`pick_rows` takes the rows to show with ``heapq.nsmallest`` (O(n log k), not a full
  sort). While every stream fits, the order is stable (streams needing attention first, then by
  venue, symbol and interval width) so the table does not jump about; once they do not fit, the
  **worst** come first: broken streams, then those still connecting, then live ones by their lag,
  largest first.
* :func:`summarize` counts the streams by venue and interval in one pass (states, worst lag,
  closes), so one line per group says what the hidden rows hold.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

import msgspec

from candlekeeper.core.events import StreamState
from candlekeeper.core.intervals import INTERVAL_MS
from candlekeeper.observability.snapshot import StreamRow

#: how bad a state is (lower = shown first): broken, then on its way, then live
_SEVERITY: dict[str, int] = {
    StreamState.STALLED: 0, StreamState.SILENT: 0, StreamState.DISCONNECTED: 0,
    StreamState.REJECTED: 1,
    StreamState.POLLING: 2, StreamState.SUBSCRIBING: 2, StreamState.SUBSCRIBED: 2,
    StreamState.LIVE: 3,
}
_LIVE = StreamState.LIVE


def _stable_key(row: StreamRow) -> tuple[int, str, str, int]:
    """Streams needing attention first, then by venue, symbol and interval *width*."""
    return (0 if row.state != _LIVE else 1, row.venue, row.symbol,
            INTERVAL_MS.get(row.interval, 0))


def _worst_key(row: StreamRow) -> tuple[int, int, str, str, int]:
    """The worst first: by state severity, then the largest lag, then a stable tie-break."""
    return (_SEVERITY.get(row.state, 0), -(row.lag_ms or 0), row.venue, row.symbol,
            INTERVAL_MS.get(row.interval, 0))


def pick_rows(rows: Sequence[StreamRow], limit: int) -> list[StreamRow]:
    """The (at most ``limit``) rows to show, in the order to show them."""
    if len(rows) <= limit:
        return sorted(rows, key=_stable_key)
    return heapq.nsmallest(max(0, limit), rows, key=_worst_key)


class GroupSummary(msgspec.Struct, kw_only=True):
    """The streams of one venue and interval, counted."""

    venue: str
    interval: str
    streams: int = 0
    live: int = 0
    #: streams in a broken state (stalled, silent, disconnected, rejected)
    broken: int = 0
    #: streams still connecting or polled over REST
    pending: int = 0
    closed: int = 0
    worst_lag_ms: int | None = None
    worst_symbol: str = ""


def summarize(rows: Iterable[StreamRow]) -> list[GroupSummary]:
    """One :class:`GroupSummary` per (venue, interval), by venue then interval width."""
    groups: dict[tuple[str, str], GroupSummary] = {}
    for row in rows:
        key = (row.venue, row.interval)
        group = groups.get(key)
        if group is None:
            group = groups[key] = GroupSummary(venue=row.venue, interval=row.interval)
        group.streams += 1
        group.closed += row.closed
        severity = _SEVERITY.get(row.state, 0)
        if severity == 3:
            group.live += 1
        elif severity == 2:
            group.pending += 1
        else:
            group.broken += 1
        lag = row.lag_ms
        if lag is not None and (group.worst_lag_ms is None or lag > group.worst_lag_ms):
            group.worst_lag_ms, group.worst_symbol = lag, row.symbol
    return sorted(groups.values(), key=lambda g: (g.venue, INTERVAL_MS.get(g.interval, 0)))
