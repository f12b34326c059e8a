"""The terminal dashboard: rendering a snapshot to text, TTY and non-TTY loops, refresh bound."""

from __future__ import annotations

import asyncio
import itertools
import time
from io import StringIO

from obskit import row
from rich.console import Console

from candlekeeper.core.stream_key import StreamKey
from candlekeeper.observability.dashboard import (
    DRAW_SHARE,
    Dashboard,
    format_duration,
    format_lag,
    format_time,
    run_dashboard,
)
from candlekeeper.observability.metrics import Metrics
from candlekeeper.observability.snapshot import ConnectionRow, HealthSnapshot, SinkRow

CLOSE_MS = 1_700_000_039_999  # 2023-11-14 22:13:59.999 UTC


def snapshot(messages_total: int = 0, **kw: object) -> HealthSnapshot:
    streams = (
        row("BTCUSDT", stored=1234, last_close_price="64000.10", last_close_time_ms=CLOSE_MS,
            lag_ms=120, messages=5000, reconnects=2),
        row("ETHUSDT", "stalled", interval="5m", stored=7, last_close_price="3050.5",
            last_close_time_ms=CLOSE_MS, lag_ms=2500, messages=40),
    )
    fields: dict[str, object] = {"ts_ms": CLOSE_MS, "uptime_s": 3725.0, "streams": streams,
                                 "sinks": (SinkRow(name="sqlite", pending=42),),
                                 "messages_total": messages_total}
    fields.update(kw)
    return HealthSnapshot(**fields)  # type: ignore[arg-type]


def text_console(width: int = 160) -> Console:
    return Console(file=StringIO(), width=width, record=True, color_system=None)


def lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def test_render_contains_every_column_of_every_row() -> None:
    console = text_console()
    dash = Dashboard(snapshot, console=console)
    console.print(dash.render(snapshot(), msgs_per_s=1234.5))
    out = console.export_text()
    header = out.splitlines()[0]
    assert header == ("candlekeeper  up 1:02:05  1,234 msgs/s  streams 1/2 live  "
                      "sink backlog 42  status degraded")
    for col in ("venue", "symbol", "interval", "state", "stored", "last close",
                "close time (UTC)", "lag", "msgs", "reconn"):
        assert col in out
    [btc] = lines_with(out, "BTCUSDT")
    cells = [c.strip() for c in btc.split("│")]
    assert cells == ["binance-usdm", "BTCUSDT", "1m", "live", "1,234", "64000.10",
                     "11-14 22:13:59", "120 ms", "5,000", "2"]
    [eth] = lines_with(out, "ETHUSDT")
    assert [c.strip() for c in eth.split("│")] == [
        "binance-usdm", "ETHUSDT", "5m", "stalled", "7", "3050.5", "11-14 22:13:59", "2.5 s",
        "40", "0"]
    # rows needing attention come first
    assert out.index("ETHUSDT") < out.index("BTCUSDT")


def test_render_cuts_rows_and_reports_problems() -> None:
    console = text_console()
    many = tuple(row(f"S{i:03d}USDT") for i in range(30))
    snap = snapshot(streams=many, connections=(
        ConnectionRow(venue="binance-usdm", name="usdm-0", state="reconnecting", reconnects=3,
                      detail="connection refused"),),
        sinks=(SinkRow(name="sqlite", pending=9, failures=4, last_error="disk full"),
               SinkRow(name="postgres", rejected=2,
                       last_rejection="v:BTCUSDT:1m:60000: numeric field overflow")))
    console.print(Dashboard(lambda: snap, console=console, max_rows=10).render(snap))
    out = console.export_text()
    # 30 streams do not fit in 10 lines: the summary by venue and interval takes 4 of them
    assert [c.strip() for c in lines_with(out, "binance-usdm │ 1m ")[0].split("│")] == [
        "binance-usdm", "1m", "30", "30", "0", "0", "0", "-"]
    assert len(lines_with(out, "USDT │")) == 6
    assert "... 24 more streams (24 live)" in out
    assert "connection usdm-0: reconnecting (reconnects 3) connection refused" in out
    assert "sink sqlite: 9 pending, 4 failures: disk full" in out
    assert "sink postgres: 2 rejected, 0 dropped (last: v:BTCUSDT:1m:60000: numeric" in out


def test_formatters() -> None:
    assert format_duration(59) == "0:00:59"
    assert format_duration(90061) == "1d 01:01:01"
    assert format_lag(None) == "-"
    assert format_lag(999) == "999 ms"
    assert format_lag(1500) == "1.5 s"
    assert format_time(None) == "-"
    assert format_time(CLOSE_MS) == "11-14 22:13:59"


def test_rate_is_derived_from_message_deltas() -> None:
    clock = iter([10.0, 12.0])
    totals = iter([1000, 5000])
    dash = Dashboard(lambda: snapshot(next(totals)), console=text_console(),
                     monotonic=lambda: next(clock))
    dash.take()
    assert dash.rate == 0.0
    dash.take()
    assert dash.rate == 2000.0


async def test_non_tty_prints_plain_summaries() -> None:
    console = text_console()
    assert not console.is_terminal
    stop = asyncio.Event()
    calls = 0

    def provider() -> HealthSnapshot:
        nonlocal calls
        calls += 1
        if calls == 3:
            stop.set()
        return snapshot(messages_total=100 * calls)

    dash = Dashboard(provider, console=console, refresh_hz=50, plain_interval_s=0.01)
    await asyncio.wait_for(dash.run_until(stop), 5)
    out = console.export_text()
    summaries = out.splitlines()
    assert len(summaries) == 4  # three periodic ones (the third sets stop), then a final one
    assert all(s.startswith("candlekeeper  up 1:02:05") for s in summaries)
    assert summaries[0].endswith("messages 100  closed 0")
    assert summaries[-1].endswith("messages 400  closed 0")
    assert "\x1b[" not in console.file.getvalue()  # type: ignore[attr-defined]
    assert "┃" not in out  # no table when not a terminal


async def test_tty_redraws_at_a_bounded_rate_and_survives_provider_errors() -> None:
    console = Console(file=StringIO(), width=160, force_terminal=True, height=40)
    stop = asyncio.Event()
    stamps: list[float] = []

    def provider() -> HealthSnapshot:
        stamps.append(time.monotonic())
        if len(stamps) == 2:
            raise RuntimeError("transient")
        if len(stamps) == 5:
            stop.set()
        return snapshot(messages_total=len(stamps))

    refresh_hz = 20.0
    dash = Dashboard(provider, console=console, refresh_hz=refresh_hz)
    await asyncio.wait_for(dash.run_until(stop), 5)
    assert dash.renders == 4
    assert dash.errors == 1
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.9 / refresh_hz  # never faster than refresh_hz
    screen = console.file.getvalue()  # type: ignore[attr-defined]
    assert "BTCUSDT" in screen
    assert "snapshot unavailable" in screen


async def test_an_expensive_redraw_spaces_the_next_so_drawing_stays_a_small_share() -> None:
    """A snapshot that takes 30 ms (thousands of streams) at a requested 20 Hz would be 60 % of
    a core; the dashboard waits cost / DRAW_SHARE between redraws instead."""
    console = Console(file=StringIO(), width=160, force_terminal=True, height=40)
    stop = asyncio.Event()
    stamps: list[float] = []

    def provider() -> HealthSnapshot:
        stamps.append(time.monotonic())
        time.sleep(0.03)  # the cost of a very large snapshot, on the drawing's own clock
        if len(stamps) == 3:
            stop.set()
        return snapshot()

    dash = Dashboard(provider, console=console, refresh_hz=20.0)
    await asyncio.wait_for(dash.run_until(stop), 10)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.03 / DRAW_SHARE  # 1.5 s, not 50 ms


async def test_stop_already_set_returns_promptly() -> None:
    stop = asyncio.Event()
    stop.set()
    console = text_console()
    dash = Dashboard(snapshot, console=console, plain_interval_s=0)
    await asyncio.wait_for(dash.run_until(stop), 1)
    assert console.export_text() == ""


async def test_run_dashboard_accepts_an_object_with_snapshot() -> None:
    metrics = Metrics()
    metrics.stream(StreamKey("binance-spot", "ETHUSDT", "1s")).messages += 3
    stop = asyncio.Event()
    stop.set()
    console = text_console()
    dash = await asyncio.wait_for(run_dashboard(metrics, stop, console=console), 1)
    assert dash.renders == 1
    out = console.export_text()
    assert out.endswith("messages 3  closed 0\n")
    assert "streams 0/1 live" in out


def test_the_header_says_how_many_streams_still_warm_up_and_only_while_some_do() -> None:
    dash = Dashboard(lambda: snapshot(), console=text_console())
    assert "warming 1,200" in dash.header(snapshot(warming=1200), 0.0).plain
    assert "warming" not in dash.header(snapshot(), 0.0).plain


def test_at_universe_size_a_summary_comes_first_and_the_worst_streams_are_shown() -> None:
    """7,500 streams cannot be listed: one summary line per venue and interval says what the
    hidden rows hold, and the rows shown are the worst (broken, then connecting, then the
    largest lag), not the first in alphabetical order."""
    rows = [row(f"S{i:03d}USDT", interval=iv, lag_ms=100 + i, closed=3)
            for i in range(100) for iv in ("1m", "1h")]
    rows[151] = row("S075USDT", "stalled", interval="1h", lag_ms=50)
    rows[40] = row("S020USDT", "subscribed", interval="1m")
    rows[41] = row("S020USDT", interval="1h", lag_ms=9_000)
    snap = snapshot(streams=tuple(rows))
    console = text_console()
    console.print(Dashboard(lambda: snap, console=console, max_rows=12).render(snap))
    out = console.export_text()
    assert [c.strip() for c in lines_with(out, "binance-usdm │ 1m ")[0].split("│")] == [
        "binance-usdm", "1m", "100", "99", "0", "1", "297", "199 ms S099USDT"]
    assert [c.strip() for c in lines_with(out, "binance-usdm │ 1h ")[0].split("│")] == [
        "binance-usdm", "1h", "100", "99", "1", "0", "294", "9.0 s S020USDT"]
    shown = [line.split("│")[1].strip() + " " + line.split("│")[2].strip()
             for line in lines_with(out, "USDT │")]
    assert shown == ["S075USDT 1h", "S020USDT 1m", "S020USDT 1h", "S099USDT 1m",
                     "S099USDT 1h", "S098USDT 1m", "S098USDT 1h"]
    assert "... 193 more streams (193 live)" in out


def test_a_few_more_streams_than_fit_are_listed_not_summarized() -> None:
    """The demo's 72 streams on a 60-line terminal: rows, not a 24-line summary."""
    rows = tuple(row(f"S{i:03d}USDT") for i in range(15))
    snap = snapshot(streams=rows)
    console = text_console()
    console.print(Dashboard(lambda: snap, console=console, max_rows=10).render(snap))
    out = console.export_text()
    assert "broken" not in out  # no summary table
    assert len(lines_with(out, "USDT │")) == 10
    assert "... 5 more streams (5 live)" in out
