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
from typing import Final, Literal

from rich.console import Console
from rich.table import Table

from candlekeeper.feed import StreamStats
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

_NUMERIC = {"streams", "closed", "messages", "duplicates"}


def _state(report: ServiceReport, stream: StreamStats) -> str:
    return report.final_states.get(stream.key, str(stream.state))


def print_report(report: ServiceReport, console: Console | None = None,
                 mode: ReportMode = "auto") -> None:
    """Per-stream table (``full``) or per-venue totals plus the unhealthy streams
    (``summary``); then one line per sink."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file or pipe: do not squeeze into 80 columns
            console = Console(width=110)
    full = mode == "full" or (mode == "auto" and len(report.streams) <= FULL_REPORT_MAX_STREAMS)
    if full:
        _full(report, console)
    else:
        _summary(report, console)
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


def _full(report: ServiceReport, console: Console) -> None:
    table = _table(f"candlekeeper: per-stream statistics (uptime {report.uptime_s:.1f}s)",
                   ("venue", "symbol", "interval", "state at stop", "closed", "messages",
                    "duplicates", "last close"))
    for s in report.streams:
        last = s.last_closed
        table.add_row(s.key.venue, s.key.symbol, s.key.interval, _state(report, s),
                      str(s.closed), str(s.messages), str(s.duplicates + s.late),
                      str(last.close) if last else "-")
    console.print(table)


def _summary(report: ServiceReport, console: Console) -> None:
    totals: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    unhealthy: list[tuple[StreamStats, str]] = []
    for s in report.streams:
        state = _state(report, s)
        row = totals[s.key.venue, state]
        row["streams"] += 1
        row["closed"] += s.closed
        row["messages"] += s.messages
        row["duplicates"] += s.duplicates + s.late
        if state != "live":
            unhealthy.append((s, state))
    n = len(report.streams)
    table = _table(f"candlekeeper: summary of {n} streams (uptime {report.uptime_s:.1f}s; "
                   "--report full lists every stream)",
                   ("venue", "state at stop", "streams", "closed", "messages", "duplicates"))
    for (venue, state), row in sorted(totals.items()):
        table.add_row(venue, state, *(str(row[c]) for c in ("streams", "closed", "messages",
                                                             "duplicates")))
    console.print(table)
    if not unhealthy:
        console.print(f"all {n} streams were live at stop")
        return
    shown = unhealthy[:MAX_UNHEALTHY_ROWS]
    more = len(unhealthy) - len(shown)
    table = _table(f"{len(unhealthy)} of {n} streams not live at stop"
                   + (f" (first {len(shown)})" if more else ""),
                   ("venue", "symbol", "interval", "state at stop", "closed", "messages"))
    for s, state in shown:
        table.add_row(s.key.venue, s.key.symbol, s.key.interval, state, str(s.closed),
                      str(s.messages))
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
