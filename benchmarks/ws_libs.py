"""Pick the WebSocket client library by measurement: picows vs websockets (vs aiohttp).

Run: ``.venv/bin/python benchmarks/ws_libs.py [--messages N] [--repeat R]``

A minimal WebSocket server runs in a *separate process* (so only the client's CPU is measured)
on 127.0.0.1. It performs the HTTP upgrade by hand and then writes one real Binance USDⓈ-M
kline frame (from ``../shared/protocol-samples/``), pre-framed into a large buffer, as fast as
the socket accepts it, followed by a CLOSE frame. The server therefore costs almost no CPU and
the client is the bottleneck. For each client library we report:

- msgs/s: messages received per wall second (best of ``--repeat`` runs);
- CPU s / 100k: the client process's CPU time (user+sys) per 100,000 messages;
- the same two figures with ``BinanceStreamCodec.decode`` applied to every message, i.e. the
  library plus our Sans-I/O decode;
- a last line for the real transport (``ConnectionPool`` on picows: session hot path, decode,
  slot lookup, listener call), which should stay close to "picows recv+decode".
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path

_SAMPLE = (Path(__file__).resolve().parents[1] / ".." / "shared" / "protocol-samples"
           / "binance_usdm_ws_kline_capture_2021-07-22.jsonl")
_FALLBACK = (
    b'{"stream":"sushiusdt@kline_1m","data":{"e":"kline","E":1626992760203,"s":"SUSHIUSDT",'
    b'"k":{"t":1626992700000,"T":1626992759999,"s":"SUSHIUSDT","i":"1m","f":126902874,'
    b'"L":126902986,"o":"7.6080","c":"7.6170","h":"7.6180","l":"7.6070","v":"3005","n":113,'
    b'"x":true,"q":"22875.8590","V":"1900","Q":"14464.6960","B":"0"}}}'
)
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def sample_frame() -> bytes:
    """The first real kline frame of the capture (or a verbatim copy if the file is absent)."""
    if _SAMPLE.exists():
        return _SAMPLE.read_bytes().splitlines()[0].strip()
    return _FALLBACK


def server_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """An unmasked (server-to-client) single-fragment WebSocket frame."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


# -- server (child process) ------------------------------------------------------------------


def serve(messages: int) -> None:
    """Accept one client, upgrade, blast ``messages`` frames, close. Prints the port first."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    print(lsock.getsockname()[1], flush=True)
    conn, _ = lsock.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(4096)
        if not chunk:
            return
        request += chunk
    key = b""
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    frame = server_frame(sample_frame())
    per_chunk = 4096
    chunk = frame * per_chunk
    full, rest = divmod(messages, per_chunk)
    for _ in range(full):
        conn.sendall(chunk)
    conn.sendall(frame * rest)
    conn.sendall(server_frame((1000).to_bytes(2, "big"), opcode=0x8))
    # Wait for the client's CLOSE, then close TCP first, as a server should (RFC 6455 §7.1.1);
    # waiting for the client's EOF instead would stall clients that wait for ours.
    conn.settimeout(10)
    with contextlib.suppress(OSError):
        conn.recv(65536)
    conn.close()


def start_server(messages: int) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(messages)],
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"ws://127.0.0.1:{port}/market/stream"


# -- clients -----------------------------------------------------------------------------------

Handler = Callable[[bytes | str], object]


async def client_picows(url: str, handle: Handler) -> int:
    import picows

    count = 0

    class Listener(picows.WSListener):
        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            nonlocal count
            if frame.msg_type is picows.WSMsgType.TEXT:
                handle(frame.get_payload_as_bytes())
                count += 1
            elif frame.msg_type is picows.WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    transport, _ = await picows.ws_connect(Listener, url, enable_auto_pong=True)
    await transport.wait_disconnected()
    return count


async def client_websockets(url: str, handle: Handler) -> int:
    from websockets.asyncio.client import connect

    count = 0
    async with connect(url, compression=None, max_size=None) as ws:
        async for msg in ws:
            handle(msg)
            count += 1
    return count


async def client_aiohttp(url: str, handle: Handler) -> int:
    import aiohttp

    count = 0
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                handle(msg.data)
                count += 1
    return count


async def client_session(url: str, handle: Handler) -> int:
    """The real transport: ``ConnectionPool`` -> session -> codec -> a counting listener."""
    from candlekeeper.core.candle import Candle
    from candlekeeper.core.events import ConnectionStatus, StreamStatus
    from candlekeeper.core.stream_key import StreamKey
    from candlekeeper.transport import ConnectionPool
    from candlekeeper.venues.binance.endpoints import BINANCE_USDM
    from candlekeeper.venues.binance.stream import BinanceStreamCodec

    expected = int(url.rsplit("#", 1)[1])
    done = asyncio.Event()
    logging.getLogger("candlekeeper").setLevel(logging.ERROR)  # the server's final CLOSE

    class Counter:
        count = 0

        def stream_sink(self, key: StreamKey) -> Callable[[Candle], bool]:
            return self.on_candle

        def on_candle(self, candle: Candle) -> bool:
            self.count += 1
            if self.count == expected:
                done.set()
            return False

        def on_stream_status(self, status: StreamStatus) -> None:
            pass

        def on_connection_status(self, status: ConnectionStatus) -> None:
            pass

        async def relieve(self) -> None:
            pass

    counter = Counter()
    key = StreamKey(BINANCE_USDM.id, "CTKUSDT", "1m")  # the sample frame's stream
    pool = ConnectionPool(BinanceStreamCodec(BINANCE_USDM), [key], counter,
                          ws_base=url.split("#")[0].removesuffix("/stream"))
    task = asyncio.create_task(pool.run())
    await done.wait()
    await pool.stop()
    await task
    return counter.count


CLIENTS: dict[str, Callable[[str, Handler], Coroutine[None, None, int]]] = {
    "picows": client_picows,
    "websockets": client_websockets,
    "aiohttp": client_aiohttp,
}


def run_once(name: str, messages: int, decode: bool) -> tuple[float, float]:
    """One measured run; returns (msgs/s, CPU seconds per 100k msgs) of this process."""
    handle: Handler
    if name == "session":
        proc, url = start_server(messages)
        try:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            got = asyncio.run(client_session(f"{url}#{messages}", lambda _: None))
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        finally:
            proc.wait(timeout=30)
        return got / wall, cpu / got * 100_000
    if decode:
        from candlekeeper.venues.binance.endpoints import BINANCE_USDM
        from candlekeeper.venues.binance.stream import BinanceStreamCodec

        handle = BinanceStreamCodec(BINANCE_USDM).decode
    else:
        def handle(_: bytes | str) -> object:
            return None
    proc, url = start_server(messages)
    try:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        got = asyncio.run(CLIENTS[name](url, handle))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        proc.wait(timeout=30)
    if got != messages:
        raise RuntimeError(f"{name}: received {got} of {messages} messages")
    return got / wall, cpu / got * 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    frame = sample_frame()
    print(f"{args.messages:,} real Binance kline frames ({len(frame)} B) per run, "
          f"best of {args.repeat}, server in a separate process, Python "
          f"{sys.version.split()[0]}")
    print(f"{'library':<12}{'recv msgs/s':>14}{'CPU s/100k':>12}"
          f"{'recv+decode msgs/s':>22}{'CPU s/100k':>12}")
    for name in CLIENTS:
        row = []
        for decode in (False, True):
            runs = [run_once(name, args.messages, decode) for _ in range(args.repeat)]
            rate = max(r[0] for r in runs)
            cpu = min(r[1] for r in runs)
            row.append((rate, cpu))
        (r0, c0), (r1, c1) = row
        print(f"{name:<12}{r0:>14,.0f}{c0:>12.3f}{r1:>22,.0f}{c1:>12.3f}")
    runs = [run_once("session", args.messages, True) for _ in range(args.repeat)]
    rate, cpu = max(r[0] for r in runs), min(r[1] for r in runs)
    print(f"{'transport':<12}{'':>14}{'':>12}{rate:>22,.0f}{cpu:>12.3f}"
          "   (ConnectionPool on picows: session hot path + decode + listener call)")


if __name__ == "__main__":
    main()
