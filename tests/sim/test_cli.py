"""``candlekeeper simulate`` as a click command: prints the URLs, serves, stops cleanly; bad
options are one clear line, not a traceback."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from candlekeeper.sim.cli import simulate_command
from candlekeeper.venues.registry import VENUES, get_spec


def test_simulate_prints_urls_and_stops() -> None:
    """Without ``--venues`` every registered venue is simulated, each at its real URL path."""
    result = CliRunner().invoke(simulate_command, [
        "--duration", "0.3", "--symbols", "BTCUSDT,ETHUSDT", "--speed", "60",
        "--intervals", "1m,1h", "--history", "10"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for line, venue in zip(lines, VENUES, strict=False):
        path = urlsplit(get_spec(venue).ws_base).path
        assert line.startswith(f"{venue}: ws ws://127.0.0.1:")
        assert f"{path}  rest http://127.0.0.1:" in line
    assert "speed x60, 2 symbols, intervals 1m,1h" in lines[len(VENUES)]


def test_simulate_replay_file(samples: Path) -> None:
    path = samples / "freqtrade_XRP_USDT_USDT-5m-futures.json"
    result = CliRunner().invoke(simulate_command, [
        "--duration", "0.2", "--replay", str(path), "--intervals", "5m,1h",
        "--venues", "binance-usdm"])
    assert result.exit_code == 0, result.output
    assert "1 symbols" in result.output and "binance-spot" not in result.output


def test_simulate_bingx_venue() -> None:
    result = CliRunner().invoke(simulate_command, [
        "--duration", "0.2", "--venues", "bingx-swap,binance-usdm", "--symbols", "BTCUSDT",
        "--intervals", "1m"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("bingx-swap: ws ws://127.0.0.1:")
    assert "/swap-market  rest http://127.0.0.1:" in lines[0]
    assert lines[1].startswith("binance-usdm: ws ws://127.0.0.1:")
    result = CliRunner().invoke(simulate_command, [
        "--duration", "0", "--venues", "bingx-swap", "--intervals", "1s"])
    assert result.exit_code == 1 and "bingx-swap has no interval '1s'" in result.output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_port_puts_a_venue_on_the_given_port() -> None:
    usdm, bingx = free_port(), free_port()
    result = CliRunner().invoke(simulate_command, [
        "--duration", "0.2", "--venues", "binance-usdm,bingx-swap", "--symbols", "BTCUSDT",
        "--intervals", "1m", "--port", f"binance-usdm={usdm}", "--port", f"bingx-swap={bingx}"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"rest http://127.0.0.1:{usdm}" in lines[0]
    assert f"ws://127.0.0.1:{bingx}/swap-market" in lines[1]


def test_simulate_bad_options_are_one_clear_line() -> None:
    result = CliRunner().invoke(simulate_command, ["--intervals", "1m,7m", "--duration", "0"])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {VENUES[0]} has no interval '7m'"


@pytest.mark.parametrize(("args", "message"), [
    (["--venues", "kraken"],
     f"Error: --venues: unknown venue 'kraken'; expected one of {', '.join(VENUES)}"),
    (["--venues", ","], "Error: --venues ',': name at least one venue"),
    (["--port", "kraken=9000"],
     f"Error: --port 'kraken=9000': 'kraken' is not simulated here (--venues {','.join(VENUES)})"),
    (["--venues", "binance-usdm", "--port", "bingx-swap=9000"],
     "Error: --port 'bingx-swap=9000': 'bingx-swap' is not simulated here "
     "(--venues binance-usdm)"),
    (["--port", "binance-usdm=70000"],
     "Error: --port 'binance-usdm=70000': the port must be an integer from 0 to 65535"),
    (["--port", "binance-usdm=-1"],
     "Error: --port 'binance-usdm=-1': the port must be an integer from 0 to 65535"),
    (["--port", "binance-usdm=http"],
     "Error: --port 'binance-usdm=http': the port must be an integer from 0 to 65535"),
    (["--port", "9000"], "Error: --port '9000': expected VENUE=PORT, e.g. binance-usdm=9001"),
    (["--port", "binance-usdm=1", "--port", "binance-usdm=2"],
     "Error: --port 'binance-usdm=2': binance-usdm is given twice"),
])
def test_bad_venue_and_port_flags_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(simulate_command, [*args, "--duration", "0"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == message or result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert "Traceback" not in result.output
