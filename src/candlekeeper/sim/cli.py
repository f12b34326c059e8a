"""``candlekeeper simulate``: run the local exchange until Ctrl-C.

A thin layer in the uvicorn manner: parse options into ``Simulator`` arguments, start it, print
the URLs a client should use, wait for a signal, stop. The main CLI group registers
:data:`simulate_command`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

from candlekeeper.cli_types import PORT, FiniteFloat
from candlekeeper.errors import CandlekeeperError
from candlekeeper.sim.simulator import Simulator


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
            click.echo(f"{venue}: ws {sim.ws_base(venue)}  rest {sim.rest_base(venue)}")
        click.echo(f"speed x{sim.clock.speed:g}, {len(sim.symbols)} symbols, intervals "
                   f"{','.join(sim.intervals)}; Ctrl-C to stop", err=False)
        if sim.clock.speed != 1.0:
            click.echo("to follow this accelerated time, give `candlekeeper run` the config "
                       f"clock: {{speed: {sim.clock.speed:g}, start_ms: {sim.clock.start_ms}, "
                       f"monotonic_origin: {sim.clock.monotonic_origin!r}}}")
        if len(sim.faults):
            kinds = ",".join(sorted(sim.faults.kinds()))
            last = sim.faults.faults[-1].at_s
            click.echo(f"fault plan: {len(sim.faults)} faults ({kinds}) over {last:g} s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    for venue, stats in sim.stats().items():
        click.echo(f"{venue}: {stats.connections_total} connections, "
                   f"{stats.kline_frames_sent} kline frames, {stats.rest.requests} REST requests")
        if stats.faults:
            applied = ", ".join(f"{k} {n}" for k, n in sorted(stats.faults.items()))
            click.echo(f"{venue}: fault effects: {applied}")


@click.command("simulate")
@click.option("--venues", default="binance-usdm,binance-spot", show_default=True,
              help="Comma-separated venues to simulate: binance-usdm, binance-spot, bingx-swap.")
@click.option("--symbols", default=None,
              help="Comma-separated symbols (default: 20 liquid USDT pairs, or the replay's).")
@click.option("--intervals", default="1m,5m,1h", show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--speed", type=FiniteFloat(min=0, min_open=True), default=1.0, show_default=True,
              help="Venue time runs this many times faster than wall time.")
@click.option("--replay", "replay", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              multiple=True, help="Replay a real candle file (freqtrade JSON, OHLCV or "
              "data.binance.vision CSV); repeatable.")
@click.option("--port-usdm", type=PORT, default=0, show_default=True, help="0 = any free port.")
@click.option("--port-spot", type=PORT, default=0, show_default=True, help="0 = any free port.")
@click.option("--port-bingx", type=PORT, default=0, show_default=True, help="0 = any free port.")
@click.option("--history", type=int, default=1000, show_default=True,
              help="Closed candles available over REST before the start.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--duration", type=FiniteFloat(min=0), default=None,
              help="Stop after this many seconds.")
@click.option("--faults", "faults", default=None, metavar="SPEC",
              help="Fault plan: random:seed=7,count=60,kinds=all,window=0:300 (wall seconds "
              "from the start; kinds joined by '+') or a JSON/YAML plan file. See "
              "docs/simulator.md.")
@click.option("--lifetime", type=float, default=24 * 3600.0, show_default=True,
              help="Connection lifetime in venue seconds (the exchange's is 24 h).")
def simulate_command(venues: str, symbols: str | None, intervals: str, seed: int, speed: float,
                     replay: tuple[Path, ...], port_usdm: int, port_spot: int, port_bingx: int,
                     history: int,
                     host: str, duration: float | None, faults: str | None,
                     lifetime: float) -> None:
    """Run a local Binance USDⓈ-M + spot and BingX swap exchange (WebSocket + REST) until
    Ctrl-C."""
    try:
        sim = Simulator(venues=_csv(venues) or [], symbols=_csv(symbols),
                        intervals=_csv(intervals) or [], seed=seed, speed=speed,
                        history=history, replay=list(replay) or None, host=host,
                        ports={"binance-usdm": port_usdm, "binance-spot": port_spot,
                               "bingx-swap": port_bingx},
                        faults=faults, connection_lifetime_s=lifetime)
        asyncio.run(_serve(sim, duration))
    except (CandlekeeperError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:  # e.g. the port is taken
        raise click.ClickException(f"cannot start the simulator: {exc}") from exc
