"""The web page's HTTP side, mounted on the health server's aiohttp application.

* ``GET /`` the page; ``GET /static/...`` its script, style and the bundled charting library
  (TradingView lightweight-charts, Apache-2.0, shipped in the package: no CDN at run time);
* ``GET /api/streams`` the streams table (JSON);
* ``GET /api/candles?venue=&symbol=&interval=&n=`` the newest ``n`` closed candles from the
  ring buffer and the forming one;
* ``GET /api/events?stream=venue:symbol:interval`` Server-Sent Events: ``streams`` (the table,
  about once a second), ``closed`` and ``forming`` candles of the streams asked for, ``resync``
  when this browser fell so far behind that candles were dropped for it, and a comment line
  every ``heartbeat_s`` so proxies and the browser know the connection is alive. A browser's
  ``EventSource`` reconnects by itself (``retry:`` tells it after 2 s).

Read-only. With a token configured, ``/`` and ``/api/*`` need it (``?token=`` or
``Authorization: Bearer``); the static files hold no data and are served to anyone, so the
page's HTML never has to carry the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
from aiohttp import web
from aiohttp.typedefs import Middleware

from candlekeeper.observability.web.hub import WebHub, candle_json, parse_key

STATIC = Path(__file__).resolve().parent / "static"
#: candles ``/api/candles`` returns at most (a ring buffer holds 500 by default)
MAX_CANDLES = 5_000
DEFAULT_CANDLES = 300
#: a browser that takes no data for this long is disconnected (it reconnects if it is alive):
#: its handler must not hang on a full socket for ever, nor hold up a shutdown
WRITE_TIMEOUT_S = 10.0
_json = msgspec.json.Encoder()
_HUB = web.AppKey("candlekeeper_web_hub", WebHub)
_TICKER = web.AppKey("candlekeeper_web_ticker", asyncio.Task[None])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_web_routes(app: web.Application, hub: WebHub, token: str | None = None) -> None:
    """Mount the page and its API on ``app`` (the health server's)."""
    app[_HUB] = hub
    app.router.add_get("/", _page)
    app.router.add_get("/api/streams", _streams)
    app.router.add_get("/api/candles", _candles)
    app.router.add_get("/api/events", _events)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    if token:
        app.middlewares.append(_token_guard(token))
    app.on_startup.append(_start_ticker)
    app.on_shutdown.append(_close_streams)


def _token_guard(token: str) -> Middleware:
    expected = token.encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path == "/" or path.startswith("/api/"):
            given = request.query.get("token", "")
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                given = auth[len("Bearer "):].strip()
            if not hmac.compare_digest(given.encode(), expected):
                return web.json_response({"error": "a valid token is required (?token= or "
                                                   "Authorization: Bearer)"}, status=401)
        return await handler(request)

    return guard


async def _start_ticker(app: web.Application) -> None:
    hub = app[_HUB]
    hub.closing = False
    app[_TICKER] = asyncio.get_running_loop().create_task(hub.run_table())


async def _close_streams(app: web.Application) -> None:
    app[_HUB].close()
    ticker = app.get(_TICKER)
    if ticker is not None:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker


async def _page(_request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _streams(request: web.Request) -> web.Response:
    body = request.app[_HUB].encode_table()
    if body is None:
        return _reply({"error": "the streams table is not available (see the log)"}, 500)
    return web.Response(body=body, content_type="application/json")


def _reply(body: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_json.encode(body), content_type="application/json")


async def _candles(request: web.Request) -> web.Response:
    q = request.query
    key = parse_key(f"{q.get('venue', '')}:{q.get('symbol', '')}:{q.get('interval', '')}")
    if key is None:
        return _reply({"error": "venue, symbol and interval are required"}, 400)
    try:
        n = int(q.get("n", DEFAULT_CANDLES))
    except ValueError:
        return _reply({"error": "n must be an integer"}, 400)
    if not 0 <= n <= MAX_CANDLES:
        return _reply({"error": f"n must be within 0..{MAX_CANDLES}"}, 400)
    found = request.app[_HUB].candles(key, n)
    if found is None:
        return _reply({"error": f"no such stream: {key.venue} {key.symbol} {key.interval}"}, 404)
    closed, forming = found
    return _reply({"venue": key.venue, "symbol": key.symbol, "interval": key.interval,
                   "candles": [candle_json(c) for c in closed],
                   "forming": candle_json(forming) if forming is not None else None})


def _event(name: str, data: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


async def _events(request: web.Request) -> web.StreamResponse:
    hub = request.app[_HUB]
    keys = [k for k in (parse_key(s) for s in request.query.getall("stream", [])) if k]
    client = hub.connect(keys)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})
    try:
        await resp.prepare(request)
        table = hub.encode_table() or b"{}"  # fresh: the ticker runs only while clients are
        await resp.write(b"retry: 2000\n\n" + _event("streams", table))
        seen = hub.table_version
        loop = asyncio.get_running_loop()
        written = loop.time()
        while not hub.closing:
            # a heartbeat only after ``heartbeat_s`` without anything written
            idle = written + hub.heartbeat_s - loop.time()
            try:
                await asyncio.wait_for(client.wake.wait(), max(0.0, idle))
            except TimeoutError:
                await asyncio.wait_for(resp.write(b": heartbeat\n\n"), WRITE_TIMEOUT_S)
                written = loop.time()
                continue
            client.wake.clear()
            chunks: list[bytes] = []
            if hub.table_version != seen and hub.table_bytes:
                seen = hub.table_version
                chunks.append(_event("streams", hub.table_bytes))
            closed, forming, resync = client.take()
            if resync:  # candles were dropped for this client: it reloads the chart
                chunks.append(_event("resync", b"{}"))
            else:
                chunks.extend(_event("closed", _json.encode(candle_json(c))) for c in closed)
            chunks.extend(_event("forming", _json.encode(candle_json(c))) for c in forming)
            if chunks:
                await asyncio.wait_for(resp.write(b"".join(chunks)), WRITE_TIMEOUT_S)
                written = loop.time()
    except (ConnectionError, RuntimeError):
        pass  # the browser went away (it reconnects by itself if it wants more)
    except TimeoutError:
        hub.note_stalled()  # it stopped reading: let it go (it reconnects if it is alive)
        if request.transport is not None:
            request.transport.abort()
    finally:
        hub.disconnect(client)
    return resp
