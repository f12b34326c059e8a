"""The ``candlekeeper`` command line: a thin layer that builds a Config and calls the service.

Commands: ``run`` (the service), ``demo`` (simulator + service + dashboard, offline),
``simulate`` (the local exchange alone), ``config check``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from candlekeeper import __version__
from candlekeeper.config import Config, check_config, load_config
from candlekeeper.core.clock import Clock
from candlekeeper.core.shard import Shard
from candlekeeper.errors import ConfigError
from candlekeeper.observability.logging import configure as configure_logging
from candlekeeper.service import Service, ServiceReport

log = logging.getLogger("candlekeeper")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="candlekeeper")
def main() -> None:
    """Gap-free, real-time candles from crypto exchanges."""


# -- run ----------------------------------------------------------------------------------
@main.command()
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path),
              envvar="CANDLEKEEPER_CONFIG", required=True, help="YAML config file.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--dashboard/--no-dashboard", default=None,
              help="Live terminal table (default: from config, only on a terminal).")
@click.option("--shard", default=None, metavar="K/N",
              help="Ingest only shard K (0-based) of N of the symbols (stable hash).")
def run(config_path: Path, duration: float | None, dashboard: bool | None,
        shard: str | None) -> None:
    """Run the service: ingest, store, serve health and metrics."""
    config = _load_or_exit(config_path)
    if shard is not None:
        try:
            Shard.parse(shard)  # a bad spec is one clear line, not a traceback
            config = config.model_copy(update={"shard": shard})
        except ConfigError as exc:
            click.echo(str(exc), err=True)
            sys.exit(2)
    configure_logging(config.observability.log_level, config.observability.log_json)
    show = config.observability.dashboard if dashboard is None else dashboard
    report = _run_async(serve(config, duration=duration, dashboard=show))
    print_report(report)


# -- demo ---------------------------------------------------------------------------------
DEMO_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT",
                "AVAXUSDT", "LINKUSDT", "DOTUSDT", "LTCUSDT", "TRXUSDT")


@main.command()
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--speed", type=float, default=60.0, show_default=True,
              help="Simulated market time per wall second (60 = one 1m candle per second).")
@click.option("--symbols", "n_symbols", type=click.IntRange(1, len(DEMO_SYMBOLS)), default=8,
              show_default=True, help="How many symbols per venue.")
@click.option("--db", type=click.Path(path_type=Path), default=Path("candlekeeper-demo.sqlite"),
              show_default=True, help="SQLite file to store closed candles in.")
@click.option("--dashboard/--no-dashboard", default=True, show_default=True)
def demo(duration: float | None, speed: float, n_symbols: int, db: Path, dashboard: bool) -> None:
    """Offline demo: the built-in exchange simulator (Binance USDⓈ-M and spot, BingX swap)
    feeding the real pipeline into SQLite (a fresh file each run)."""
    configure_logging("WARNING" if dashboard else "INFO")
    # the simulator's market starts now, so yesterday's demo data would only be a hole
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    report = _run_async(_demo(duration, speed, DEMO_SYMBOLS[:n_symbols], db, dashboard))
    print_report(report)
    click.echo(f"closed candles are stored in {db}")


async def _demo(duration: float | None, speed: float, symbols: tuple[str, ...], db: Path,
                dashboard: bool) -> ServiceReport:
    """Every registered venue, simulated and ingested. The simulator paces each venue's pushes
    to at least ``pushes_per_candle`` per 1m candle: a venue's real cadence is wall time, and at
    an accelerated clock a venue pushing once a second would show (and, without a closed flag,
    close) each candle on a single push (``Simulator(min_pushes_per_candle=...)``)."""
    from candlekeeper.sim import Simulator
    from candlekeeper.venues.registry import VENUES, get_spec

    pushes_per_candle = 4
    wanted = ("1m", "5m", "15m")
    intervals = tuple(i for i in wanted if all(i in get_spec(v).intervals for v in VENUES))
    async with Simulator(venues=VENUES, symbols=symbols, intervals=intervals, speed=speed,
                         min_pushes_per_candle=pushes_per_candle) as sim:
        config = Config.from_dict({
            "feeds": [
                {"venue": v, "symbols": list(symbols), "intervals": list(intervals),
                 "ws_url": sim.ws_base(v), "rest_url": sim.rest_base(v)}
                for v in VENUES
            ],
            "sinks": {"sqlite": {"path": str(db)}},
            "observability": {"http": {"port": 0}},
        }, source="demo")
        return await serve(config, duration=duration, dashboard=dashboard, clock=sim.clock)


# -- config check -------------------------------------------------------------------------
@main.group("config")
def config_group() -> None:
    """Configuration tools."""


@config_group.command("check")
@click.argument("path", type=click.Path(path_type=Path), required=False)
def config_check(path: Path | None) -> None:
    """Validate a config file (and CANDLEKEEPER__* environment overrides)."""
    problems = check_config(path)
    if problems:
        for line in problems:
            click.echo(line, err=True)
        sys.exit(2)
    click.echo(f"{path or 'config'}: OK")


def _register_simulate() -> None:
    from candlekeeper.sim.cli import simulate_command
    from candlekeeper.tail import tail_command

    main.add_command(simulate_command, "simulate")
    main.add_command(tail_command, "tail")


with contextlib.suppress(ImportError):  # the simulator is part of the package; guard anyway
    _register_simulate()


def _register_backfill() -> None:
    from candlekeeper.backfill.cli import backfill_command, gaps_command

    main.add_command(backfill_command, "backfill")
    main.add_command(gaps_command, "gaps")


_register_backfill()


# -- shared -------------------------------------------------------------------------------
def _run_async(main_coro: Coroutine[Any, Any, ServiceReport]) -> ServiceReport:
    """``asyncio.run`` with a quiet exit for a Ctrl-C that lands before the service installed
    its own signal handlers (during start-up)."""
    try:
        return asyncio.run(main_coro)
    except KeyboardInterrupt:
        click.echo("interrupted during start-up; nothing to flush", err=True)
        sys.exit(130)


def _load_or_exit(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


async def serve(config: Config, *, duration: float | None = None, dashboard: bool = False,
                clock: Clock | None = None) -> ServiceReport:
    """Run the service until SIGINT/SIGTERM or ``duration``; returns its statistics."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    service = Service(config, clock=clock)
    extras: list[asyncio.Task[Any]] = []
    if dashboard:
        extras.append(loop.create_task(
            _dashboard(service, stop, config.observability.dashboard_refresh_hz)))
    try:
        return await service.run(stop)
    finally:
        stop.set()
        for task in extras:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def _dashboard(service: Service, stop: asyncio.Event, refresh_hz: float) -> None:
    from candlekeeper.observability.dashboard import run_dashboard

    await service.ready.wait()
    await run_dashboard(service.snapshot, stop, refresh_hz=refresh_hz)


def print_report(report: ServiceReport, console: Console | None = None) -> None:
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file or pipe: do not squeeze into 80 columns
            console = Console(width=110)
    table = Table(title=f"candlekeeper: per-stream statistics (uptime {report.uptime_s:.1f}s)")
    for col in ("venue", "symbol", "interval", "state at stop", "closed", "messages",
                "duplicates",
                "last close"):
        table.add_column(col, justify="right" if col in {"closed", "messages",
                                                           "duplicates"} else "left")
    for s in report.streams:
        last = s.last_closed
        state = report.final_states.get(s.key, str(s.state))
        table.add_row(s.key.venue, s.key.symbol, s.key.interval, state, str(s.closed),
                      str(s.messages), str(s.duplicates + s.late),
                      str(last.close) if last else "-")
    console.print(table)
    for name, w in report.writers.items():
        console.print(f"sink {name}: {w.written} written, {w.pending} pending, "
                      f"{w.failures} failures, {w.dropped} dropped")
    for unknown in report.unknown_symbols:
        console.print(f"[red]unknown symbol skipped: {unknown}[/red]")
