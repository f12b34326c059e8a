"""The live terminal table of streams (``candlekeeper run`` / ``candlekeeper demo``).

Built only from :class:`HealthSnapshot` (the same structure ``/health`` serves), so it knows
nothing about the feed's internals and :meth:`Dashboard.render` is a pure function that tests
render to a string.

* **Bounded refresh.** ``refresh_hz`` (default 2 Hz) caps how often the snapshot is taken and
  the screen redrawn, whatever the message rate: drawing must never compete with ingestion. A
  redraw that is itself expensive (a snapshot of 7,500 streams and its tables: ~25 ms) spaces the
  next one so that drawing takes at most :data:`DRAW_SHARE` of a core.
* **Not a TTY** (redirected to a file, under systemd or docker logs): no cursor tricks; a plain
  one-line summary every ``plain_interval_s`` (0 disables it) and one at the end.
* **Many streams.** Rows that need attention (not live) come first; the table is cut to the
  terminal height with a line saying how many rows were left out. When far more streams than
  fit (over twice as many; a whole universe: thousands), a summary by venue and interval comes
  first and the rows shown are the worst ones (``dashboard_rows.py``).
* A snapshot provider that raises is shown as an error line and retried; it never ends the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from candlekeeper.core.events import StreamState
from candlekeeper.observability.dashboard_rows import GroupSummary, pick_rows, summarize
from candlekeeper.observability.snapshot import (
    HealthSnapshot,
    HealthStatus,
    SnapshotProvider,
)

log = logging.getLogger(__name__)

_STATE_STYLE: dict[str, str] = {
    StreamState.LIVE: "green",
    StreamState.SUBSCRIBING: "yellow",
    StreamState.SUBSCRIBED: "yellow",
    StreamState.STALLED: "red",
    StreamState.SILENT: "red",
    StreamState.DISCONNECTED: "red",
    StreamState.REJECTED: "magenta",
    StreamState.POLLING: "cyan",
}
#: the most of one core the live dashboard may spend drawing (snapshot + render + refresh)
DRAW_SHARE = 0.02

_STATUS_STYLE = {HealthStatus.OK: "green", HealthStatus.DEGRADED: "yellow",
                 HealthStatus.DOWN: "red"}


def format_duration(seconds: float) -> str:
    total = int(seconds)
    days, rem = divmod(total, 86_400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    return f"{days}d {hours:02d}:{minutes:02d}:{secs:02d}" if days else \
        f"{hours:d}:{minutes:02d}:{secs:02d}"


def format_lag(lag_ms: int | None) -> str:
    if lag_ms is None:
        return "-"
    if abs(lag_ms) < 1000:
        return f"{lag_ms} ms"
    return f"{lag_ms / 1000:.1f} s"


def format_time(ts_ms: int | None) -> str:
    if ts_ms is None:
        return "-"
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%m-%d %H:%M:%S")


class Dashboard:
    """``await Dashboard(metrics.snapshot).run_until(stop_event)``."""

    def __init__(self, snapshot: SnapshotProvider, *, console: Console | None = None,
                 refresh_hz: float = 2.0, plain_interval_s: float = 10.0,
                 title: str = "candlekeeper", max_rows: int | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if refresh_hz <= 0:
            raise ValueError("refresh_hz must be > 0")
        self._snapshot = snapshot
        self.console = console or Console()
        self._period = 1.0 / refresh_hz
        self._plain_interval = plain_interval_s
        self._title = title
        self._max_rows = max_rows
        self._monotonic = monotonic
        self._last: tuple[float, int] | None = None  # (monotonic, messages_total)
        self.rate = 0.0
        self.renders = 0
        self.errors = 0

    # -- pure rendering -----------------------------------------------------------------------
    def header(self, snap: HealthSnapshot, msgs_per_s: float | None = None) -> Text:
        status, _ = snap.evaluate()
        live = sum(1 for s in snap.streams if s.state == StreamState.LIVE)
        text = Text()
        text.append(self._title, style="bold")
        text.append(f"  up {format_duration(snap.uptime_s)}")
        rate = self.rate if msgs_per_s is None else msgs_per_s
        text.append(f"  {rate:,.0f} msgs/s")
        text.append(f"  streams {live}/{len(snap.streams)} live")
        text.append(f"  sink backlog {snap.sink_backlog:,}")
        if snap.warming:  # history still coming in behind live streams (start-up)
            text.append(f"  warming {snap.warming:,}")
        text.append("  status ")
        text.append(status.value, style=_STATUS_STYLE[status])
        for clock in snap.clocks:
            if clock.source == "none":
                continue
            text.append(f"  clock {clock.venue} {clock.offset_ms / 1000:+.3f} s",
                        style="yellow" if clock.warning else "")
        return text

    def summary_line(self, snap: HealthSnapshot, msgs_per_s: float | None = None) -> str:
        """The plain-text form used when stdout is not a terminal."""
        closed = sum(s.closed for s in snap.streams)
        return (f"{self.header(snap, msgs_per_s).plain}  messages {snap.messages_total:,}"
                f"  closed {closed:,}")

    def render(self, snap: HealthSnapshot, msgs_per_s: float | None = None) -> RenderableType:
        """Header + one row per stream (venue, symbol, interval, state, stored, last close,
        close time, lag, messages, reconnects)."""
        limit = self._row_limit()
        parts: list[RenderableType] = [self.header(snap, msgs_per_s)]
        streams = snap.streams
        if len(streams) > 2 * limit:  # far more than fit: a summary says more than rows
            groups = summarize(streams)
            parts.append(_summary_table(groups))
            limit = max(5, limit - len(groups) - 3)
        table = Table(expand=False, pad_edge=False, show_edge=False)
        for name in ("venue", "symbol", "interval", "state"):
            table.add_column(name, no_wrap=True)
        for name in ("stored", "last close", "close time (UTC)", "lag", "msgs", "reconn"):
            table.add_column(name, justify="right", no_wrap=True)
        shown = pick_rows(streams, limit)
        for row in shown:
            table.add_row(row.venue, row.symbol, row.interval,
                          Text(row.state, style=_STATE_STYLE.get(row.state, "")),
                          f"{row.stored:,}", row.last_close_price or "-",
                          format_time(row.last_close_time_ms), format_lag(row.lag_ms),
                          f"{row.messages:,}", str(row.reconnects))
        parts.append(table)
        if len(streams) > len(shown):
            live_shown = sum(1 for r in shown if r.state == StreamState.LIVE)
            live = sum(1 for r in streams if r.state == StreamState.LIVE) - live_shown
            parts.append(Text(f"... {len(streams) - len(shown)} more streams ({live} live)",
                              style="dim"))
        problems = [c for c in snap.connections if c.state != "connected"]
        for conn in problems[:5]:
            parts.append(Text(f"connection {conn.name}: {conn.state} "
                              f"(reconnects {conn.reconnects}) {conn.detail}".rstrip(),
                              style="yellow"))
        for sink in snap.sinks:
            if sink.last_error:
                parts.append(Text(f"sink {sink.name}: {sink.pending:,} pending, "
                                  f"{sink.failures} failures: {sink.last_error}", style="red"))
            if sink.rejected or sink.dropped:
                parts.append(Text(f"sink {sink.name}: {sink.rejected:,} rejected, "
                                  f"{sink.dropped:,} dropped"
                                  + (f" (last: {sink.last_rejection})" if sink.last_rejection
                                     else ""), style="red"))
        return Group(*parts)

    def _row_limit(self) -> int:
        """Stream rows that fit (the summary, when shown, takes its lines from these)."""
        if self._max_rows is not None:
            return self._max_rows
        if self.console.is_terminal:
            return max(5, self.console.size.height - 8)
        return 10_000

    # -- the loop ----------------------------------------------------------------------------
    def take(self) -> HealthSnapshot | None:
        """One snapshot, updating ``rate`` (msgs/s since the previous one); None on error."""
        try:
            snap = self._snapshot()
        except Exception as exc:
            self.errors += 1
            if self.errors == 1 or self.errors % 100 == 0:
                log.error("dashboard snapshot failed (%d so far): %r", self.errors, exc)
            return None
        now = self._monotonic()
        if self._last is not None and now > self._last[0]:
            self.rate = max(0.0, (snap.messages_total - self._last[1]) / (now - self._last[0]))
        self._last = (now, snap.messages_total)
        return snap

    async def run_until(self, stop: asyncio.Event) -> None:
        """Redraw at most ``refresh_hz`` times a second until ``stop`` is set."""
        if self.console.is_terminal:
            await self._run_live(stop)
        else:
            await self._run_plain(stop)

    async def _run_live(self, stop: asyncio.Event) -> None:
        with Live(console=self.console, auto_refresh=False, transient=False,
                  redirect_stdout=False, redirect_stderr=False) as live:
            while True:
                started = time.perf_counter()
                snap = self.take()
                if snap is not None:
                    live.update(self.render(snap), refresh=True)
                    self.renders += 1
                else:
                    live.update(Text("snapshot unavailable (see log)", style="red"),
                                refresh=True)
                cost = time.perf_counter() - started
                if await _wait(stop, max(self._period, cost / DRAW_SHARE)):
                    return

    async def _run_plain(self, stop: asyncio.Event) -> None:
        next_print = self._monotonic() + self._plain_interval
        while not await _wait(stop, self._period):
            if self._plain_interval > 0 and self._monotonic() >= next_print:
                self._print_summary()
                next_print = self._monotonic() + self._plain_interval
        if self._plain_interval > 0:
            self._print_summary()

    def _print_summary(self) -> None:
        snap = self.take()
        if snap is not None:
            self.console.print(self.summary_line(snap), markup=False, highlight=False,
                               soft_wrap=True)
            self.renders += 1


def _summary_table(groups: list[GroupSummary]) -> Table:
    """One line per venue and interval: how many streams, how many live, broken or still
    connecting, their closes and the worst lag (with its symbol)."""
    table = Table(expand=False, pad_edge=False, show_edge=False, title_justify="left")
    table.add_column("venue", no_wrap=True)
    table.add_column("interval", no_wrap=True)
    for name in ("streams", "live", "broken", "pending", "closed", "worst lag"):
        table.add_column(name, justify="right", no_wrap=True)
    for g in groups:
        worst = "-" if g.worst_lag_ms is None else \
            f"{format_lag(g.worst_lag_ms)} {g.worst_symbol}"
        table.add_row(g.venue, g.interval, f"{g.streams:,}",
                      Text(f"{g.live:,}", style="green" if g.live == g.streams else ""),
                      Text(f"{g.broken:,}", style="red" if g.broken else ""),
                      Text(f"{g.pending:,}", style="yellow" if g.pending else ""),
                      f"{g.closed:,}", worst)
    return table


@runtime_checkable
class HasSnapshot(Protocol):
    def snapshot(self) -> HealthSnapshot: ...


async def run_dashboard(source: SnapshotProvider | HasSnapshot, stop: asyncio.Event, *,
                        refresh_hz: float = 2.0, console: Console | None = None,
                        plain_interval_s: float = 10.0) -> Dashboard:
    """Convenience for the CLI: show ``source`` (a provider, or any object with a
    ``snapshot()`` method such as the service) until ``stop`` is set; returns the dashboard."""
    provider: SnapshotProvider = source.snapshot if isinstance(source, HasSnapshot) else source
    dash = Dashboard(provider, console=console, refresh_hz=refresh_hz,
                     plain_interval_s=plain_interval_s)
    await dash.run_until(stop)
    return dash


async def _wait(stop: asyncio.Event, timeout: float) -> bool:
    """True once ``stop`` is set; False after ``timeout`` seconds."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout)
    return stop.is_set()
