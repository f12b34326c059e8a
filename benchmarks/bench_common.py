"""Shared pieces of the throughput/latency benchmark (``benchmarks/run.py``).

Every measurement runs in its own client process (``bench_client.py``) and reports one
:class:`Measured` as JSON on stdout, so the orchestrator never measures itself, each row's peak
RSS is its own, and the simulator (``bench_server.py``, another process) never shares a CPU
clock with the client.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
from collections.abc import Sequence
from decimal import Decimal
from importlib import metadata
from pathlib import Path

import msgspec

#: ``<repo>/../shared/protocol-samples`` (real captured frames; never copied into the repo)
SAMPLES = Path(__file__).resolve().parents[1] / ".." / "shared" / "protocol-samples"
CAPTURE = SAMPLES / "binance_usdm_ws_kline_capture_2021-07-22.jsonl"
BENCH_DIR = Path(__file__).resolve().parent


class Latency(msgspec.Struct, frozen=True):
    """Percentiles of one latency sample, in the unit named by the field that holds it."""

    n: int
    p50: float
    p99: float
    max: float


class Measured(msgspec.Struct, kw_only=True):
    """What one client process measured. ``measured`` messages fall inside the timed window
    (``wall_s``/``cpu_s``); the first ``received - measured`` ones are warm-up."""

    label: str
    expected: int
    received: int
    measured: int
    wall_s: float
    cpu_s: float
    maxrss_kb: int
    dropped: int = 0  # events the on_update subscriber's queue dropped (DROP_OLDEST)
    out_of_order: int = 0  # frames whose sequence number was not the previous one + 1
    lat_us: Latency | None = None  # send time (µs, carried in the frame) -> handler
    lat_e_ms: Latency | None = None  # frame's event time E (ms) -> handler, wall clock

    @property
    def rate(self) -> float:
        """Messages per wall second inside the timed window."""
        return self.measured / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_per_100k(self) -> float:
        """CPU seconds (user + system) of the client process per 100,000 messages."""
        return self.cpu_s / self.measured * 100_000 if self.measured else float("nan")


def capture_frames() -> tuple[list[bytes], str]:
    """Kline frames for the no-socket rows, and where they came from.

    The real capture has 67 combined ``@kline_1m`` frames of 4 symbols (4 of them ``x:true``).
    Without it, realistic frames are synthesised with the client's own wire Structs so the rows
    still run (and say so in the header).
    """
    if CAPTURE.exists():
        lines = [ln.strip() for ln in CAPTURE.read_bytes().splitlines()]
        frames = [ln for ln in lines if b'"e":"kline"' in ln]
        if frames:
            return frames, f"{len(frames)} real frames from {CAPTURE.name}"
    return synthetic_frames(), "64 synthetic frames (protocol samples not found)"


def synthetic_frames(n: int = 64) -> list[bytes]:
    from candlekeeper.venues.binance import schemas

    enc = msgspec.json.Encoder()
    out = []
    for i in range(n):
        sym = ("CTKUSDT", "AKROUSDT", "SUSHIUSDT", "KEEPUSDT")[i % 4]
        k = schemas.Kline(
            t=1_626_992_700_000, T=1_626_992_759_999, s=sym, i="1m", f=23_961_275,
            L=23_961_275 + i, o=Decimal("1.01000"), c=Decimal("1.01100"), h=Decimal("1.01100"),
            l=Decimal("1.01000"), v=Decimal("3917"), n=48 + i, x=i % 16 == 15,
            q=Decimal("3957.89900"), V=Decimal("1729"), Q=Decimal("1748.01900"))
        event = schemas.KlineEvent("kline", 1_626_992_741_424 + i, sym, k)
        out.append(enc.encode(schemas.CombinedKline(f"{sym.lower()}@kline_1m", event)))
    return out


def symbols_of(frames: Sequence[bytes]) -> list[str]:
    """The symbols the frames carry (so a feed can subscribe exactly those)."""
    seen: dict[str, None] = {}
    for f in frames:
        obj = msgspec.json.decode(f)
        data = obj.get("data", obj)
        seen[str(data["s"])] = None
    return list(seen)


def latency(values: Sequence[float]) -> Latency | None:
    """p50 / p99 / max by rank (nearest-rank, no interpolation)."""
    if not values:
        return None
    s = sorted(values)
    n = len(s)

    def rank(q: float) -> float:
        return s[min(n - 1, max(0, int(q * n + 0.999999) - 1))]

    return Latency(n, rank(0.50), rank(0.99), s[-1])


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_header() -> list[str]:
    """Lines describing where and with what the numbers were measured."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 0
    libs = ", ".join(f"{d} {_version(d)}" for d in
                     ("candlekeeper", "picows", "msgspec", "orjson", "aiohttp"))
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"date: {now}; machine: {_cpu_model()}, {os.cpu_count()} cores ({usable} usable), "
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()} ({sys.implementation.name}, default asyncio "
        f"event loop); {libs}",
    ]
