"""Progress of ``candlekeeper backfill``: a rich bar per stream on a terminal, plain lines
otherwise (logs, CI), so a long run says where it is without flooding a log file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichBar

from candlekeeper.core.stream_key import StreamKey

__all__ = ["BarProgress", "LineProgress", "progress"]


class BarProgress:
    """A rich bar per stream plus a total bar (on a terminal)."""

    def __init__(self, console: Console) -> None:
        self.bar = RichBar(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[fetched]} fetched"), TimeRemainingColumn(),
                           console=console)
        self.total = self.bar.add_task("total", total=0, fetched=0)
        self.tasks: dict[StreamKey, TaskID] = {}

    def _task(self, key: StreamKey) -> TaskID:
        if key not in self.tasks:
            self.tasks[key] = self.bar.add_task(f"{key.venue} {key.symbol} {key.interval}",
                                                total=0, fetched=0)
        return self.tasks[key]

    def plan(self, key: StreamKey, candles: int) -> None:
        task = self._task(key)
        for t in (task, self.total):
            self.bar.update(t, total=(self.bar.tasks[t].total or 0) + candles)

    def advance(self, key: StreamKey, planned: int, fetched: int) -> None:
        task = self._task(key)
        for t in (task, self.total):
            fields = self.bar.tasks[t].fields
            self.bar.update(t, advance=planned, fetched=int(fields["fetched"]) + fetched)

    def end(self, key: StreamKey) -> None:
        pass


class LineProgress:
    """Plain lines when not on a terminal (logs, CI): one per stream at each tenth done."""

    def __init__(self) -> None:
        self.state: dict[StreamKey, list[int]] = {}  # planned, done, fetched, last tenth

    def plan(self, key: StreamKey, candles: int) -> None:
        self.state.setdefault(key, [0, 0, 0, -1])[0] += candles

    def advance(self, key: StreamKey, planned: int, fetched: int) -> None:
        st = self.state.setdefault(key, [0, 0, 0, -1])
        st[1] += planned
        st[2] += fetched
        tenth = st[1] * 10 // max(1, st[0])
        if tenth > st[3]:
            st[3] = tenth
            click.echo(f"{key.venue} {key.symbol} {key.interval}: {st[1]}/{st[0]} planned "
                       f"candles done, {st[2]} fetched")

    def end(self, key: StreamKey) -> None:
        pass


@contextlib.contextmanager
def progress(console: Console) -> Iterator[BarProgress | LineProgress]:
    if console.is_terminal:
        bars = BarProgress(console)
        with bars.bar:
            yield bars
    else:
        yield LineProgress()
