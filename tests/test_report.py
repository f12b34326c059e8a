"""The shutdown report: every stream below 50, a summary (totals per venue and state, then only
the streams not live) above, either on request; and the exit status it implies."""

from __future__ import annotations

from rich.console import Console

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import MINUTE
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.feed import CandleFeed
from candlekeeper.gapfill import GapFillOptions
from candlekeeper.report import EXIT_NOT_WRITTEN, exit_status, not_written_lines, print_report
from candlekeeper.service import ServiceReport
from candlekeeper.sinks.contract import WriterStats

VENUE = "binance-usdm"
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def make_report(n_symbols: int, intervals: tuple[str, ...] = ("1m", "5m"),
                bad: int = 0, writers: dict[str, WriterStats] | None = None,
                feed: CandleFeed | None = None) -> ServiceReport:
    keys = [StreamKey(VENUE, f"S{i:04d}USDT", iv) for i in range(n_symbols) for iv in intervals]
    if feed is None:
        feed = CandleFeed(VENUE, keys=keys, gap_fill=GapFillOptions(enabled=False))
    streams = feed.stats()
    states = {s.key: "live" for s in streams}
    for s in streams[:bad]:
        states[s.key] = "stalled"
    return ServiceReport(streams=streams, writers=writers or {}, uptime_s=12.0,
                         unknown_symbols=[], final_states=states,
                         derived=feed.derived_streams())


def render(report: ServiceReport, mode: str) -> str:
    console = Console(record=True, width=200)
    print_report(report, console, mode)  # type: ignore[arg-type]
    return console.export_text()


def test_auto_is_the_full_table_for_a_few_streams() -> None:
    text = render(make_report(10, bad=1), "auto")
    assert "per-stream statistics" in text
    assert text.count("S00") == 20  # one row per stream


def test_auto_summarises_a_thousand_streams() -> None:
    report = make_report(600, bad=7)  # 1,200 streams
    text = render(report, "auto")
    assert "summary of 1200 streams" in text
    assert "per-stream statistics" not in text
    assert "7 of 1200 streams not live at stop" in text
    assert text.count("S0") == 7  # only the unhealthy rows name a symbol
    assert len(text.splitlines()) < 40
    full = render(report, "full")
    assert full.count("S0") == 1200


def test_summary_caps_the_unhealthy_rows_and_says_so() -> None:
    text = render(make_report(100, bad=120), "summary")
    assert "120 of 200 streams not live at stop (first 50)" in text
    assert "... and 70 more (--report full lists every stream)" in text


def test_summary_when_every_stream_is_live() -> None:
    text = render(make_report(3), "summary")
    assert "all 6 streams were live at stop" in text


def stats(**kw: int) -> WriterStats:
    base = {"written": 10, "pending": 0, "batches": 1, "failures": 0, "retries": 0,
            "dropped": 0, "last_error": None, "last_flush_monotonic": None}
    return WriterStats(**{**base, **kw})  # type: ignore[arg-type]


def test_exit_status_says_whether_candles_were_written() -> None:
    assert exit_status(make_report(1, writers={"sqlite": stats()})) == 0
    lost = make_report(1, writers={"sqlite": stats(), "postgres": stats(pending=5,
                                                                        journal_rows=3),
                                   "nats": stats(dropped=2)})
    assert exit_status(lost) == EXIT_NOT_WRITTEN
    assert not_written_lines(lost) == [
        "sink postgres: 5 candle(s) not written by the drain deadline (3 of them safe in the "
        "journal, replayed on the next start)",
        "sink nats: 2 candle(s) dropped while the backlog was full"]


def closes(n: int, start: int = T0) -> list[Candle]:
    return [Candle.of(VENUE, "S0000USDT", "1m", start + i * MINUTE, start + (i + 1) * MINUTE - 1,
                      100, 102, 99, f"{100 + i}.5", 1, closed=True) for i in range(n)]


def test_the_full_table_lists_derived_streams_with_their_base_and_closes() -> None:
    keys = [StreamKey(VENUE, "S0000USDT", iv) for iv in ("1m", "10m", "3h")]
    feed = CandleFeed(VENUE, keys=keys, gap_fill=GapFillOptions(enabled=False))
    ten = next(d for d in feed.derived_streams() if d.key.interval == "10m")
    for c in closes(25):  # the derived stream's own logic: two whole 10m buckets close
        ten.offer(c)
    text = render(make_report(1, feed=feed), "full")
    rows = {cells[2]: cells for line in text.splitlines()
            if len(cells := [c.strip() for c in line.split("│") if c.strip()]) == 8}
    assert rows["10m (from 1m)"] == [VENUE, "S0000USDT", "10m (from 1m)", "live", "2", "-", "-",
                                     "119.5"]
    assert rows["3h (from 1m)"] == [VENUE, "S0000USDT", "3h (from 1m)", "live", "0", "-", "-",
                                    "-"]
    assert rows["1m"][2:4] == ["1m", "live"]


def test_the_summary_counts_derived_streams_and_their_base_state() -> None:
    keys = [StreamKey(VENUE, f"S{i:04d}USDT", iv) for i in range(40) for iv in ("1m", "3h")]
    feed = CandleFeed(VENUE, keys=keys, gap_fill=GapFillOptions(enabled=False))
    report = make_report(40, bad=1, feed=feed)  # the first 1m base stalled: its 3h too
    text = render(report, "auto")
    assert "summary of 80 streams, 40 derived" in text
    assert "2 of 80 streams not live at stop" in text
    assert "3h (from 1m)" in text and text.count("S0000USDT") == 2
    assert render(report, "full").count("3h (from 1m)") == 40
