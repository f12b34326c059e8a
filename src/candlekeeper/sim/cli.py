"""``candlekeeper simulate``: run the local exchange until Ctrl-C.

A thin layer in the uvicorn manner: parse options into ``Simulator`` arguments, start it, print
the URLs a client should use, wait for a signal, stop. The main CLI group registers
:data:`simulate_command`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import sys
from pathlib import Path
from typing import NoReturn

import click

from candlekeeper.cli_types import FiniteFloat
from candlekeeper.core.intervals import INTERVAL_MS
from candlekeeper.errors import CandlekeeperError
from candlekeeper.sim.replay import ReplaySeries
from candlekeeper.sim.replay_db import DbReplay, load_replay_db
from candlekeeper.sim.simulator import Simulator
from candlekeeper.sim.universe import MAX_UNIVERSE
from candlekeeper.sim.venues import personality_for, simulated_venues
from candlekeeper.stored import scrub


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


async def _serve(sim: Simulator, duration: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with sim:
        for venue in sim.venues:
            archive = (f"  archive {sim.archive_base(venue)}"
                       if sim.server(venue).archive is not None else "")
            click.echo(f"{venue}: ws {sim.ws_base(venue)}  rest {sim.rest_base(venue)}{archive}")
        click.echo(f"speed x{sim.clock.speed:g}, {len(sim.symbols)} symbols, intervals "
                   f"{','.join(sim.intervals)}; Ctrl-C to stop", err=False)
        if sim.clock.speed != 1.0:
            click.echo("to follow this accelerated time, give `candlekeeper run` the config "
                       f"clock: {{speed: {sim.clock.speed:g}, start_ms: {sim.clock.start_ms}, "
                       f"monotonic_origin: {sim.clock.monotonic_origin!r}}}")
        for venue in sim.venues:
            skew = sim.clock_skew_ms(venue)
            if skew:
                click.echo(f"{venue}: its clock runs {skew / 1000:+g} s from the clock above "
                           f"(a host clock {abs(skew) / 1000:g} s "
                           f"{'behind' if skew > 0 else 'ahead of'} the venue)")
        if len(sim.faults):
            kinds = ",".join(sorted(sim.faults.kinds()))
            last = sim.faults.faults[-1].at_s
            click.echo(f"fault plan: {len(sim.faults)} faults ({kinds}) over {last:g} s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    for venue, stats in sim.stats().items():
        click.echo(f"{venue}: {stats.connections_total} connections, "
                   f"{stats.kline_frames_sent} kline frames, {stats.rest.requests} REST requests"
                   f" ({stats.rest.rejected_429} answered 429, {stats.rest.banned_418} 418)")
        if stats.faults:
            applied = ", ".join(f"{k} {n}" for k, n in sorted(stats.faults.items()))
            click.echo(f"{venue}: fault effects: {applied}")


def _fail(message: str) -> NoReturn:
    """A bad flag: one line on stderr, exit status 2 (a usage error), no traceback."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def _venues(value: str | None) -> tuple[str, ...]:
    known = simulated_venues()
    if value is None:
        return known
    names = _csv(value) or []
    if not names:
        _fail(f"--venues {value!r}: name at least one venue ({', '.join(known)})")
    for name in names:
        if name not in known:
            _fail(f"--venues: unknown venue {name!r}; expected one of {', '.join(known)}")
    return tuple(dict.fromkeys(names))


def _intervals(value: str, venues: tuple[str, ...]) -> list[str]:
    """The interval list; ``all``: every interval every chosen venue offers."""
    if value.strip().lower() != "all":
        return _csv(value) or []
    common = [iv for iv in personality_for(venues[0]).spec.intervals
              if all(iv in personality_for(v).spec.intervals for v in venues[1:])]
    return sorted(common, key=INTERVAL_MS.__getitem__)


def _ports(values: tuple[str, ...], venues: tuple[str, ...]) -> dict[str, int]:
    """``VENUE=PORT`` pairs; every venue must be one being simulated, every port 0..65535."""
    out: dict[str, int] = {}
    for item in values:
        venue, sep, raw = item.partition("=")
        venue, raw = venue.strip(), raw.strip()
        if not sep or not venue or not raw:
            _fail(f"--port {item!r}: expected VENUE=PORT, e.g. {venues[0]}=9001")
        if venue not in venues:
            _fail(f"--port {item!r}: {venue!r} is not simulated here "
                  f"(--venues {','.join(venues)})")
        if not raw.isdigit() or int(raw) > 65535:
            _fail(f"--port {item!r}: the port must be an integer from 0 to 65535")
        if venue in out:
            _fail(f"--port {item!r}: {venue} is given twice")
        out[venue] = int(raw)
    return out


def _skews(values: tuple[str, ...], venues: tuple[str, ...]) -> dict[str, float]:
    """``VENUE=±SECONDS`` pairs: each venue simulated here, each skew a finite number."""
    out: dict[str, float] = {}
    for item in values:
        venue, sep, raw = item.partition("=")
        venue, raw = venue.strip(), raw.strip()
        if not sep or not venue or not raw:
            _fail(f"--clock-skew {item!r}: expected VENUE=±SECONDS, e.g. {venues[0]}=+15")
        if venue not in venues:
            _fail(f"--clock-skew {item!r}: {venue!r} is not simulated here "
                  f"(--venues {','.join(venues)})")
        try:
            seconds = float(raw)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds):
            _fail(f"--clock-skew {item!r}: the skew must be a finite number of seconds")
        if venue in out:
            _fail(f"--clock-skew {item!r}: {venue} is given twice")
        out[venue] = seconds
    return out


def _load_db(target: str, venues: str | None, chosen: tuple[str, ...],
             symbols: list[str] | None) -> DbReplay:
    """The stored market; a database the simulator cannot serve is one line, exit status 2."""
    if venues is not None and len(chosen) > 1:
        _fail("--replay-db serves one venue: give at most one in --venues")
    venue = chosen[0] if venues is not None else None
    try:
        stored = asyncio.run(load_replay_db(
            target, venue=venue, symbols=None if symbols is None else
            [s.upper() for s in symbols]))
    except CandlekeeperError as exc:
        _fail(f"--replay-db: {scrub(str(exc), [target])}")
    if stored.venue not in simulated_venues():
        _fail(f"--replay-db: the simulator has no venue {stored.venue!r}")
    return stored


@click.command("simulate")
@click.option("--venues", default=None, metavar="A,B",
              help="Comma-separated venue ids to simulate (default: every registered venue).")
@click.option("--symbols", default=None,
              help="Comma-separated symbols (default: 20 liquid USDT pairs, or the replay's).")
@click.option("--universe", type=click.IntRange(1, MAX_UNIVERSE), default=None, metavar="N",
              help="Serve N symbols with real-looking activity (a few busy, a long quiet "
              "tail) instead of --symbols.")
@click.option("--intervals", default=None,
              help="Comma-separated intervals, or 'all' for every interval of the venues "
              "(default: 1m,5m,1h, or the intervals stored in --replay-db).")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--speed", type=FiniteFloat(min=0, min_open=True), default=1.0, show_default=True,
              help="Venue time runs this many times faster than wall time.")
@click.option("--replay", "replay", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              multiple=True, help="Replay a real candle file (freqtrade JSON, OHLCV or "
              "kline-archive CSV); repeatable.")
@click.option("--replay-db", "replay_db", default=None, metavar="PATH|DSN",
              help="Serve the candles stored in this SQLite file or PostgreSQL DSN (its venue, "
              "symbols and intervals) as the market.")
@click.option("--port", "ports", multiple=True, metavar="VENUE=PORT",
              help="Listen for VENUE on PORT (repeatable; default: any free port).")
@click.option("--history", type=int, default=1000, show_default=True,
              help="Closed candles available over REST before the start.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--duration", type=FiniteFloat(min=0), default=None,
              help="Stop after this many seconds.")
@click.option("--faults", "faults", default=None, metavar="SPEC",
              help="Fault plan: random:seed=7,count=60,kinds=all,window=0:300 (wall seconds "
              "from the start; kinds joined by '+') or a JSON/YAML plan file. See "
              "docs/simulator.md.")
@click.option("--lifetime", type=float, default=None,
              help="Connection lifetime in venue seconds (default: each venue's own).")
@click.option("--clock-skew", "skews", multiple=True, metavar="VENUE=±SECONDS",
              help="Run VENUE's clock this many venue seconds ahead (+) of or behind (-) the "
              "simulator's clock, as a host clock that far off would see it (repeatable).")
def simulate_command(venues: str | None, symbols: str | None, universe: int | None,
                     intervals: str | None, seed: int,
                     speed: float, replay: tuple[Path, ...], replay_db: str | None,
                     ports: tuple[str, ...],
                     history: int, host: str, duration: float | None, faults: str | None,
                     lifetime: float | None, skews: tuple[str, ...]) -> None:
    """Run a local exchange for the chosen venues (WebSocket + REST) until Ctrl-C."""
    chosen = _venues(venues)
    if universe is not None and (symbols is not None or replay or replay_db):
        _fail("--universe replaces the symbol list: give --symbols/--replay/--replay-db or "
              "--universe")
    series: list[ReplaySeries | Path] = list(replay)
    wanted = _csv(symbols)
    if replay_db is not None:
        if replay:
            _fail("give --replay files or --replay-db, not both")
        stored = _load_db(replay_db, venues, chosen, wanted)
        chosen, series, wanted = (stored.venue,), list(stored.series), stored.symbols
        intervals = intervals or ",".join(stored.intervals)
    port_map = _ports(ports, chosen)
    skew_map = _skews(skews, chosen)
    try:
        sim = Simulator(venues=chosen, symbols=wanted, universe=universe,
                        intervals=_intervals(intervals or "1m,5m,1h", chosen), seed=seed,
                        speed=speed, history=history, replay=series or None, host=host,
                        ports=port_map, faults=faults, connection_lifetime_s=lifetime,
                        clock_skew_s=skew_map or None)
        asyncio.run(_serve(sim, duration))
    except (CandlekeeperError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:  # e.g. the port is taken
        raise click.ClickException(f"cannot start the simulator: {exc}") from exc
