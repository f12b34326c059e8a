"""HTTP ``/metrics`` (Prometheus text format) and ``/health`` (JSON) for the service.

* ``GET /metrics`` renders the :class:`Metrics` private registry.
* ``GET /health`` asks the snapshot provider for a :class:`HealthSnapshot` and answers with its
  report: ``status`` (``ok``/``degraded``/``down``), the reasons, and every stream, connection
  and sink row. HTTP 200 for ok and degraded (the process is doing useful work: do not restart
  it), 503 for down (nothing is being ingested). It is therefore usable both as a liveness probe
  with ``degraded`` tolerated and as a readiness check.
* A provider that raises gives a 500 with the error in the body, is counted
  (``candlekeeper_errors_total{kind="health_snapshot"}``) and logged at a limited rate; the
  server keeps serving.

The server binds ``host:port`` (port 0 picks a free port; :meth:`start` returns the bound one).
With a :class:`~candlekeeper.observability.web.WebHub` it also serves the web page and its API
(``observability/web/routes.py``) on the same port.
"""

from __future__ import annotations

import asyncio
import logging
import os

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from candlekeeper.core.ratelog import RateLimitedLog
from candlekeeper.errors import CandlekeeperError
from candlekeeper.observability.metrics import Metrics
from candlekeeper.observability.snapshot import HealthStatus, SnapshotProvider
from candlekeeper.observability.web import WebHub, add_web_routes

log = logging.getLogger(__name__)
_limited = RateLimitedLog(log)
_json = msgspec.json.Encoder()


class HealthServer:
    """``await start()`` -> bound port; ``await stop()``. Both idempotent."""

    def __init__(self, metrics: Metrics, snapshot: SnapshotProvider | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, page: WebHub | None = None,
                 token: str | None = None) -> None:
        self._metrics = metrics
        self.page = page
        self._token = token
        self._snapshot: SnapshotProvider = snapshot or metrics.snapshot
        self._host = host
        self._port = port
        self._bound: int | None = None
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        if self._bound is None:
            raise RuntimeError("HealthServer is not started")
        return self._bound

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    async def start(self) -> int:
        if self._runner is not None:
            return self.port
        app = web.Application()
        app.router.add_get("/metrics", self._handle_metrics)
        app.router.add_get("/health", self._handle_health)
        if self.page is not None:
            add_web_routes(app, self.page, self._token)
        # a request still running at stop (a web page's event stream) gets 5 s, not 60
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            # the system's own words ("Address already in use"): asyncio's strerror repeats
            # the address in a tuple
            reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
            raise CandlekeeperError(
                f"cannot serve health/metrics on {self._host}:{self._port}: {reason}"
            ) from exc
        self._runner = runner
        # ``addresses`` holds the real sockname, so port 0 resolves to the port the OS picked
        self._bound = int(runner.addresses[0][1]) if runner.addresses else self._port
        log.info("health and metrics on http://%s:%d (/health, /metrics%s)", self._host,
                 self._bound, ", the web page on /" if self.page is not None else "")
        return self._bound

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._bound = None

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle_metrics(self, _request: web.Request) -> web.Response:
        # Rendering is pure Python (~4 us per sample: ~70 ms for 1,000 streams). In a thread
        # the GIL is handed back to the event loop every few ms, so a scrape does not stall
        # the read loop for its whole duration. The collector only reads plain attributes.
        try:
            body = await asyncio.to_thread(self._metrics.exposition)
        except Exception as exc:  # e.g. a dict resized by the loop mid-iteration: retry later
            self._metrics.count_error("metrics_exposition")
            _limited.error("metrics_exposition", "rendering /metrics failed: %r", exc)
            return web.Response(status=500, text=f"metrics unavailable: {exc!r}\n")
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _handle_health(self, _request: web.Request) -> web.Response:
        try:
            snapshot = self._snapshot()
            report = snapshot.to_report()
        except Exception as exc:
            self._metrics.count_error("health_snapshot")
            _limited.error("health_snapshot", "health snapshot provider failed: %r", exc)
            body = {"status": "error", "reasons": [f"snapshot provider failed: {exc!r}"]}
            return web.Response(status=500, body=_json.encode(body),
                                content_type="application/json")
        status = 503 if report["status"] == HealthStatus.DOWN else 200
        return web.Response(status=status, body=_json.encode(report),
                            content_type="application/json")

