"""``candlekeeper simulate`` as a click command: prints the URLs, serves, stops cleanly; bad
options are one clear line, not a traceback."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from candlekeeper.sim.cli import simulate_command


def test_simulate_prints_urls_and_stops() -> None:
    result = CliRunner().invoke(simulate_command, [
        "--duration", "0.3", "--symbols", "BTCUSDT,ETHUSDT", "--speed", "60",
        "--intervals", "1m,1h", "--history", "10"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("binance-usdm: ws ws://127.0.0.1:")
    assert "/market  rest http://127.0.0.1:" in lines[0]
    assert lines[1].startswith("binance-spot: ws ws://127.0.0.1:")
    assert "speed x60, 2 symbols, intervals 1m,1h" in lines[2]


def test_simulate_replay_file(samples: Path) -> None:
    path = samples / "freqtrade_XRP_USDT_USDT-5m-futures.json"
    result = CliRunner().invoke(simulate_command, [
        "--duration", "0.2", "--replay", str(path), "--intervals", "5m,1h",
        "--venues", "binance-usdm"])
    assert result.exit_code == 0, result.output
    assert "1 symbols" in result.output and "binance-spot" not in result.output


def test_simulate_bad_options_are_one_clear_line() -> None:
    result = CliRunner().invoke(simulate_command, ["--intervals", "1m,7m", "--duration", "0"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: binance-usdm has no interval '7m'"
    result = CliRunner().invoke(simulate_command, ["--venues", "kraken", "--duration", "0"])
    assert result.exit_code == 1 and "no venue 'kraken'" in result.output


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
