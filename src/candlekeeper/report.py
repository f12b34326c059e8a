"""The shutdown report of ``run`` and ``demo``, and the exit status it implies.

One row per stream is what a user wants for a dozen streams; at 1,000+ streams it is a wall
of text that hides the few that matter. So the report has two forms: ``full`` (every stream)
and ``summary`` (totals per venue and state at stop, then only the streams that were not live).
``auto`` picks ``full`` up to :data:`FULL_REPORT_MAX_STREAMS` streams.

Exit status (docs/deploying.md): a supervisor must be able to tell a clean stop from one that
left candles unwritten, so :func:`exit_status` is :data:`EXIT_NOT_WRITTEN` when any sink still
had candles pending after the drain deadline or dropped some.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal
from typing import Final, Literal, NamedTuple

from rich.console import Console
from rich.table import Table

from candlekeeper.core.stream_key import StreamKey
from candlekeeper.service import ServiceReport

__all__ = ["EXIT_NOT_WRITTEN", "FULL_REPORT_MAX_STREAMS", "REPORT_MODES", "ReportMode",
           "exit_status", "not_written_lines", "print_report"]

ReportMode = Literal["auto", "full", "summary"]
REPORT_MODES: Final = ("auto", "full", "summary")
#: ``auto`` prints every stream up to this many, the summary beyond
FULL_REPORT_MAX_STREAMS: Final = 50
#: the summary lists at most this many unhealthy streams (``--report full`` lists all)
MAX_UNHEALTHY_ROWS: Final = 50
#: candles were left unwritten (pending after the drain deadline) or dropped
EXIT_NOT_WRITTEN: Final = 3

_NUMERIC = {"streams", "derived", "closed", "messages", "duplicates"}


class _Row(NamedTuple):
    """One stream of the report, native or derived (``derived`` says ``3h (from 1m)``)."""

    key: StreamKey
    interval: str
    state: str
    closed: int
    messages: int
    duplicates: int
    last_close: Decimal | None
    derived: bool


def _rows(report: ServiceReport) -> list[_Row]:
    """Native streams, then derived ones; a derived stream takes its base's state (it has no
    subscription of its own) and receives no messages."""
    rows = []
    for s in report.streams:
        last = s.last_closed
        rows.append(_Row(s.key, s.key.interval, report.final_states.get(s.key, str(s.state)),
                         s.closed, s.messages, s.duplicates + s.late,
                         last.close if last else None, False))
    by_key = {s.key: s for s in report.streams}
    for d in report.derived:
        base = by_key.get(d.base)
        state = report.final_states.get(d.base, str(base.state) if base else "-")
        rows.append(_Row(d.key, f"{d.key.interval} (from {d.spec.base})", state,
                         d.metrics.closed, 0, 0, d.metrics.last_close_price, True))
    return rows


def print_report(report: ServiceReport, console: Console | None = None,
                 mode: ReportMode = "auto") -> None:
    """Per-stream table (``full``) or per-venue totals plus the unhealthy streams
    (``summary``); then one line per sink."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file or pipe: do not squeeze into 80 columns
            console = Console(width=110)
    rows = _rows(report)
    full = mode == "full" or (mode == "auto" and len(rows) <= FULL_REPORT_MAX_STREAMS)
    if full:
        _full(report, rows, console)
    else:
        _summary(report, rows, console)
    for name, w in report.writers.items():
        console.print(f"sink {name}: {w.written} written, {w.pending} pending, "
                      f"{w.failures} failures, {w.dropped} dropped")
    for unknown in report.unknown_symbols:
        console.print(f"[red]unknown symbol skipped: {unknown}[/red]")


def _table(title: str, columns: tuple[str, ...]) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="right" if col in _NUMERIC else "left")
    return table


def _full(report: ServiceReport, rows: list[_Row], console: Console) -> None:
    table = _table(f"candlekeeper: per-stream statistics (uptime {report.uptime_s:.1f}s)",
                   ("venue", "symbol", "interval", "state at stop", "closed", "messages",
                    "duplicates", "last close"))
    for r in rows:
        table.add_row(r.key.venue, r.key.symbol, r.interval, r.state, str(r.closed),
                      "-" if r.derived else str(r.messages),
                      "-" if r.derived else str(r.duplicates),
                      "-" if r.last_close is None else str(r.last_close))
    console.print(table)


def _summary(report: ServiceReport, rows: list[_Row], console: Console) -> None:
    totals: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    unhealthy: list[_Row] = []
    for r in rows:
        row = totals[r.key.venue, r.state]
        row["streams"] += 1
        row["derived"] += r.derived
        row["closed"] += r.closed
        row["messages"] += r.messages
        row["duplicates"] += r.duplicates
        if r.state != "live":
            unhealthy.append(r)
    n = len(rows)
    derived = sum(r.derived for r in rows)
    of_them = f", {derived} derived" if derived else ""
    table = _table(f"candlekeeper: summary of {n} streams{of_them} (uptime "
                   f"{report.uptime_s:.1f}s; --report full lists every stream)",
                   ("venue", "state at stop", "streams", "derived", "closed", "messages",
                    "duplicates"))
    for (venue, state), row in sorted(totals.items()):
        table.add_row(venue, state, *(str(row[c]) for c in ("streams", "derived", "closed",
                                                             "messages", "duplicates")))
    console.print(table)
    if not unhealthy:
        console.print(f"all {n} streams were live at stop")
        return
    shown = unhealthy[:MAX_UNHEALTHY_ROWS]
    more = len(unhealthy) - len(shown)
    table = _table(f"{len(unhealthy)} of {n} streams not live at stop"
                   + (f" (first {len(shown)})" if more else ""),
                   ("venue", "symbol", "interval", "state at stop", "closed", "messages"))
    for r in shown:
        table.add_row(r.key.venue, r.key.symbol, r.interval, r.state, str(r.closed),
                      "-" if r.derived else str(r.messages))
    console.print(table)
    if more:
        console.print(f"... and {more} more (--report full lists every stream)")


def not_written_lines(report: ServiceReport) -> list[str]:
    """One line per sink that did not write everything it was given."""
    lines: list[str] = []
    for name, w in report.writers.items():
        if not (w.pending or w.dropped):
            continue
        parts: list[str] = []
        if w.pending:
            safe = (f" ({w.journal_rows} of them safe in the journal, replayed on the next "
                    "start)") if w.journal_rows else ""
            parts.append(f"{w.pending} candle(s) not written by the drain deadline{safe}")
        if w.dropped:
            parts.append(f"{w.dropped} candle(s) dropped while the backlog was full")
        lines.append(f"sink {name}: " + "; ".join(parts))
    return lines


def exit_status(report: ServiceReport) -> int:
    """0 when every sink wrote everything; :data:`EXIT_NOT_WRITTEN` otherwise."""
    return EXIT_NOT_WRITTEN if not_written_lines(report) else 0
