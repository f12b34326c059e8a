"""Orchestration of ``benchmarks/run.py``: start the simulator process, run every client process,
collect their :class:`Measured` results and render the table.

Nothing is measured in this process. The simulator (``bench_server.py``) and each client
(``bench_client.py``) are separate processes, so a client's CPU seconds are its own, and the
sender's cost is reported beside them but never mixed in. Subprocesses are always reaped.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, Any

import msgspec

from bench_client import ClientSpec
from bench_common import BENCH_DIR, Measured, capture_frames, machine_header
from bench_server import Command, Sent

#: issue 2's "Done when": CPU per message vs the bare loop, and messages/s on one connection
TARGET_RATIO = 1.2
TARGET_RATE = 80_000


class Options(msgspec.Struct, kw_only=True):
    messages: int = 300_000  # per saturation run
    decode_messages: int = 300_000
    repeat: int = 3  # saturation runs per client; the median (by CPU per message) is shown
    rates: tuple[int, ...] = (1_000, 10_000, 50_000)
    rate_seconds: float = 3.0  # length of each fixed-rate run
    timeout_s: float = 60.0  # per client run


#: the saturation clients: key, label, ClientSpec fields
CLIENTS: list[tuple[str, str, dict[str, Any]]] = [
    ("bare", "bare loop: picows + msgspec.json.decode -> dict", {"mode": "bare"}),
    ("bare-orjson", "bare loop: picows + orjson.loads -> dict",
     {"mode": "bare", "parser": "orjson"}),
    ("bare-struct", "bare loop: picows + msgspec -> wire Structs (Decimal)",
     {"mode": "bare", "parser": "struct"}),
    ("feed", "candlekeeper: CandleFeed -> on_update handler", {"mode": "feed"}),
    ("feed-inline", "candlekeeper: CandleFeed -> on_update(inline=True)",
     {"mode": "feed", "inline": True}),
]

#: the fixed-rate clients: label, ClientSpec fields
RATE_CLIENTS: list[tuple[str, dict[str, Any]]] = [
    ("bare loop (msgspec)", {"mode": "bare"}),
    ("candlekeeper", {"mode": "feed"}),
    ("candlekeeper inline", {"mode": "feed", "inline": True}),
]


class SaturationRow(msgspec.Struct, kw_only=True):
    key: str
    label: str
    runs: list[Measured]
    server: list[Sent]

    @property
    def median(self) -> Measured:
        ranked = sorted(self.runs, key=lambda m: m.cpu_per_100k)
        return ranked[(len(ranked) - 1) // 2]

    @property
    def server_cpu_per_100k(self) -> float:
        return statistics.median(s.cpu_s / s.sent * 100_000 for s in self.server if s.sent)


class RateRow(msgspec.Struct, kw_only=True):
    rate: int
    result: Measured
    server: Sent


class Report(msgspec.Struct, kw_only=True):
    header: list[str]
    frames: str
    options: Options
    decode: list[Measured]
    saturation: list[SaturationRow]
    rates: list[RateRow]

    def row(self, key: str) -> SaturationRow:
        return next(r for r in self.saturation if r.key == key)

    def ratio(self) -> float:
        """candlekeeper's CPU per message over the bare (msgspec) loop's, at saturation."""
        bare, feed = self.row("bare").median, self.row("feed").median
        return feed.cpu_per_100k / bare.cpu_per_100k


# -- processes ---------------------------------------------------------------------------------


class ServerProcess:
    """``bench_server.py`` as a child: one JSON command per line in, one JSON reply per line out."""

    def __init__(self) -> None:
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([sys.executable, str(BENCH_DIR / "bench_server.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log)
        hello = self._readline()
        self.ws: str = hello["ws"]
        self.stream: str = hello["stream"]

    def _readline(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator process exited: {self.stderr_tail()}")
        out: dict[str, Any] = msgspec.json.decode(line)
        return out

    def command(self, cmd: Command) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(msgspec.json.encode(cmd) + b"\n")
        self.proc.stdin.flush()

    def reply(self) -> Sent:
        return msgspec.convert(self._readline(), Sent)

    def stderr_tail(self, n: int = 2000) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-n:]

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


@contextlib.contextmanager
def server_process() -> Iterator[ServerProcess]:
    server = ServerProcess()
    try:
        yield server
    finally:
        server.close()


def run_client(spec: ClientSpec) -> Any:
    """Run one ``bench_client.py`` and return its decoded JSON output."""
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "bench_client.py"),
                           msgspec.json.encode(spec).decode()],
                          capture_output=True, timeout=spec.timeout_s + 60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"client {spec.mode} failed ({proc.returncode}): "
                           f"{proc.stderr.decode('utf-8', 'replace')[-2000:]}")
    return msgspec.json.decode(proc.stdout)


def over_socket(server: ServerProcess, cmd: Command, spec: ClientSpec) -> tuple[Measured, Sent]:
    """Arm the simulator for the next connection, run the client against it, collect both."""
    server.command(cmd)
    try:
        measured = msgspec.convert(run_client(spec), Measured)
    finally:
        sent = server.reply()  # the server always answers, after the client hung up
    if sent.error:
        raise RuntimeError(f"simulator: {sent.error}")
    return measured, sent


# -- the whole benchmark -------------------------------------------------------------------------


def run_all(opts: Options, progress: IO[str] | None = None) -> Report:
    def say(text: str) -> None:
        if progress is not None:
            print(text, file=progress, flush=True)

    _, origin = capture_frames()
    say(f"decode + dispatch, {opts.decode_messages:,} messages ...")
    decode = msgspec.convert(run_client(ClientSpec(mode="decode", expected=opts.decode_messages,
                                                   timeout_s=opts.timeout_s)), list[Measured])
    saturation = [SaturationRow(key=key, label=label, runs=[], server=[])
                  for key, label, _ in CLIENTS]
    rates: list[RateRow] = []
    with server_process() as server:
        for rep in range(opts.repeat):  # interleaved, so drift hits every client alike
            for row, (_, label, knobs) in zip(saturation, CLIENTS, strict=True):
                say(f"saturation {rep + 1}/{opts.repeat}: {label} ...")
                spec = msgspec.convert(
                    {**knobs, "expected": opts.messages, "label": label, "url": server.ws,
                     "stream": server.stream, "timeout_s": opts.timeout_s}, ClientSpec)
                m, sent = over_socket(server, Command(mode="firehose", count=opts.messages), spec)
                row.runs.append(m)
                row.server.append(sent)
        for rate in opts.rates:
            count = max(2, int(rate * opts.rate_seconds))
            for label, knobs in RATE_CLIENTS:
                say(f"fixed rate {rate:,}/s: {label} ...")
                spec = msgspec.convert(
                    {**knobs, "expected": count, "label": label, "url": server.ws,
                     "stream": server.stream, "latency": True, "timeout_s": opts.timeout_s},
                    ClientSpec)
                m, sent = over_socket(server, Command(mode="stamped", count=count, rate=rate),
                                      spec)
                rates.append(RateRow(rate=rate, result=m, server=sent))
    return Report(header=machine_header(), frames=origin, options=opts, decode=decode,
                  saturation=saturation, rates=rates)


# -- rendering ---------------------------------------------------------------------------------


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _mib(kb: int) -> str:
    return f"{kb / 1024:.0f}"


def render(r: Report) -> str:
    o = r.options
    out: list[str] = ["candlekeeper throughput / latency benchmark", *r.header, ""]
    w = 52
    out.append(f"A. decode + dispatch, no socket: {o.decode_messages:,} messages "
               f"({r.frames}, cycled)")
    out.append(f"   {'':<{w}}{'msgs/s':>11}{'CPU s/100k':>12}")
    for m in r.decode:
        extra = f"   (handler got {m.received:,}, dropped {m.dropped})" if m.dropped or \
            m.label.startswith("decode +") else ""
        out.append(f"   {m.label:<{w}}{_n(m.rate):>11}{m.cpu_per_100k:>12.3f}{extra}")
    out.append("")
    out.append(f"B. saturation: Simulator.firehose (separate process) -> client over 127.0.0.1,"
               f" {o.messages:,} kline frames per run, median of {o.repeat} runs")
    out.append(f"   {'client process':<{w}}{'msgs/s':>11}{'CPU s/100k':>12}{'x bare':>8}"
               f"{'peak RSS MiB':>14}{'received':>10}")
    base = r.row("bare").median.cpu_per_100k
    for row in r.saturation:
        m = row.median
        out.append(f"   {row.label:<{w}}{_n(m.rate):>11}{m.cpu_per_100k:>12.3f}"
                   f"{m.cpu_per_100k / base:>7.2f}x{_mib(m.maxrss_kb):>14}"
                   f"{_complete(m):>10}")
    server_cpu = statistics.median(row.server_cpu_per_100k for row in r.saturation)
    out.append(f"   (the simulator process itself used {server_cpu:.3f} CPU s/100k to send)")
    feed = r.row("feed").median
    ratio = r.ratio()
    out.append(f"   target: candlekeeper CPU/msg <= {TARGET_RATIO}x bare loop: {ratio:.2f}x "
               f"-> {'MET' if ratio <= TARGET_RATIO else 'MISSED'};  >= {TARGET_RATE:,} msgs/s"
               f" on one connection: {_n(feed.rate)} -> "
               f"{'MET' if feed.rate >= TARGET_RATE else 'MISSED'}")
    out.append("")
    out.append("C. fixed rate: frames stamped at write time (L = µs, E = ms), latency to the "
               "handler")
    out.append(f"   {'rate':>8} {'client':<20}{'msgs':>8}{'CPU s/100k':>12}"
               f"{'p50 µs':>9}{'p99 µs':>9}{'max µs':>9}{'E-based p50/p99/max ms':>26}")
    for rr in r.rates:
        m = rr.result
        lu, le = m.lat_us, m.lat_e_ms
        us = (f"{lu.p50:>9.0f}{lu.p99:>9.0f}{lu.max:>9.0f}" if lu else f"{'-':>27}")
        ems = f"{le.p50:.2f} / {le.p99:.2f} / {le.max:.2f}" if le else "-"
        out.append(f"   {_n(rr.rate) + '/s':>8} {m.label:<20}{_complete(m):>8}"
                   f"{m.cpu_per_100k:>12.3f}{us}{ems:>26}")
    return "\n".join(out)


def _complete(m: Measured) -> str:
    return f"{m.received:,}" if m.received >= m.expected or m.dropped else \
        f"{m.received:,}/{m.expected:,}!"


def parse_rates(text: str) -> tuple[int, ...]:
    return tuple(int(x.replace("_", "")) for x in text.split(",") if x.strip())


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    d = Options()
    p = argparse.ArgumentParser(description="candlekeeper throughput/latency benchmark")
    p.add_argument("--messages", type=int, default=d.messages, help="per saturation run")
    p.add_argument("--decode-messages", type=int, default=d.decode_messages)
    p.add_argument("--repeat", type=int, default=d.repeat)
    p.add_argument("--rates", type=parse_rates, default=d.rates,
                   help="fixed rates in msgs/s, comma-separated (default 1000,10000,50000)")
    p.add_argument("--rate-seconds", type=float, default=d.rate_seconds)
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    a = p.parse_args(argv)
    opts = Options(messages=a.messages, decode_messages=a.decode_messages, repeat=a.repeat,
                   rates=a.rates, rate_seconds=a.rate_seconds)
    report = run_all(opts, progress=None if a.quiet else sys.stderr)
    print(render(report))
    if a.json:
        with open(a.json, "wb") as f:
            f.write(msgspec.json.format(msgspec.json.encode(report)))
