"""``pip install candlekeeper`` stays lean: the library (a feed with its REST backfill, SQLite,
the simulator) works without the ``service`` extra (rich, prometheus-client, asyncpg, nats-py),
and the command line says which extra to install instead of raising.

The extras are really absent in the child processes below: an import hook refuses them, as a
machine without them would.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from candlekeeper.cli_entry import SERVICE_MODULES

ROOT = Path(__file__).resolve().parents[1]
BLOCK = textwrap.dedent(f"""
    import sys
    BLOCKED = {set(SERVICE_MODULES) | {"pandas"}!r}
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None
    sys.meta_path.insert(0, Block())
""")


def run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_the_base_install_names_no_service_dependency() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(meta["dependencies"])
    for module in ("rich", "prometheus", "asyncpg", "nats"):
        assert module not in base, module
    service = " ".join(meta["optional-dependencies"]["service"])
    assert all(m in service for m in ("rich", "prometheus", "asyncpg", "nats"))


def test_a_library_feed_runs_without_the_service_extra() -> None:
    done = run("""
        import asyncio
        from candlekeeper import CandleFeed
        from candlekeeper.sim import Simulator
        from candlekeeper.sinks import SQLiteSink
        from candlekeeper.venues.registry import VENUES

        async def main() -> None:
            venue = VENUES[0]
            async with Simulator(venues=(venue,), symbols=["BTCUSDT"], intervals=["1m"],
                                 speed=120) as sim:
                async with CandleFeed(venue, ["BTCUSDT"], ["1m"], ws_url=sim.ws_base(venue),
                                      rest_url=sim.rest_base(venue), clock=sim.clock) as feed:
                    async with asyncio.timeout(30):
                        async for candle in feed.closed():
                            break
                    assert len(feed.latest("BTCUSDT", "1m")) > 1  # warmed over REST
                    feed.metrics.snapshot()  # health numbers without Prometheus
            print("closed", candle.open_time)
            blocked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
            print("loaded", blocked)

        asyncio.run(main())
    """)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "closed " in done.stdout and "loaded []" in done.stdout


def test_the_command_line_names_the_extra_to_install() -> None:
    done = run("""
        from candlekeeper.cli_entry import main
        sys.argv = ["candlekeeper", "run", "-c", "config.yaml"]
        main()
    """)
    assert done.returncode == 2
    assert "pip install 'candlekeeper[service]'" in done.stderr
    assert "Traceback" not in done.stderr
