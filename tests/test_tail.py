"""``candlekeeper tail`` against a real nats-server: replay, new-only, --json, malformed messages
and a clean Ctrl-C (the command runs as a child process, like a user would run it)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Sequence

import nats

from candlekeeper.core.candle import Candle
from candlekeeper.sinks.nats import NatsSink
from candlekeeper.tail import format_line
from servers import NatsServer, free_port

MINUTE = 60_000
T0 = 1_626_992_700_000


def candle(i: int, symbol: str = "BTCUSDT", close: str = "7.6170") -> Candle:
    t = T0 + i * MINUTE
    return Candle.of("binance-usdm", symbol, "1m", t, t + MINUTE - 1, "7.6080", "7.6180",
                     "7.6070", close, "3005", "22875.8590", 113, closed=True)


async def publish(url: str, candles: Sequence[Candle]) -> None:
    sink = NatsSink(url)
    await sink.open()
    await sink.write(candles)
    await sink.close()


def tail_cmd(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "candlekeeper.tail", "--server", url, *args]


def test_format_line_keeps_exact_text() -> None:
    assert format_line(candle(0, close="0.00000010")) == (
        "2021-07-22 22:25:00Z binance-usdm BTCUSDT 1m O 7.6080 H 7.6180 L 7.6070 "
        "C 0.00000010 V 3005 [ws]")


async def test_from_start_prints_the_subjects_candles(nats: NatsServer) -> None:
    await publish(nats.url, [candle(0), candle(0, "ETHUSDT"), candle(1, close="7.6200"),
                             candle(2, close="7.6190")])
    proc = await asyncio.create_subprocess_exec(
        *tail_cmd(nats.url, "--subject", "candles.binance-usdm.BTCUSDT.*", "--from-start",
                  "--count", "3"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines == [format_line(candle(0)), format_line(candle(1, close="7.6200")),
                     format_line(candle(2, close="7.6190"))]
    assert " C 7.6200 " in lines[1]
    assert "3 candle(s) shown" in err.decode()


async def test_json_and_idle_timeout(nats: NatsServer) -> None:
    await publish(nats.url, [candle(0), candle(1)])
    proc = await asyncio.create_subprocess_exec(
        *tail_cmd(nats.url, "--from-start", "--json", "--idle-timeout", "0.5"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    docs = [json.loads(line) for line in out.decode().splitlines()]
    assert [(d["v"], d["symbol"], d["open_time"], d["close"]) for d in docs] == [
        (1, "BTCUSDT", T0, "7.6170"), (1, "BTCUSDT", T0 + MINUTE, "7.6170")]


async def test_new_only_skips_history_reports_malformed_and_stops_on_ctrl_c(
        nats: NatsServer) -> None:
    await publish(nats.url, [candle(0), candle(1)])  # history that --new must not show
    proc = await asyncio.create_subprocess_exec(
        *tail_cmd(nats.url, "--subject", "candles.>", "--new"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None and proc.stdout is not None
    ready = await asyncio.wait_for(proc.stderr.readline(), 30)
    assert ready.decode().startswith("watching candles.> on stream CANDLES at nats://127.0.0.1")
    nc = await _connect(nats.url)
    await nc.jetstream().publish("candles.x.Y.1m", b"not a candle")
    await nc.close()
    await publish(nats.url, [candle(2, close="7.7000")])
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.decode().rstrip("\n") == format_line(candle(2, close="7.7000"))
    proc.send_signal(signal.SIGINT)
    rest, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert rest == b""
    text = err.decode()
    assert "skipped a message on candles.x.Y.1m: malformed candle message" in text
    assert "1 candle(s) shown, 1 malformed message(s) skipped" in text
    assert "Traceback" not in text


async def test_ordered_consumer_resumes_after_a_server_restart(nats: NatsServer) -> None:
    await publish(nats.url, [candle(0), candle(1)])
    proc = await asyncio.create_subprocess_exec(
        *tail_cmd(nats.url, "--from-start", "--count", "4"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    first = [await asyncio.wait_for(proc.stdout.readline(), 30) for _ in range(2)]
    await asyncio.to_thread(nats.restart)
    await publish(nats.url, [candle(2), candle(3)])
    rest, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = [b.decode().rstrip("\n") for b in first] + rest.decode().splitlines()
    assert lines == [format_line(candle(i)) for i in range(4)]  # no gap, no repeat


async def test_unknown_subject_and_no_server_are_clear_errors(nats: NatsServer) -> None:
    await publish(nats.url, [candle(0)])
    proc = await asyncio.create_subprocess_exec(
        *tail_cmd(nats.url, "--subject", "elsewhere.>"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert "no JetStream stream captures 'elsewhere.>'" in err.decode()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "candlekeeper.tail", "--server",
        f"nats://u:hidden@127.0.0.1:{free_port()}", "--connect-timeout", "0.5",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert "no NATS server answered at nats://***@127.0.0.1:" in err.decode()
    assert "hidden" not in err.decode() and "Traceback" not in err.decode()


def test_registered_in_main_cli() -> None:
    from candlekeeper.cli import main
    from candlekeeper.tail import tail_command

    assert "tail" in main.commands
    assert main.commands["tail"] is tail_command


async def _connect(url: str) -> nats.aio.client.Client:
    return await nats.connect(url)
