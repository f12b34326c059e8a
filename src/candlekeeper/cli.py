"""The ``candlekeeper`` command line: a thin layer that builds a Config and calls the service.

Commands: ``run`` (the service), ``demo`` (simulator + service + dashboard, offline),
``simulate`` (the local exchange alone), ``config check``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click

from candlekeeper import __version__
from candlekeeper.cli_types import FiniteFloat
from candlekeeper.config import Config, check_config, load_config
from candlekeeper.config_support import safe_line
from candlekeeper.core.clock import Clock
from candlekeeper.core.shard import Shard
from candlekeeper.errors import ConfigError
from candlekeeper.observability.logging import configure as configure_logging
from candlekeeper.report import (
    FULL_REPORT_MAX_STREAMS,
    REPORT_MODES,
    ReportMode,
    exit_status,
    not_written_lines,
    print_report,
)
from candlekeeper.service import Service, ServiceReport

__all__ = ["main", "print_report", "serve"]

log = logging.getLogger("candlekeeper")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="candlekeeper")
def main() -> None:
    """Gap-free, real-time candles from crypto exchanges."""


# -- run ----------------------------------------------------------------------------------
_report_option = click.option(
    "--report", "report_mode", type=click.Choice(REPORT_MODES), default="auto",
    show_default=True, help=f"Shutdown report: every stream (full), totals per venue and state "
    f"plus the streams not live (summary), or full up to {FULL_REPORT_MAX_STREAMS} streams "
    "(auto).")
_duration_option = click.option(
    "--duration", type=FiniteFloat(min=0), default=None,
    help="Stop after this many seconds.")


@main.command()
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path),
              envvar="CANDLEKEEPER_CONFIG", required=True, help="YAML config file.")
@_duration_option
@click.option("--dashboard/--no-dashboard", default=None,
              help="Live terminal table (default: from config, only on a terminal).")
@click.option("--shard", default=None, metavar="K/N",
              help="Ingest only shard K (0-based) of N of the symbols (stable hash).")
@_report_option
def run(config_path: Path, duration: float | None, dashboard: bool | None,
        shard: str | None, report_mode: ReportMode) -> None:
    """Run the service: ingest, store, serve health and metrics.

    Exit status: 0 stopped and everything written; 1 could not start; 2 bad config or flag;
    3 stopped but candles were not written (pending after shutdown.drain_timeout_s, or
    dropped); 128+N forced exit by a second signal N (130 SIGINT, 143 SIGTERM)."""
    config = _load_or_exit(config_path)
    if shard is not None:
        try:
            Shard.parse(shard)  # a bad spec is one clear line, not a traceback
            config = config.model_copy(update={"shard": shard})
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="'--shard'") from None
    configure_logging(config.observability.log_level, config.observability.log_json)
    show = config.observability.dashboard if dashboard is None else dashboard
    report = _run_or_exit(serve(config, duration=duration, dashboard=show), config)
    print_report(report, mode=report_mode)
    _exit_with(report)


# -- demo ---------------------------------------------------------------------------------
#: one market hour per wall second: more than the demo's three intervals need to show closes
MAX_DEMO_SPEED = 3_600.0
DEMO_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT",
                "AVAXUSDT", "LINKUSDT", "DOTUSDT", "LTCUSDT", "TRXUSDT")


@main.command()
@_duration_option
@click.option("--speed", type=FiniteFloat(min=0, min_open=True, max=MAX_DEMO_SPEED), default=60.0,
              show_default=True,
              help="Simulated market time per wall second (60 = one 1m candle per second).")
@click.option("--symbols", "n_symbols", type=click.IntRange(1, len(DEMO_SYMBOLS)), default=3,
              show_default=True, help="How many symbols per venue.")
@click.option("--db", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("candlekeeper-demo.sqlite"), show_default=True,
              help="SQLite file to store closed candles in.")
@click.option("--dashboard/--no-dashboard", default=True, show_default=True)
@_report_option
def demo(duration: float | None, speed: float, n_symbols: int, db: Path, dashboard: bool,
         report_mode: ReportMode) -> None:
    """Offline demo: the built-in exchange simulator (every registered venue) feeding the
    real pipeline into SQLite (a fresh file each run)."""
    configure_logging("WARNING" if dashboard else "INFO")
    # the simulator's market starts now, so yesterday's demo data would only be a hole
    for suffix in ("", "-wal", "-shm"):
        try:
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        except OSError as exc:
            raise click.BadParameter(f"cannot replace {db}{suffix}: {exc.strerror or exc}",
                                     param_hint="'--db'") from None
    report = _run_or_exit(_demo(duration, speed, DEMO_SYMBOLS[:n_symbols], db, dashboard))
    print_report(report, mode=report_mode)
    click.echo(f"closed candles are stored in {db}")
    _exit_with(report)


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
        return await serve(config, duration=duration, dashboard=dashboard, clock=sim.clock,
                           announce_page=True)


# -- config check -------------------------------------------------------------------------
@main.group("config")
def config_group() -> None:
    """Configuration tools."""


@config_group.command("check")
@click.argument("path", type=click.Path(path_type=Path), required=False)
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="The config file (as `run -c`); or give it as PATH.")
def config_check(path: Path | None, config_path: Path | None) -> None:
    """Validate a config file (and CANDLEKEEPER__* environment overrides)."""
    if path is not None and config_path is not None and path != config_path:
        raise click.UsageError("give the config file once: as PATH or as -c/--config")
    path = path or config_path
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


def _register_export() -> None:
    from candlekeeper.export.cli import export_command

    main.add_command(export_command, "export")


_register_export()


# -- shared -------------------------------------------------------------------------------
#: a stop requested by signal; a second one exits at once (see _Signals)
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _run_async(main_coro: Coroutine[Any, Any, ServiceReport]) -> ServiceReport:
    """``asyncio.run`` with a quiet exit for a Ctrl-C that lands before the service installed
    its own signal handlers (during start-up)."""
    try:
        return asyncio.run(main_coro)
    except KeyboardInterrupt:
        click.echo("interrupted during start-up; nothing to flush", err=True)
        sys.exit(130)


def _run_or_exit(main_coro: Coroutine[Any, Any, ServiceReport],
                 config: Config | None = None) -> ServiceReport:
    """Run the service; whatever still goes wrong at start-up (a database file that cannot be
    opened, a port, a bug) is one line and exit status 1. The traceback goes to the log at
    DEBUG level, where a developer can ask for it, never to a user's terminal."""
    try:
        return _run_async(main_coro)
    except Exception as exc:
        secrets = _secrets(config) if config is not None else []
        if log.isEnabledFor(logging.DEBUG):  # scrubbed too: a driver's error may quote a DSN
            trace = "".join(traceback.format_exception(exc))
            log.debug("%s", safe_line(trace, secrets, limit=100_000))
        reason = " ".join(str(exc).split()) or type(exc).__name__
        click.echo(safe_line(f"candlekeeper: cannot run: {reason}", secrets, limit=1000),
                   err=True)
        sys.exit(1)


def _secrets(config: Config) -> list[str]:
    values = [config.sinks.postgres.dsn, config.sinks.nats.password, config.sinks.nats.token,
              config.observability.http.token]
    return [v.get_secret_value() for v in values if v is not None]


def _exit_with(report: ServiceReport) -> None:
    lines = not_written_lines(report)
    for line in lines:
        click.echo(f"candlekeeper: {line}", err=True)
    sys.exit(exit_status(report))


def _load_or_exit(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


class _Signals:
    """SIGINT/SIGTERM: the first one stops the service gracefully (the sinks drain for up to
    ``shutdown.drain_timeout_s``); a second one exits at once with status 128+N.

    The second signal is handled by a plain ``signal.signal`` handler, not by the event loop:
    it must work even if the loop is stuck in a long synchronous call, which is exactly when a
    user presses Ctrl-C again. ``os._exit`` skips the drain on purpose; SQLite commits are
    atomic and the journal tolerates a torn last record, so nothing already stored is harmed.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event,
                 drain_timeout_s: float) -> None:
        self._loop = loop
        self._stop = stop
        self._drain = drain_timeout_s
        self._saved = {sig: signal.getsignal(sig) for sig in SIGNALS}
        self.received = False
        for sig in SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._first, sig)

    def _first(self, sig: signal.Signals) -> None:
        log.warning("%s received: stopping; the sinks drain for up to %gs (send it again to "
                    "exit at once)", sig.name, self._drain)
        self.received = True
        for other in SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.remove_signal_handler(other)
            signal.signal(other, _force_exit)
        self._stop.set()

    def restore(self) -> None:
        """Put the previous handlers back, unless a stop signal came: the process is then on
        its way out (report, exit status) and a second signal must still force it."""
        if self.received:
            return
        for sig in SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.remove_signal_handler(sig)
            with contextlib.suppress(ValueError, TypeError, OSError):
                signal.signal(sig, self._saved[sig])


def _force_exit(signum: int, _frame: object) -> None:
    with contextlib.suppress(Exception):
        sys.stderr.write(f"candlekeeper: second {signal.Signals(signum).name}: exiting now "
                         "without draining the sinks (journalled candles are replayed on the "
                         "next start; the rest pending in memory are lost)\n")
        sys.stderr.flush()
        sys.stdout.flush()
    os._exit(128 + signum)


async def serve(config: Config, *, duration: float | None = None, dashboard: bool = False,
                clock: Clock | None = None, announce_page: bool = False) -> ServiceReport:
    """Run the service until SIGINT/SIGTERM or ``duration``; returns its statistics.
    ``announce_page``: print the web page's address once it is served (before the dashboard
    takes the terminal)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = _Signals(loop, stop, config.shutdown.drain_timeout_s)
    if duration is not None:
        loop.call_later(duration, stop.set)
    service = Service(config, clock=clock)
    extras: list[asyncio.Task[Any]] = []
    if dashboard or announce_page:
        extras.append(loop.create_task(
            _dashboard(service, stop, config.observability.dashboard_refresh_hz,
                       show=dashboard, announce=announce_page)))
    try:
        return await service.run(stop)
    finally:
        stop.set()
        for task in extras:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        signals.restore()


async def _dashboard(service: Service, stop: asyncio.Event, refresh_hz: float, *,
                     show: bool = True, announce: bool = False) -> None:
    from candlekeeper.observability.dashboard import run_dashboard

    await service.ready.wait()
    if announce:
        url = service.page_url
        click.echo(f"web page: {url}" if url else "web page: not served "
                   "(observability.http is off or its port could not be bound)")
    if show:
        await run_dashboard(service.snapshot, stop, refresh_hz=refresh_hz)
