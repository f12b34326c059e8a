"""The sending side of ``benchmarks/run.py``: the real simulator, in its own process.

    .venv/bin/python benchmarks/bench_server.py [--symbol BTCUSDT] [--interval 1m]

Starts ``candlekeeper.sim.Simulator`` (USDⓈ-M only) on 127.0.0.1, prints one JSON line
``{"ws": "ws://127.0.0.1:PORT"}`` and then serves commands, one JSON line each on stdin::

    {"mode": "firehose", "count": N}              # Simulator.firehose: as fast as the socket drains
    {"mode": "stamped", "count": N, "rate": R}    # R msgs/s, each frame stamped at write time

For each command it waits for the next new WebSocket connection subscribed to the stream, sends,
waits for the client to hang up and answers one JSON line ``{"sent", "seconds", "cpu_s"}``
(``cpu_s``: this process's CPU while sending). EOF on stdin stops the simulator and exits.

Clients connect on the *unrouted* legacy root (``ws://127.0.0.1:PORT/stream``), where the
simulator, like the real exchange since the 2026-04-23 cutover, accepts subscriptions but pushes
no regular klines: the only klines on the connection are the benchmark's, so a client can count
them exactly.

``stamped`` exists because the frame's event time ``E`` has millisecond resolution, too coarse
for loopback latencies of tens of microseconds. It uses the simulator's connection and frame
encoder (``kline_payload``, ``combined``, ``text_frame``) but writes each batch itself, with
``E`` = the write time in ms and the last trade id ``L`` = the write time in µs
(``time.time_ns() // 1000``; the same clock in every process of this machine). ``L`` is used
rather than the unused ``B`` field because ``B`` never reaches a ``Candle`` (the codec drops it);
``n`` carries the sequence number 1, 2, 3 ... as in the firehose.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Literal

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import align, prev_open
from candlekeeper.sim import Simulator
from candlekeeper.sim.server import Connection, VenueServer
from candlekeeper.sim.venues.binance.frames import combined, kline_payload, text_frame

VENUE = "binance-usdm"
_E_MARK = 917_263_544_536_271
_L_MARK = 826_354_455_627_180
_N_MARK = 735_445_366_718_099


class Command(msgspec.Struct, kw_only=True):
    mode: Literal["firehose", "stamped"]
    count: int
    rate: float | None = None
    timeout_s: float = 60.0


class Sent(msgspec.Struct, kw_only=True):
    sent: int
    seconds: float
    cpu_s: float
    error: str = ""


class StampedTemplate:
    """A combined kline frame pre-encoded by the simulator, with ``E``, ``L`` and ``n`` spliced in
    per message (``n = i + 1``; ``E``/``L`` the write time in ms/µs)."""

    def __init__(self, candle: Candle, stream: str) -> None:
        marked = Candle.of(candle.venue, candle.symbol, candle.interval, candle.open_time,
                        candle.close_time, candle.open, candle.high, candle.low, candle.close,
                        candle.volume, candle.quote_volume, _N_MARK,
                        candle.taker_buy_base_volume, candle.taker_buy_quote_volume,
                        candle.first_trade_id, _L_MARK, False)
        body = combined(stream.encode(), kline_payload(marked, _E_MARK))
        head, rest = body.split(b"%d" % _E_MARK)
        mid, rest = rest.split(b"%d" % _L_MARK)
        mid2, tail = rest.split(b"%d" % _N_MARK)
        self._parts = (head, mid, mid2, tail)

    def frames(self, start: int, count: int, now_ns: int) -> bytes:
        head, mid, mid2, tail = self._parts
        e, lt = b"%d" % (now_ns // 1_000_000), b"%d" % (now_ns // 1000)
        return b"".join(text_frame(b"".join((head, e, mid, lt, mid2, b"%d" % (i + 1), tail)))
                        for i in range(start, start + count))


async def next_connection(vs: VenueServer, seen: set[int], stream: str,
                          timeout: float) -> Connection:
    """The first connection not in ``seen`` that has subscribed ``stream``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for cid, conn in list(vs.connections.items()):
            if cid not in seen and stream in conn.session.subscriptions:
                seen.add(cid)
                return conn
        await asyncio.sleep(0.001)
    raise TimeoutError(f"no client subscribed to {stream} within {timeout:g} s")


async def stamped(vs: VenueServer, conn: Connection, stream: str, count: int,
                  rate: float) -> tuple[int, float]:
    """Send ``count`` frames at ``rate`` msgs/s, in whatever batches the loop's timer allows."""
    symbol, _, interval = stream.partition("@kline_")
    t = prev_open(align(vs.clock.time_ms(), interval), interval)
    candle = vs.market.bar(symbol.upper(), interval, t)
    if candle is None:
        raise ValueError(f"no candle for {stream}")
    tpl = StampedTemplate(candle, stream)
    transport = conn.transport
    conn.paused = True  # the regular pusher must not interleave frames
    sent, t0 = 0, time.perf_counter()
    try:
        while sent < count and not conn.closed and not transport.is_closing():
            due = min(count, int((time.perf_counter() - t0) * rate) + 1)
            if due > sent:
                transport.write(tpl.frames(sent, due - sent, time.time_ns()))
                sent = due
            await asyncio.sleep(max(0.0, t0 + sent / rate - time.perf_counter()))
    finally:
        conn.paused = False
    return sent, time.perf_counter() - t0


async def serve(symbol: str, interval: str) -> None:
    sim = Simulator(venues=(VENUE,), symbols=[symbol], intervals=(interval,), history=5,
                    ping_interval_s=3600.0)
    stream = f"{symbol.lower()}@kline_{interval}"
    loop = asyncio.get_running_loop()
    out = sys.stdout.buffer
    async with sim:
        vs = sim.server(VENUE)
        out.write(msgspec.json.encode({"ws": f"ws://127.0.0.1:{sim.port(VENUE)}",
                                       "stream": stream}) + b"\n")
        out.flush()
        seen: set[int] = set()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.buffer.readline)
            if not line.strip():
                return
            cmd = msgspec.json.decode(line, type=Command)
            try:
                conn = await next_connection(vs, seen, stream, cmd.timeout_s)
                cpu0 = time.process_time()
                if cmd.mode == "firehose":
                    res = await sim.firehose(VENUE, cmd.count, connection=conn.id,
                                             stream=stream)
                    sent, seconds = res.sent, res.seconds
                else:
                    sent, seconds = await stamped(vs, conn, stream, cmd.count,
                                                  cmd.rate or 1000.0)
                cpu = time.process_time() - cpu0
                deadline = time.monotonic() + cmd.timeout_s
                while conn.id in vs.connections and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
                reply = Sent(sent=sent, seconds=seconds, cpu_s=cpu)
            except Exception as exc:  # report and keep serving: the client side will time out
                reply = Sent(sent=0, seconds=0.0, cpu_s=0.0, error=f"{type(exc).__name__}: {exc}")
            out.write(msgspec.json.encode(reply) + b"\n")
            out.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--interval", default="1m")
    args = parser.parse_args()
    asyncio.run(serve(args.symbol, args.interval))


if __name__ == "__main__":
    main()
