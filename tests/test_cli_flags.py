"""Every bad flag is one usage line and exit status 2, refused before anything starts
(click's CliRunner: parsing only; tests/test_cli_commands.py runs real processes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from candlekeeper.cli import main
from candlekeeper.venues.registry import VENUES


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result.exit_code, result.output


def assert_usage_error(args: tuple[str, ...], fragment: str) -> None:
    code, out = invoke(*args)
    assert code == 2, out
    assert fragment in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize("speed", ["0", "-1", "inf", "nan", "1e9"])
def test_demo_speed(speed: str) -> None:
    assert_usage_error(("demo", "--speed", speed), "Invalid value for '--speed'")


@pytest.mark.parametrize("value", ["-0.5", "-3", "inf", "nan", "soon"])
def test_duration_of_run_demo_and_simulate(tmp_path: Path, value: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("feeds: [{venue: binance-usdm, symbols: [BTCUSDT]}]\n")
    for args in (("run", "-c", str(cfg)), ("demo",), ("simulate",)):
        assert_usage_error((*args, "--duration", value), "Invalid value for '--duration'")


def test_demo_db_must_be_a_file(tmp_path: Path) -> None:
    assert_usage_error(("demo", "--db", str(tmp_path)), "is a directory")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_usage_error(("demo", "--db", str(blocker / "x.sqlite")),
                       "Invalid value for '--db': cannot replace")


@pytest.mark.parametrize("speed", ["inf", "nan", "0", "-2"])
def test_simulate_speed(speed: str) -> None:
    assert_usage_error(("simulate", "--speed", speed), "Invalid value for '--speed'")


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize("port", ["99999", "-1", "65536", "http"])
def test_simulate_ports(venue: str, port: str) -> None:
    assert_usage_error(("simulate", "--port", f"{venue}={port}"), "port must be an integer")


@pytest.mark.parametrize("item", ["nosuch-venue=9001", "9001", "=9001"])
def test_simulate_port_names_a_simulated_venue(item: str) -> None:
    code, out = invoke("simulate", "--port", item)
    assert code == 2 and "--port" in out and "Traceback" not in out


def test_run_bad_shard_and_report(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("feeds: [{venue: binance-usdm, symbols: [BTCUSDT]}]\n")
    assert_usage_error(("run", "-c", str(cfg), "--shard", "3/2"), "Invalid value for '--shard'")
    assert_usage_error(("run", "-c", str(cfg), "--report", "tiny"),
                       "Invalid value for '--report'")
    assert_usage_error(("demo", "--report", "tiny"), "Invalid value for '--report'")
