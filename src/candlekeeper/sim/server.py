"""Sockets and tasks of one simulated venue: an aiohttp server carrying WebSocket market streams
and REST on the same port, as behind an exchange's front end.

The protocol decisions live in the venue's *personality* (``sim.personality``: which paths are
streams, control messages, framing, the pusher that times frames, the REST handlers); its
numbers in :class:`~candlekeeper.sim.options.VenueOptions`. This module only accepts connections,
moves bytes and runs the per-connection heartbeat, the same for every venue:

* every ``ping_interval_s`` the server pings: an RFC 6455 ping whose payload the pong must echo
  (an unsolicited pong, or one with another payload, does not count), or, for a venue with an
  in-band heartbeat, its ping message, where any answer answers every ping sent before it. A
  connection whose oldest unanswered ping is ``pong_timeout_s`` old is closed;
* more than ``control_rate`` incoming frames (text, ping, pong) in a rolling second close the
  connection (a venue that documents no such limit has ``control_rate`` = inf);
* a connection lives ``connection_lifetime_s`` of *venue* time (None: forever), then is closed.

Every close is a full, deterministic close handshake (``sim.connection``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Any, cast

import msgspec
from aiohttp import WSMsgType, web

from candlekeeper.core.clock import ScaledClock
from candlekeeper.errors import ConfigError
from candlekeeper.sim.archive import ArchiveStats, archive_server_for
from candlekeeper.sim.connection import (
    CLOSE_TIMEOUT_S,
    Connection,
    HandshakeLimiter,
    RateLimiter,
)
from candlekeeper.sim.firehose import FirehoseResult, firehose_params, run_firehose
from candlekeeper.sim.market import Market
from candlekeeper.sim.options import VenueOptions
from candlekeeper.sim.personality import Personality, WsPath
from candlekeeper.sim.rest import RestStats

__all__ = ["Connection", "FirehoseResult", "VenueServer", "VenueStats"]

log = logging.getLogger(__name__)


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
    #: handshakes refused for exceeding the venue's connection-rate limit
    handshakes_refused: int = 0
    #: incoming messages over the venue's per-IP message limit, ignored (no reply)
    messages_ignored: int = 0
    disconnects: dict[str, int] = msgspec.field(default_factory=dict)
    faults: dict[str, int] = msgspec.field(default_factory=dict)  # effects applied, by kind
    rest: RestStats = msgspec.field(default_factory=RestStats)
    #: the venue's public kline archive (``sim.archive``); None when it publishes none
    archive: ArchiveStats | None = None


class VenueServer:
    def __init__(self, personality: Personality, market: Market, clock: ScaledClock,
                 opts: VenueOptions, *, host: str, port: int, seed: int) -> None:
        self.personality, self.market, self.clock, self.opts = personality, market, clock, opts
        self.spec = personality.spec
        self.venue = self.spec.id
        self.host, self.port = host, port
        self.pusher = personality.make_pusher(market, clock, opts, seed)
        self.rest = personality.make_rest(market, clock, opts)
        #: the venue's archive files on the same port, under the real archive's paths
        self.archive = archive_server_for(self.venue, market, clock)
        self.connections: dict[int, Connection] = {}
        self.stats = VenueStats(rest=self.rest.stats,
                                archive=None if self.archive is None else self.archive.stats)
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connected = asyncio.Condition()
        self.firehose_frames = 0
        #: a ``refuse`` fault: WebSocket handshakes get this HTTP status until this moment
        self._refuse: tuple[int, float] | None = None
        self._handshakes = HandshakeLimiter(
            tuple((w.seconds, w.limit) for w in opts.connect_limits))
        #: every incoming message of an IP, across its connections (``ip_message_limits``)
        self._ip_messages = HandshakeLimiter(
            tuple((w.seconds, w.limit) for w in opts.ip_message_limits))

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._dispatch)
        # market data of a venue whose REST is POSTed JSON (the REST app knows its paths)
        app.router.add_route("POST", "/{tail:.*}", self._dispatch)
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
            refused = self._refuse
            if refused is not None and time.monotonic() < refused[1]:
                # what a blocking proxy or a geo-fence answers (451: unavailable for legal
                # reasons, 403: forbidden); the client must not retry itself to death
                return web.Response(status=refused[0], text="refused")
            if not self._handshakes.allow(request.remote or "", time.monotonic()):
                self.stats.handshakes_refused += 1
                return web.Response(status=429, text="Too Many Requests")
            info = self.personality.parse_ws_path(request.path, request.query, self.opts)
            if info is None:
                return web.json_response({"code": -1, "msg": "Not found."}, status=404)
            return await self._websocket(request, info)
        if self.rest.handles(request.path):
            return await self.rest.handle(request)
        if self.archive is not None and self.archive.handles(request.path):
            return await self.archive.handle(request)
        return web.json_response({"code": -1, "msg": "Not found."}, status=404)

    def refuse(self, status: int, seconds: float) -> None:
        """Refuse every WebSocket handshake with HTTP ``status`` for ``seconds`` (wall)."""
        self._refuse = (status, time.monotonic() + seconds)

    def valid_stream(self, name: str) -> bool:
        parsed = self.personality.parse_stream(name)
        return parsed is not None and self.market.has_stream(*parsed)

    # -- WebSocket --------------------------------------------------------------------------
    async def _websocket(self, request: web.Request, path: WsPath) -> web.StreamResponse:
        persona = self.personality
        session = persona.new_session(self.valid_stream, path=path,
                                      max_streams=self.opts.max_streams,
                                      now_ms=self.clock.time_ms)
        opened = session.open_with(path.streams)
        if isinstance(opened, str):
            return web.Response(status=400, body=persona.handshake_error(opened),
                                content_type="application/json")
        fire = firehose_params(request) if persona.firehose else None
        if isinstance(fire, str):
            return web.Response(status=400, body=persona.handshake_error(fire),
                                content_type="application/json")
        ws = web.WebSocketResponse(autoping=False, compress=False, timeout=CLOSE_TIMEOUT_S)
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        conn = Connection(ws, transport, session, path.pushes_klines,
                          self.opts.slow_consumer_bytes,
                          self.stats.disconnects, persona.framing)
        self.connections[conn.id] = conn
        self.stats.connections_total += 1
        heartbeat = self._spawn(self._heartbeat(conn))
        reader = asyncio.get_running_loop().create_task(self._read(conn))
        try:
            self._subscribe(conn, opened)
            async with self._connected:
                self._connected.notify_all()
            if fire is not None:
                self._spawn(self.firehose(conn, fire[0], rate=fire[1]))
            await self._serve(conn, reader)
        finally:
            conn.closed = True
            reader.cancel()
            heartbeat.cancel()
            self.pusher.drop(conn)
            del self.connections[conn.id]
        return ws

    async def _serve(self, conn: Connection, reader: asyncio.Task[None]) -> None:
        """Until the client goes away or the server decides to close: then the close
        handshake, which needs the reader stopped (it reads the client's close frame)."""
        wanted = asyncio.get_running_loop().create_task(conn.close_requested.wait())
        try:
            await asyncio.wait((reader, wanted), return_when=asyncio.FIRST_COMPLETED)
        finally:
            wanted.cancel()
        if reader.done() and not reader.cancelled() and reader.exception() is not None:
            exc = reader.exception()
            if not isinstance(exc, ConnectionError):
                log.error("%s: connection %d reader failed: %r", self.venue, conn.id, exc)
        if conn.close_requested.is_set():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await conn.close()

    def _subscribe(self, conn: Connection, streams: tuple[str, ...]) -> None:
        if conn.pushes_klines:
            for s in streams:
                self.pusher.subscribe(conn, s)

    async def _read(self, conn: Connection) -> None:
        limited = self.opts.control_rate != math.inf
        limiter = RateLimiter(self.opts.control_rate)
        persona, framing = self.personality, conn.framing
        ws = conn.ws
        per_ip = self._ip_messages
        peer = conn.transport.get_extra_info("peername")
        ip = str(peer[0]) if peer else ""
        async for msg in ws:
            if limited and not limiter.allow(time.monotonic()):
                conn.write_now(framing.frame(persona.rate_limit_error()))
                conn.request_close("rate_limit")
                return
            if (per_ip.windows and msg.type in (WSMsgType.TEXT, WSMsgType.BINARY)
                    and not per_ip.allow(ip, time.monotonic())):
                self.stats.messages_ignored += 1  # over the IP's limit: no answer at all
                continue
            if msg.type is WSMsgType.TEXT:
                text = cast(str, msg.data)
                if persona.in_band_ping and persona.is_pong(text):
                    conn.outstanding.clear()  # an in-band answer answers every ping before it
                    continue
                self.stats.control_messages += 1
                ctl = conn.session.handle(text)
                if ctl.is_error:
                    self.stats.error_frames += 1
                if ctl.drop:
                    conn.abort("dropped_by_venue")
                    return
                if ctl.reply:  # a venue may answer nothing (a request it ignores)
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
        interval = opts.ping_interval_s if opts.ping_interval_s is not None else math.inf
        lifetime_end = math.inf if opts.connection_lifetime_s is None else (
            self.clock.wall_deadline(
                self.clock.time_ms() + int(opts.connection_lifetime_s * 1000)))
        next_ping = time.monotonic() + interval
        rule = self.personality.behaviour.idle_close
        idle_s = opts.idle_close_s if opts.idle_close_s is not None else math.inf
        while not conn.closed:
            now = time.monotonic()
            if now >= lifetime_end:
                conn.request_close("lifetime")
                return
            if now - conn.last_sent >= idle_s:
                # the venue's rule for a connection it has had nothing to send on (a quiet
                # subscription whose client never pings)
                conn.request_close("idle", code=rule.code if rule else 1000,
                                   message=rule.reason if rule else "idle")
                return
            oldest = min(conn.outstanding.values(), default=None)
            if oldest is not None and now - oldest >= opts.pong_timeout_s:
                conn.request_close("pong_timeout")
                return
            if now >= next_ping and conn.shaper is not None and conn.shaper.pings_off(now):
                next_ping = now + interval  # a drop_pings / stall fault: skip it
                continue
            if now >= next_ping:
                payload = b"%d" % self.clock.time_ms()
                conn.outstanding[payload] = now
                self.stats.pings_sent += 1
                if self.personality.in_band_ping:
                    conn.write(conn.framing.frame(self.personality.ping_payload()))
                else:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await conn.ws.ping(payload)
                next_ping = now + interval
                continue
            wake = min(next_ping, lifetime_end, conn.last_sent + idle_s,
                       (oldest + opts.pong_timeout_s) if oldest is not None else next_ping)
            await asyncio.sleep(max(0.0, wake - now) if wake != math.inf else 3600.0)

    # -- saturation / fixed-rate mode (``sim.firehose``) ------------------------------------
    async def firehose(self, conn: Connection, count: int, *, rate: float | None = None,
                       stream: str | None = None, batch: int = 256) -> FirehoseResult:
        """Send ``count`` kline frames to ``conn`` as fast as the socket drains (``rate`` None)
        or at ``rate`` messages per second; regular pushes to ``conn`` pause meanwhile."""
        if not self.personality.firehose:
            raise ConfigError(f"{self.venue} has no firehose mode")
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
