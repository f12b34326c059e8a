"""The command line, run as a real subprocess like a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from candlekeeper.venues.registry import VENUES

CLI = [sys.executable, "-m", "candlekeeper"]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_config_check_ok_and_unknown_key(tmp_path: Path) -> None:
    good = write(tmp_path, "feeds:\n  - venue: binance-spot\n    symbols: [BTCUSDT]\n"
                           "    intervals: [1s, 1m]\n")
    ok = run_cli("config", "check", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    bad = write(tmp_path, "feeds:\n  - venue: binance-usdm\n    symbols: [BTCUSDT]\n"
                          "    intervals: [1s]\nsinks:\n  sqlite:\n    pth: x.db\n")
    res = run_cli("config", "check", str(bad))
    assert res.returncode == 2
    assert "sinks.sqlite.pth" in res.stderr and "did you mean 'path'" in res.stderr
    assert "'1s'" in res.stderr  # 1s is spot-only
    assert "Traceback" not in res.stderr
    # -c/--config, as `run` takes it, works the same; the file given twice differently does not
    good = tmp_path / "good.yaml"  # (write() reuses one file name: ``bad`` replaced it)
    good.write_text("feeds:\n  - venue: binance-spot\n    symbols: [BTCUSDT]\n")
    ok = run_cli("config", "check", "-c", str(good))
    assert ok.returncode == 0 and "OK" in ok.stdout, ok.stderr
    assert run_cli("config", "check", "--config", str(bad)).returncode == 2
    twice = run_cli("config", "check", "-c", str(good), str(bad))
    assert twice.returncode == 2 and "give the config file once" in twice.stderr
    assert "Traceback" not in twice.stderr


def test_run_with_bad_config_is_one_clear_error(tmp_path: Path) -> None:
    bad = write(tmp_path, "feeds:\n  - venue: binance-usdm\n    symbols: [BTCUSDT]\n"
                          "    intervals: [7m]\n")
    res = run_cli("run", "-c", str(bad))
    assert res.returncode == 2
    assert "has no interval '7m' and cannot derive '7m'" in res.stderr
    assert "Traceback" not in res.stderr


def test_run_against_the_real_exchange_without_network_keeps_retrying(tmp_path: Path) -> None:
    """No network here: the default Binance URLs fail to resolve. The service must say so in
    one line per attempt, keep retrying, and shut down cleanly — never a traceback."""
    cfg = write(tmp_path, "feeds:\n  - venue: binance-usdm\n    symbols: [BTCUSDT]\n"
                          "    intervals: [1m]\n"
                          f"sinks:\n  sqlite:\n    path: {tmp_path / 'c.sqlite'}\n"
                          "observability:\n  http: {port: 0}\n  dashboard: false\n")
    res = run_cli("run", "-c", str(cfg), "--duration", "4")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Traceback" not in out
    attempts = [line for line in res.stderr.splitlines()
                if "cannot connect to wss://fstream.binance.com/market/stream" in line]
    assert len(attempts) >= 2  # retried (1 s, then 2 s backoff)
    assert all("reconnecting in" in line for line in attempts)
    assert "per-stream statistics" in res.stdout  # graceful shutdown report


def test_demo_stops_cleanly_on_sigint_and_sigterm(tmp_path: Path) -> None:
    """Ctrl-C (and SIGTERM from a supervisor) flush the sink and print per-stream statistics."""
    import json
    import signal
    import sqlite3
    import time
    import urllib.request

    for sig in (signal.SIGINT, signal.SIGTERM):
        db = tmp_path / f"demo-{sig.name}.sqlite"
        proc = subprocess.Popen([*CLI, "demo", "--no-dashboard", "--speed", "600",
                                 "--symbols", "3", "--db", str(db)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        head = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the service is up (slow under load)
            line = proc.stderr.readline()
            head.append(line)
            if not line or "serving /metrics" in line:
                break
        # the demo prints its web page's address, and the page's API answers for every stream
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("web page: http://127.0.0.1:"), first
        with urllib.request.urlopen(first.split()[-1] + "api/streams", timeout=30) as resp:
            assert len(json.load(resp)["streams"]) == len(VENUES) * 3 * 3
        time.sleep(4)  # the simulator runs 10 market minutes per wall second
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        out = first + out
        err = "".join(head) + err
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        streams = len(VENUES) * 3 * 3
        # the shutdown report lists each stream up to 50, then summarises per venue
        assert ("per-stream statistics" if streams <= 50 else f"summary of {streams} streams") \
            in " ".join(out.split()), out
        rows = sqlite3.connect(db).execute(
            "SELECT venue, symbol, interval, COUNT(*), COUNT(DISTINCT open_time) FROM candles "
            "GROUP BY venue, symbol, interval").fetchall()
        assert len(rows) == len(VENUES) * 3 * 3  # every venue x 3 symbols x (1m, 5m, 15m)
        assert all(total == distinct for *_, total, distinct in rows)
        assert sum(total for *_, total, _ in rows) >= 50


def test_hostile_yaml_is_one_short_line(tmp_path: Path) -> None:
    """A 5,001-digit integer (Python refuses to convert it) and a billion-laughs document: one
    problem line each, a short report, exit status 2, no traceback."""
    bomb = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    bomb += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    head = "feeds:\n  - venue: binance-usdm\n    symbols: [BTCUSDT]\n"
    for body in ("buffer_size: " + "7" * 5001 + "\n", "\n".join(bomb) + "\nbuffer_size: *a8\n"):
        cfg = write(tmp_path, head + body)
        for args in (("config", "check", str(cfg)), ("run", "-c", str(cfg))):
            res = run_cli(*args)
            assert res.returncode == 2, res.stderr
            assert "Traceback" not in res.stderr
            assert len(res.stderr) < 400, res.stderr[:400]
            assert res.stderr.count("YAML error") == 1


def test_config_check_never_prints_a_secret(tmp_path: Path) -> None:
    cfg = write(tmp_path, "feeds:\n  - venue: binance-usdm\n    symbols: [BTCUSDT]\n"
                          "sinks:\n  nats:\n    password: 987654321\n  postgres:\n"
                          "    dsn: 'postgresql://u:pa/ss-word-9@db:5432/candles'\n")
    res = run_cli("config", "check", str(cfg))
    assert res.returncode == 2
    assert "sinks.nats.password: must be a string" in res.stderr
    assert "sinks.postgres.dsn: the user name or password contains an unescaped" in res.stderr
    for secret in ("987654321", "ss-word-9", "pa/ss"):
        assert secret not in res.stderr + res.stdout


def test_env_list_from_one_value(tmp_path: Path) -> None:
    import os

    cfg = write(tmp_path, "feeds:\n  - venue: binance-usdm\n    symbols: [BTCUSDT]\n")
    env = {**os.environ, "CANDLEKEEPER__SINKS__NATS__SERVERS": "nats://127.0.0.1:4222"}
    res = subprocess.run([*CLI, "config", "check", str(cfg)], capture_output=True, text=True,
                         timeout=60, env=env, check=False)
    assert res.returncode == 0, res.stderr


def test_run_report_summary(tmp_path: Path) -> None:
    """``--report summary``: per-venue totals, then the streams that were not live."""
    cfg = write(tmp_path, "feeds:\n  - venue: binance-usdm\n    symbols: [BTCUSDT, ETHUSDT]\n"
                          "    ws_url: ws://127.0.0.1:9/market\n    rest_url: http://127.0.0.1:9\n"
                          f"sinks:\n  sqlite:\n    path: {tmp_path / 'c.sqlite'}\n"
                          "observability:\n  http: {port: 0}\n  dashboard: false\n")
    res = run_cli("run", "-c", str(cfg), "--duration", "2", "--report", "summary")
    assert res.returncode == 0, res.stderr
    assert "summary of 2 streams" in res.stdout
    assert "2 of 2 streams not live at stop" in res.stdout
    assert "per-stream statistics" not in res.stdout
