"""Sockets and tasks of one simulated venue: an aiohttp server carrying WebSocket market streams
and REST on the same port (protocols.md §A, §B, §C).

The protocol decisions live in the venue's *personality* (``venues.personalities``: control
messages, framing, the pusher that times frames, the REST API); this module only accepts
connections, moves bytes and runs the per-connection heartbeat:

* server pings every ``ping_interval_s`` (usdm 180 s, spot 20 s) with a payload the pong must
  echo; a connection with a ping unanswered for ``pong_timeout_s`` is closed (§A.5, §B.3 — an
  unsolicited pong does not count). BingX (§C.2) sends a gzip'd ``Ping`` message every 5 s
  instead and expects the text ``Pong``; no timeout is documented, so the simulator closes a
  connection whose oldest unanswered ``Ping`` is ``pong_timeout_s`` old (15 s: three missed
  pings), and any ``Pong`` answers every ``Ping`` sent before it;
* more than ``control_rate`` incoming frames (text, ping, pong) in a rolling second closes the
  connection;
* a connection lives ``connection_lifetime_s`` of *venue* time (24 h), then is closed.

Kline frames and control replies are written directly to the socket as complete frames, so they
stay in order and a push never waits on a slow client; a client whose unread backlog exceeds
``slow_consumer_bytes`` is disconnected, as the exchange does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import struct
import time
from typing import Any, cast

import msgspec
from aiohttp import WSMsgType, web

from candlekeeper.core.clock import ScaledClock
from candlekeeper.errors import ConfigError
from candlekeeper.sim.firehose import FirehoseResult, firehose_params, run_firehose
from candlekeeper.sim.market import Market
from candlekeeper.sim.rest import RestStats
from candlekeeper.sim.shaper import Shaper
from candlekeeper.sim.venues.binance import RateLimiter
from candlekeeper.sim.venues.common import Framing, Personality, Session
from candlekeeper.venues.contract import VenueSpec

__all__ = ["DEFAULT_OPTIONS", "Connection", "FirehoseResult", "VenueOptions", "VenueServer",
           "VenueStats"]

log = logging.getLogger(__name__)
_ids = itertools.count(1)


class VenueOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Behaviour knobs of one venue; defaults are the real exchange's (see ``DEFAULT_OPTIONS``)."""

    update_interval_s: float  # forming-candle cadence, wall time
    ping_interval_s: float
    pong_timeout_s: float
    control_rate: float  # incoming messages per second
    rest_weight_limit: int  # per wall-clock window
    max_streams: int = 1024
    connection_lifetime_s: float = 24 * 3600.0  # venue time
    close_delay_s: tuple[float, float] = (0.2, 2.0)  # x:true after the close, wall time
    legacy_routes_push_klines: bool = False
    rest_window_s: float = 60.0
    ban_s: float = 120.0
    slow_consumer_bytes: int = 64 * 1024 * 1024
    #: BingX: the last push of a candle is from up to one cadence before its close (§C.3)
    stale_last_push: bool = True


DEFAULT_OPTIONS: dict[str, VenueOptions] = {
    "binance-usdm": VenueOptions(update_interval_s=0.25, ping_interval_s=180.0,
                                 pong_timeout_s=600.0, control_rate=10, rest_weight_limit=2400),
    "binance-spot": VenueOptions(update_interval_s=2.0, ping_interval_s=20.0,
                                 pong_timeout_s=60.0, control_rate=5, rest_weight_limit=6000),
    # no incoming-message limit is documented for BingX (§C.2): none is enforced
    "bingx-swap": VenueOptions(update_interval_s=1.0, ping_interval_s=5.0, pong_timeout_s=15.0,
                               control_rate=float("inf"), rest_weight_limit=1000,
                               max_streams=200, ban_s=300.0),
}


class VenueStats(msgspec.Struct):
    connections_open: int = 0
    connections_total: int = 0
    subscriptions: int = 0
    kline_frames_sent: int = 0
    closed_frames_sent: int = 0
    control_messages: int = 0
    error_frames: int = 0
    pings_sent: int = 0
    internal_errors: int = 0
    disconnects: dict[str, int] = msgspec.field(default_factory=dict)
    faults: dict[str, int] = msgspec.field(default_factory=dict)  # effects applied, by kind
    rest: RestStats = msgspec.field(default_factory=RestStats)


class Connection:
    """One accepted WebSocket, as the pusher and the firehose see it."""

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport,
                 session: Session, pushes_klines: bool, slow_limit: int,
                 disconnects: dict[str, int], framing: Framing) -> None:
        self.id = next(_ids)
        self.ws, self.transport, self.session = ws, transport, session
        self.framing = framing
        self.pushes_klines = pushes_klines
        self.slow_limit = slow_limit
        self.closed = False
        self.paused = False  # True while a firehose owns the socket
        self.close_reason: str | None = None
        #: frame faults active on this connection; None (the fast path) when there are none
        self.shaper: Shaper | None = None
        self.outstanding: dict[bytes, float] = {}  # ping payload -> monotonic time sent
        self._closing: asyncio.Task[None] | None = None
        self._disconnects = disconnects  # the venue's counter, by reason

    @property
    def combined(self) -> bool:
        return self.session.combined

    def write(self, data: bytes) -> None:
        if self.paused:
            return
        self.write_now(data)

    def write_now(self, data: bytes) -> None:
        if self.closed or self.transport.is_closing():
            return
        self.transport.write(data)
        if self.transport.get_write_buffer_size() > self.slow_limit:
            self.request_close("slow_consumer")

    def request_close(self, reason: str, *, code: int = 1008, message: str | None = None) -> None:
        """Close with a close frame (``code``, ``message`` or ``reason``), then drop the socket;
        ``reason`` is what ``VenueStats.disconnects`` counts."""
        if self.close_reason is None:
            self.close_reason = reason
            self._disconnects[reason] = self._disconnects.get(reason, 0) + 1
            text = (message if message is not None else reason).encode()
            self._closing = asyncio.get_running_loop().create_task(self._close(code, text))

    async def _close(self, code: int, message: bytes) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code=code, message=message), 2.0)
        self.closed = True
        self.transport.abort()

    def abort(self, reason: str) -> None:
        """Drop the connection with a TCP reset and no close frame (an abrupt network break)."""
        if self.close_reason is not None:
            return
        self.close_reason = reason
        self._disconnects[reason] = self._disconnects.get(reason, 0) + 1
        self.closed = True
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # SO_LINGER 0: close() sends RST, not FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class VenueServer:
    def __init__(self, spec: VenueSpec, market: Market, clock: ScaledClock, opts: VenueOptions,
                 *, host: str, port: int, seed: int,
                 personality: Personality | None = None) -> None:
        self.spec, self.market, self.clock, self.opts = spec, market, clock, opts
        self.venue = spec.id
        self.host, self.port = host, port
        if personality is None:
            from candlekeeper.sim.venues.personalities import personality_for
            personality = personality_for(spec.id)
        self.personality = personality
        self.pusher = personality.make_pusher(market, clock, opts, seed)
        self.rest = personality.make_rest(spec, market, clock, opts)
        self.connections: dict[int, Connection] = {}
        self.stats = VenueStats(rest=self.rest.stats)
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connected = asyncio.Condition()
        self.firehose_frames = 0

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = cast(Any, site)._server
        self.port = server.sockets[0].getsockname()[1]
        self._spawn(self.pusher.run())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self.connections.values()):
            conn.closed = True
            conn.transport.abort()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- HTTP -------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            info = self.personality.parse_ws_path(request.path, request.query,
                                                  self.opts.legacy_routes_push_klines)
            if info is None:
                return web.json_response({"code": -1, "msg": "Not found."}, status=404)
            return await self._websocket(request, info.combined, info.pushes_klines,
                                         info.streams)
        if self.rest.handles(request.path):
            return await self.rest.handle(request)
        return web.json_response({"code": -1, "msg": "Not found."}, status=404)

    def valid_stream(self, name: str) -> bool:
        parsed = self.personality.parse_stream(name)
        return parsed is not None and self.market.has_stream(*parsed)

    # -- WebSocket --------------------------------------------------------------------------
    async def _websocket(self, request: web.Request, combined: bool, pushes: bool,
                         streams: tuple[str, ...]) -> web.StreamResponse:
        persona = self.personality
        session = persona.new_session(self.valid_stream, combined=combined,
                                      max_streams=self.opts.max_streams,
                                      now_ms=self.clock.time_ms)
        opened = session.open_with(streams)
        if isinstance(opened, str):
            # [!] inference: the exchange's behaviour for a bad stream in the URL is not
            # documented; refusing the handshake with a clear message is the useful choice.
            return web.json_response({"code": 2, "msg": f"Invalid request: {opened}"},
                                     status=400)
        fire = firehose_params(request) if persona.firehose else None
        if isinstance(fire, str):
            return web.json_response({"code": -1100, "msg": fire}, status=400)
        ws = web.WebSocketResponse(autoping=False, compress=False, timeout=2.0)
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        conn = Connection(ws, transport, session, pushes, self.opts.slow_consumer_bytes,
                          self.stats.disconnects, persona.framing)
        self.connections[conn.id] = conn
        self.stats.connections_total += 1
        heartbeat = self._spawn(self._heartbeat(conn))
        try:
            self._subscribe(conn, opened)
            async with self._connected:
                self._connected.notify_all()
            if fire is not None:
                self._spawn(self.firehose(conn, fire[0], rate=fire[1]))
            await self._read(conn)
        finally:
            conn.closed = True
            heartbeat.cancel()
            self.pusher.drop(conn)
            del self.connections[conn.id]
        return ws

    def _subscribe(self, conn: Connection, streams: tuple[str, ...]) -> None:
        if conn.pushes_klines:
            for s in streams:
                self.pusher.subscribe(conn, s)

    async def _read(self, conn: Connection) -> None:
        limited = self.opts.control_rate != float("inf")
        limiter = RateLimiter(self.opts.control_rate)
        persona, framing = self.personality, conn.framing
        ws = conn.ws
        async for msg in ws:
            if limited and not limiter.allow(time.monotonic()):
                conn.write_now(framing.frame(persona.rate_limit_error()))
                conn.request_close("rate_limit")
                return
            if msg.type is WSMsgType.TEXT:
                text = cast(str, msg.data)
                if persona.in_band_ping and persona.is_pong(text):
                    conn.outstanding.clear()  # a Pong answers every Ping sent before it
                    continue
                self.stats.control_messages += 1
                ctl = conn.session.handle(text)
                if ctl.is_error:
                    self.stats.error_frames += 1
                conn.write_now(framing.frame(ctl.reply))
                self._subscribe(conn, ctl.added)
                for s in ctl.removed:
                    self.pusher.unsubscribe(conn, s)
            elif msg.type is WSMsgType.PING:
                await ws.pong(bytes(msg.data))
            elif msg.type is WSMsgType.PONG:
                payload = bytes(msg.data)
                if payload in conn.outstanding:  # echoes one of our pings: all older are done
                    sent = conn.outstanding[payload]
                    for key in [k for k, t in conn.outstanding.items() if t <= sent]:
                        del conn.outstanding[key]
            elif msg.type is WSMsgType.BINARY:
                self.stats.control_messages += 1
            else:  # ERROR; CLOSE ends the iteration by itself
                return

    async def _heartbeat(self, conn: Connection) -> None:
        opts = self.opts
        lifetime_end = self.clock.wall_deadline(
            self.clock.time_ms() + int(opts.connection_lifetime_s * 1000))
        next_ping = time.monotonic() + opts.ping_interval_s
        while not conn.closed:
            now = time.monotonic()
            if now >= lifetime_end:
                conn.request_close("lifetime")
                return
            oldest = min(conn.outstanding.values(), default=None)
            if oldest is not None and now - oldest >= opts.pong_timeout_s:
                conn.request_close("pong_timeout")
                return
            if now >= next_ping and conn.shaper is not None and conn.shaper.pings_off(now):
                next_ping = now + opts.ping_interval_s  # a drop_pings / stall fault: skip it
                continue
            if now >= next_ping:
                payload = b"%d" % self.clock.time_ms()
                conn.outstanding[payload] = now
                self.stats.pings_sent += 1
                if self.personality.in_band_ping:  # BingX: a gzip'd "Ping" message
                    conn.write(conn.framing.frame(self.personality.ping_payload()))
                else:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await conn.ws.ping(payload)
                next_ping = now + opts.ping_interval_s
                continue
            wake = min(next_ping, lifetime_end,
                       (oldest + opts.pong_timeout_s) if oldest is not None else next_ping)
            await asyncio.sleep(max(0.0, wake - now))

    # -- saturation / fixed-rate mode (Binance; ``sim.firehose``) ---------------------------
    async def firehose(self, conn: Connection, count: int, *, rate: float | None = None,
                       stream: str | None = None, batch: int = 256) -> FirehoseResult:
        """Send ``count`` kline frames to ``conn`` as fast as the socket drains (``rate`` None)
        or at ``rate`` messages per second; regular pushes to ``conn`` pause meanwhile."""
        if not self.personality.firehose:
            raise ConfigError(f"{self.venue} has no firehose mode (Binance venues only)")
        return await run_firehose(self, conn, count, rate=rate, stream=stream, batch=batch)

    async def wait_connections(self, count: int, timeout: float) -> list[Connection]:
        async with self._connected:
            await asyncio.wait_for(self._connected.wait_for(
                lambda: len(self.connections) >= count), timeout)
        return list(self.connections.values())

    def snapshot(self) -> VenueStats:
        s = self.stats
        return msgspec.structs.replace(
            s, connections_open=len(self.connections),
            subscriptions=sum(len(c.session.subscriptions) for c in self.connections.values()),
            kline_frames_sent=self.firehose_frames + self.pusher.frames_sent,
            closed_frames_sent=self.pusher.closes_sent, disconnects=dict(s.disconnects),
            internal_errors=self.pusher.errors, faults=dict(s.faults),
            rest=msgspec.structs.replace(s.rest))
