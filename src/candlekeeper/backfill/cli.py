"""``candlekeeper backfill`` and ``candlekeeper gaps``: history into the SQLite sink.

``backfill`` takes whole days and months from a venue's public archive where ``--source`` says
so (``backfill/sources.py``, ``backfill/archive.py``), and REST for the rest; ``gaps`` repairs
over REST.

Both commands read the service's config (venues, symbols, intervals, REST URLs, SQLite path), so
they act on exactly the streams the service stores. ``backfill`` fills a time range and can be
stopped and re-run at will (it plans from what is stored); ``gaps`` audits storage and, with
``--repair``, fills the holes and audits again. Exit codes of ``gaps``: 0 no gaps, 1 gaps found
(or a repair failed), 3 only unfillable gaps remain (the venue's own history lacks them).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console

from candlekeeper.backfill.archive import ArchiveFiller
from candlekeeper.backfill.derive import DerivedAudit, DeriveResult, build_derived
from candlekeeper.backfill.derive_cli import (
    Derived,
    audit_all,
    build_all,
    fmt_time,
    print_audit_head,
    print_audits,
    print_built,
)
from candlekeeper.backfill.fetcher import KlineFetcher
from candlekeeper.backfill.http import RestClient
from candlekeeper.backfill.planner import count_open_times
from candlekeeper.backfill.progress import BarProgress, LineProgress
from candlekeeper.backfill.progress import progress as progress_of
from candlekeeper.backfill.runner import Backfiller, FillResult, StreamAudit
from candlekeeper.backfill.sources import SOURCES, archive_fillers, archive_summary
from candlekeeper.clock_sync import ClockSync
from candlekeeper.config import Config, FeedConfig, load_config
from candlekeeper.config_checks import check_url
from candlekeeper.core.clock import SystemClock
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.core.symbols import normalize_symbol
from candlekeeper.core.venue_clock import VenueClock
from candlekeeper.errors import CandlekeeperError, ConfigError
from candlekeeper.feed_derived import StreamPlan, plan_streams, resolve_interval
from candlekeeper.observability.logging import configure as configure_logging
from candlekeeper.sinks.sqlite import SQLiteSink
from candlekeeper.venues.registry import canonical_symbol, history_codec

__all__ = ["backfill_command", "gaps_command", "parse_time"]

#: a candle counts as closed 2 s after its close on the venue's clock (its REST history may lag)
CLOSE_MARGIN_MS = 2_000
EXIT_GAPS, EXIT_UNFILLABLE = 1, 3


def parse_time(text: str) -> int:
    """``now``, Unix ms, or an ISO date/time (UTC unless it says otherwise) -> Unix ms."""
    value = text.strip()
    if value.lower() == "now":
        return time.time_ns() // 1_000_000
    if value.isdigit():
        return int(value)
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected 'now', Unix ms or an ISO date such as "
                                 "2024-01-01 or 2024-01-01T12:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


# -- building blocks ----------------------------------------------------------------------
def _feeds(config: Config, venues: Sequence[str]) -> list[FeedConfig]:
    feeds = [f for f in config.feeds if not venues or f.venue in venues]
    unknown = set(venues) - {f.venue for f in config.feeds}
    if unknown:
        raise ConfigError(f"venue(s) not in the config: {', '.join(sorted(unknown))}")
    return feeds


def _split(values: Sequence[str]) -> list[str]:
    return [s.strip() for v in values for s in v.split(",") if s.strip()]


def _symbols(values: Sequence[str]) -> list[str]:
    return [normalize_symbol(s) for s in _split(values)]


async def _plan(feeds: Sequence[FeedConfig], clients: dict[str, RestClient],
                symbols: list[str], intervals: list[str], sink: SQLiteSink, *,
                from_storage: bool) -> StreamPlan:
    """The streams to act on: the feeds' configured ones (each group's symbols on that group's
    intervals), narrowed or replaced by ``--symbols`` / ``--intervals``. A group saying
    ``symbols: all`` resolves against what is stored (``gaps``) or the venue's listing. A
    derived interval (``2m``, ``1d+08:00``) is not served by the venue: its base is fetched
    (``native``), and the derived series is built or audited from the stored base
    (``derived``)."""
    native: list[StreamKey] = []
    derived: Derived = {}
    for feed in feeds:
        keys = await _configured_keys(feed, clients[feed.venue], symbols, intervals, sink,
                                      from_storage=from_storage)
        plan = plan_streams(feed.venue, feed.spec.intervals, keys,
                            derive_from=feed.derive_from, anchor=feed.anchor)
        native += plan.native
        derived.update(plan.derived)
    return StreamPlan(native, derived)


async def _configured_keys(feed: FeedConfig, rest: RestClient, symbols: list[str],
                           intervals: list[str], sink: SQLiteSink, *,
                           from_storage: bool) -> list[StreamKey]:
    for i in intervals:  # native, or derivable (else one line naming the venue's intervals)
        resolve_interval(feed.venue, feed.spec.intervals, i, derive_from=feed.derive_from,
                         anchor=feed.anchor)
    wanted = list(dict.fromkeys(intervals))
    if symbols:  # named on the command line: configured or not
        return [StreamKey(feed.venue, canonical_symbol(feed.venue, s), i) for s in symbols
                for i in (wanted or feed.intervals_for(s))]
    listing: list[str] | None = None
    stored: set[StreamKey] = set()
    if feed.all_symbols and from_storage:
        stored = {k for k in sink.keys() if k.venue == feed.venue}  # noqa: SIM118 - a method
        listing = sorted({k.symbol for k in stored})
    elif feed.all_symbols:
        codec = rest.codec
        listing = codec.decode_symbols(await rest.fetch(codec.symbols_request()))
    configured = feed.stream_keys(listing)
    if wanted:  # every configured symbol on these intervals
        syms = dict.fromkeys(k.symbol for k in configured)
        configured = [StreamKey(feed.venue, s, i) for s in syms for i in wanted]
    if not stored:
        return configured
    # an audit of `all` covers what is stored, not every symbol x interval product of it
    named = set(feed.explicit_keys())
    return [k for k in configured if k in named or _stored_as(feed, k) & stored]


def _stored_as(feed: FeedConfig, key: StreamKey) -> set[StreamKey]:
    """The keys storage holds ``key`` under: itself, or a derived interval's stored name
    (``1d`` with an anchor is stored as ``1d+08:00``) and its base (a derived series is
    expected wherever its base is stored, even before it was built)."""
    spec = resolve_interval(feed.venue, feed.spec.intervals, key.interval,
                            derive_from=feed.derive_from, anchor=feed.anchor)
    if spec is None:
        return {key}
    return {key, *(StreamKey(key.venue, key.symbol, i) for i in (spec.name, spec.base))}


@contextlib.asynccontextmanager
async def _engine(config: Config, venues: Sequence[str], weight_limit: int | None,
                  window_s: float, progress: BarProgress | LineProgress | None,
                  source: str = "rest", archive_url: str | None = None
                  ) -> AsyncIterator[tuple[Backfiller, dict[str, RestClient], list[FeedConfig]]]:
    if not config.sinks.sqlite.enabled:
        raise ConfigError("backfill and gaps work on the SQLite sink, which the config disables")
    feeds = _feeds(config, venues)
    archives = archive_fillers(feeds, source, archive_url)
    sink = SQLiteSink(config.sinks.sqlite.path)
    await sink.open()
    clients: dict[str, RestClient] = {}
    try:
        fetchers: dict[str, KlineFetcher] = {}
        for feed in feeds:
            client = RestClient(history_codec(feed.venue), feed.rest_base,
                                weight_limit=weight_limit, window_s=window_s,
                                options=config.rest)
            clients[feed.venue] = client
            # "is this row final" by the venue's clock, not the host's (issue 9)
            clock = VenueClock(SystemClock())
            await ClockSync(clock, feed.venue, client, event_time=lambda: None).sample()
            fetchers[feed.venue] = KlineFetcher(client.codec, client, clock=clock,
                                                close_margin_ms=CLOSE_MARGIN_MS)
        yield Backfiller(sink, fetchers, progress=progress, archives=archives), clients, feeds
    finally:
        for client in clients.values():
            await client.close()
        for archive in archives.values():
            await archive.close()
        await sink.close()


def _common(fn: click.decorators.FC) -> click.decorators.FC:
    options = [
        click.option("-c", "--config", "config_path", type=click.Path(path_type=Path),
                     envvar="CANDLEKEEPER_CONFIG", required=True, help="YAML config file."),
        click.option("--venue", "venues", multiple=True, help="Only this venue (repeatable)."),
        click.option("--symbols", multiple=True,
                     help="Only these symbols (comma-separated or repeated)."),
        click.option("--intervals", multiple=True,
                     help="Only these intervals (comma-separated or repeated)."),
        click.option("--rest-weight-limit", type=click.IntRange(1), default=None,
                     help="Request weight per window to stay under (default: the venue's, e.g. "
                          "2400/min on USDⓈ-M); lower it to leave room for other processes."),
        click.option("--rest-window-s", type=click.FloatRange(min=0.001, min_open=False),
                     default=60.0, hidden=True),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _setup(config_path: Path) -> tuple[Config, Console]:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    configure_logging("WARNING", config.observability.log_json)
    console = Console()
    if not console.is_terminal:  # a log file or pipe: one line per message, never wrapped
        console = Console(soft_wrap=True)
    return config, console


# -- backfill -------------------------------------------------------------------------------
@click.command("backfill")
@_common
@click.option("--start", required=True, help="First open time: 2024-01-01, ISO time or Unix ms.")
@click.option("--end", default="now", show_default=True, help="Exclusive end.")
@click.option("--source", type=click.Choice(SOURCES), default="auto",
              show_default=True,
              help="auto: whole days and months from the venue's public archive where it has "
                   "one (and REST is its production endpoint, or an archive URL is set), REST "
                   "for the rest; archive: the same, an error for a venue without one; rest: "
                   "REST only.")
@click.option("--archive-url", default=None,
              help="Archive base URL (one venue), instead of the config's archive_url or the "
                   "venue's own.")
def backfill_command(config_path: Path, venues: tuple[str, ...], symbols: tuple[str, ...],
                     intervals: tuple[str, ...], rest_weight_limit: int | None,
                     rest_window_s: float, start: str, end: str, source: str,
                     archive_url: str | None) -> None:
    """Fetch history into the SQLite sink: archive files, then REST (resumable: skips what is
    stored)."""
    config, console = _setup(config_path)
    lo, hi = parse_time(start), parse_time(end)
    if hi <= lo:
        raise click.BadParameter("--end must be after --start")
    try:
        url = None if archive_url is None else check_url(archive_url, ("http", "https"))
    except ValueError as exc:
        click.echo(f"error: --archive-url {exc}", err=True)
        sys.exit(2)
    t0 = time.monotonic()
    try:
        with progress_of(console) as progress:
            results, built, fetchers, archives = asyncio.run(_backfill(
                config, venues, _symbols(symbols), _split(intervals), rest_weight_limit,
                rest_window_s, lo, hi, progress, source, url))
    except CandlekeeperError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    failed = print_built(console, built)
    failed |= _summary(console, results, fetchers, time.monotonic() - t0, archives)
    sys.exit(1 if failed else 0)


async def _backfill(config: Config, venues: Sequence[str], symbols: list[str],
                    intervals: list[str], weight_limit: int | None, window_s: float, start: int,
                    end: int, progress: BarProgress | LineProgress, source: str,
                    archive_url: str | None
                    ) -> tuple[list[FillResult], list[DeriveResult], list[KlineFetcher],
                               list[ArchiveFiller]]:
    async with _engine(config, venues, weight_limit, window_s, progress, source,
                       archive_url) as (eng, clients, feeds):
        plan = await _plan(feeds, clients, symbols, intervals, eng.sink, from_storage=False)
        results = await eng.fill_many(plan.native, start, end)
        built = await build_all(eng, plan.derived, start, end)
        return results, built, list(eng.fetchers.values()), list(eng.archives.values())


def _summary(console: Console, results: list[FillResult], fetchers: list[KlineFetcher],
             duration: float, archives: Sequence[ArchiveFiller] = ()) -> bool:
    failed = False
    for r in results:
        k = r.key
        name = f"{k.venue} {k.symbol} {k.interval}"
        if r.error:
            failed = True
            console.print(f"[red]{name}: FAILED after {r.fetched} candles: {r.error}[/red]")
        elif r.unfillable:
            n = sum(count_open_times(a, b, k.interval) for a, b in r.unfillable)
            first = r.first_available
            where = f" (its history starts at {fmt_time(first)})" if first else ""
            console.print(f"{name}: {r.fetched} fetched; {n} candle(s) the venue does not have"
                          f"{where}: " + ", ".join(f"{fmt_time(a)}..{fmt_time(b)}"
                                                   for a, b in r.unfillable[:3]))
    stats = [f.stats for f in fetchers]
    if archives:
        console.print(archive_summary([a.stats for a in archives]))
    console.print(
        f"backfill: {len(results)} stream(s), {sum(r.fetched for r in results)} candles "
        f"fetched ({sum(r.archived for r in results)} from archives), "
        f"{sum(s.requests for s in stats)} requests, weight "
        f"{sum(s.weight_used for s in stats)}, {sum(s.retries for s in stats)} retries, "
        f"{sum(s.rate_limited + s.banned for s in stats)} rate-limit answers, {duration:.1f}s")
    return failed


# -- gaps ----------------------------------------------------------------------------------
@click.command("gaps")
@_common
@click.option("--start", default=None, help="Audit from here (default: first stored candle).")
@click.option("--end", default=None, help="Audit up to here (default: last stored candle; "
              "'now' includes the tail up to the forming candle).")
@click.option("--repair", is_flag=True, help="Fill the holes over REST, then audit again.")
def gaps_command(config_path: Path, venues: tuple[str, ...], symbols: tuple[str, ...],
                 intervals: tuple[str, ...], rest_weight_limit: int | None,
                 rest_window_s: float, start: str | None, end: str | None, repair: bool) -> None:
    """Audit storage per stream: holes as time ranges, streams with nothing stored.

    Exit status: 0 no gaps; 1 gaps found (or a repair failed); 3 after --repair, only
    unfillable gaps remain (the venue's own REST history lacks those candles)."""
    config, console = _setup(config_path)
    lo = parse_time(start) if start else None
    hi = parse_time(end) if end else None
    try:
        code = asyncio.run(_gaps(config, venues, _symbols(symbols), _split(intervals),
                                 rest_weight_limit, rest_window_s, lo, hi, repair, console))
    except CandlekeeperError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    sys.exit(code)


async def _gaps(config: Config, venues: Sequence[str], symbols: list[str], intervals: list[str],
                weight_limit: int | None, window_s: float, start: int | None, end: int | None,
                repair: bool, console: Console) -> int:
    async with _engine(config, venues, weight_limit, window_s, None) as (eng, clients, feeds):
        plan = await _plan(feeds, clients, symbols, intervals, eng.sink, from_storage=True)
        audits = [await eng.audit(k, start, end) for k in plan.native]
        derived = await audit_all(eng, plan.derived, start, end)
        _print_audits(console, audits, derived)
        with_holes = [a for a in audits if a.holes]
        derived_holes = [a for a in derived if a.holes]
        empty = any(a.empty and not a.holes for a in audits) or any(
            a.empty and not a.holes for a in derived)
        if empty and repair:
            console.print("streams with nothing stored have no range to repair: give --start, "
                          "or run `candlekeeper backfill --start ...`")
        if not repair or not (with_holes or derived_holes):
            return EXIT_GAPS if with_holes or derived_holes or empty else 0
        results = list(await asyncio.gather(*(eng.repair(a) for a in with_holes)))
        failed, unfillable = empty, False
        for r in results:
            k = r.key
            name = f"{k.venue} {k.symbol} {k.interval}"
            if r.error:
                console.print(f"[red]{name}: repair FAILED: {r.error}[/red]")
                failed = True
            elif r.unfillable:
                n = sum(_count(k, a, b) for a, b in r.unfillable)
                console.print(f"{name}: {r.fetched} candles repaired; [yellow]unfillable[/yellow]"
                              f": {n} candle(s) the venue's REST history does not have: "
                              + ", ".join(f"{fmt_time(a)}..{fmt_time(b)}"
                                          for a, b in r.unfillable[:5]))
                unfillable = True
            else:
                console.print(f"{name}: {r.fetched} candles repaired, no gaps left")
        for a in derived_holes:  # after the base repairs: rebuilt from the repaired base
            built = await build_derived(eng.sink, a.spec, a.base_key, a.start, a.end)
            print_built(console, [built])
            unfillable |= built.incomplete > 0
        return EXIT_GAPS if failed else EXIT_UNFILLABLE if unfillable else 0


def _count(key: StreamKey, a: int, b: int) -> int:
    return count_open_times(a, b, key.interval)


def _print_audits(console: Console, audits: list[StreamAudit],
                  derived: Sequence[DerivedAudit] = ()) -> None:
    for a in audits:
        k = a.key
        if print_audit_head(console, f"{k.venue} {k.symbol} {k.interval}", a.empty, a.stored,
                            len(a.holes), a.missing, a.start, a.end):
            for lo, hi in a.holes[:20]:
                console.print(f"    {fmt_time(lo)} .. {fmt_time(hi)}  "
                              f"({_count(k, lo, hi)} candles)")
            if len(a.holes) > 20:
                console.print(f"    ... and {len(a.holes) - 20} more")
    print_audits(console, derived)
    n = sum(1 for a in audits if a.holes) + sum(1 for d in derived if d.holes)
    empty = sum(1 for a in audits if a.empty and not a.holes) + sum(
        1 for d in derived if d.empty and not d.holes)
    derived_note = f" ({len(derived)} derived)" if derived else ""
    console.print(f"gaps: {len(audits) + len(derived)} stream(s) audited{derived_note}, "
                  f"{n} with gaps, {empty} empty")
