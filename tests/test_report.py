"""The shutdown report: every stream below 50, a summary (totals per venue and state, then only
the streams not live) above, either on request; and the exit status it implies."""

from __future__ import annotations

from rich.console import Console

from candlekeeper.core.stream_key import StreamKey
from candlekeeper.feed import CandleFeed
from candlekeeper.report import EXIT_NOT_WRITTEN, exit_status, not_written_lines, print_report
from candlekeeper.service import ServiceReport
from candlekeeper.sinks.contract import WriterStats

VENUE = "binance-usdm"


def make_report(n_symbols: int, intervals: tuple[str, ...] = ("1m", "5m"),
                bad: int = 0, writers: dict[str, WriterStats] | None = None) -> ServiceReport:
    keys = [StreamKey(VENUE, f"S{i:04d}USDT", iv) for i in range(n_symbols) for iv in intervals]
    feed = CandleFeed(VENUE, keys=keys, backfill=False)
    streams = feed.stats()
    states = {s.key: "live" for s in streams}
    for s in streams[:bad]:
        states[s.key] = "stalled"
    return ServiceReport(streams=streams, writers=writers or {}, uptime_s=12.0,
                         unknown_symbols=[], final_states=states)


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
