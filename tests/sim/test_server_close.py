"""The server's close handshake is deterministic: whatever is queued on the socket, a client
receives every frame written before the close, then the close frame with the chosen code, and
after its own close reply an orderly end of stream (FIN), never a reset.

The client here is a raw socket reading slowly through a small receive buffer, and the server
side of its connection gets a small send buffer (a congested path), so that when the server
decides to close, hundreds of kilobytes are still queued in the server's own write buffer in
front of the close frame.
The simulator used to drop the socket right after asking aiohttp to close: the queued tail,
close frame included, was thrown away and the client saw an abnormal closure (1006). Under CPU
load the same race lost the close frame of an idle connection now and then (a flaky
``server_shutdown`` test).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from typing import Any

from candlekeeper.sim import Simulator
from candlekeeper.sim.faults import Fault

VENUE = "binance-usdm"
QUIET: dict[str, Any] = {"venues": [VENUE], "symbols": ["BTCUSDT"], "intervals": ["1m"],
                         "history": 5, "update_interval_s": 3600.0}
BAD_FRAMES = 4000  # ~300 KB queued in front of the close frame
CHUNK = 2048  # the slow client reads this much, then yields for a millisecond


class SlowClient:
    """A WebSocket client over a raw socket with a tiny receive buffer, reading slowly."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buf = b""

    @classmethod
    async def connect(cls, host: str, port: int, path: str) -> SlowClient:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def _fill(self, n: int) -> None:
        while len(self.buf) < n:
            chunk = await self.reader.read(CHUNK)
            if not chunk:
                raise EOFError(f"end of stream with {len(self.buf)} bytes of a frame")
            self.buf += chunk
            await asyncio.sleep(0.001)  # a slow consumer: pace the reads

    async def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next server frame (server frames are never masked)."""
        await self._fill(2)
        opcode, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        start = 2
        if n == 126:
            await self._fill(4)
            n, start = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            await self._fill(10)
            n, start = struct.unpack("!Q", self.buf[2:10])[0], 10
        await self._fill(start + n)
        payload, self.buf = self.buf[start:start + n], self.buf[start + n:]
        return opcode, payload

    def close_reply(self, code: int) -> None:
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(struct.pack("!H", code)))
        self.writer.write(bytes((0x88, 0x80 | 2)) + mask + body)


async def test_close_frame_survives_a_full_send_queue_and_ends_with_fin() -> None:
    async with Simulator(**QUIET) as sim:
        client = await SlowClient.connect(sim.host, sim.port(VENUE), "/market/stream")
        (cid,) = await sim.wait_connections(VENUE, 1)
        server_sock = sim.server(VENUE).connections[cid].transport.get_extra_info("socket")
        server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sim.inject(Fault(kind="malformed", count=BAD_FRAMES))
        sim.inject(Fault(kind="close", params={"code": 1011, "reason": "bye"}))
        texts = 0
        async with asyncio.timeout(30):
            while True:
                opcode, payload = await client.frame()
                if opcode == 0x8:
                    break
                texts += 1
            assert struct.unpack("!H", payload[:2])[0] == 1011 and payload[2:] == b"bye"
            assert texts >= BAD_FRAMES  # every frame queued before the close arrived first
            client.close_reply(1011)
            await client.writer.drain()
            rest = await client.reader.read()  # raises ConnectionResetError on a reset
        assert client.buf + rest == b""  # nothing after the close frame, then FIN
        client.writer.close()
        assert sim.stats()[VENUE].disconnects == {"fault_close": 1}
