"""A bare BingX WebSocket client for the simulator's tests: every server frame must be a gzip'd
binary frame; :class:`BxClient` checks that on every frame it reads and hands back the JSON (or
the text ``Ping``) with the time it arrived."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import zlib
from collections.abc import Callable
from typing import Any

import aiohttp

from candlekeeper.sim import Simulator

BINGX = "bingx-swap"
TOPIC = "BTC-USDT@kline_1m"


class Frame:
    __slots__ = ("at", "obj", "raw")

    def __init__(self, raw: bytes, at: float) -> None:
        self.raw, self.at = raw, at
        text = raw.decode()
        self.obj: Any = text if text == "Ping" else json.loads(text)

    @property
    def is_ping(self) -> bool:
        return isinstance(self.obj, str) and self.obj == "Ping"

    @property
    def is_push(self) -> bool:
        return isinstance(self.obj, dict) and "data" in self.obj and "s" in self.obj

    def __repr__(self) -> str:
        return f"Frame({self.raw[:120]!r})"


class BxClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, pong: bool = True) -> None:
        self.ws, self.pong = ws, pong
        self.gzip_frames = 0

    async def send(self, obj: Any) -> None:
        await self.ws.send_str(obj if isinstance(obj, str) else json.dumps(obj))

    async def sub(self, topic: str = TOPIC, rid: str = "1", req: str = "sub") -> None:
        await self.send({"id": rid, "reqType": req, "dataType": topic})

    async def recv(self, timeout: float = 5.0) -> Frame:
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
            raise ConnectionError(f"closed: {msg.type} {msg.data!r} {msg.extra!r}")
        assert msg.type is aiohttp.WSMsgType.BINARY, f"not a binary frame: {msg}"
        data = bytes(msg.data)
        assert data[:2] == b"\x1f\x8b", f"not gzip: {data[:20]!r}"
        self.gzip_frames += 1
        frame = Frame(zlib.decompress(data, 31), time.monotonic())
        if frame.is_ping and self.pong:
            with contextlib.suppress(ConnectionError):  # closing: the CLOSE is read next
                await self.ws.send_str("Pong")
        return frame

    async def until(self, pred: Callable[[list[Frame]], bool], timeout: float = 5.0,
                    keep: Callable[[Frame], bool] = lambda f: True) -> list[Frame]:
        """Frames (those ``keep`` accepts) until ``pred(frames)`` is true."""
        out: list[Frame] = []
        async with asyncio.timeout(timeout):
            while not pred(out):
                f = await self.recv(timeout)
                if keep(f):
                    out.append(f)
        return out

    async def reply(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame that is neither a Ping nor a push (an ack or an error)."""
        while True:
            f = await self.recv(timeout)
            if not f.is_ping and not f.is_push:
                assert isinstance(f.obj, dict)
                return f.obj


async def connect(sim: Simulator, http: aiohttp.ClientSession, pong: bool = True) -> BxClient:
    ws = await http.ws_connect(sim.ws_base(BINGX), autoping=True)
    return BxClient(ws, pong)


def pushes(frames: list[Frame]) -> list[dict[str, Any]]:
    return [f.obj for f in frames if f.is_push]
