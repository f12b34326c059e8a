"""/health status rules (pure) and the real HTTP server on 127.0.0.1 port 0."""

from __future__ import annotations

import json

import aiohttp
import pytest
from obskit import candle, row
from prometheus_client.parser import text_string_to_metric_families

from candlekeeper.core.events import StreamState, StreamStatus
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import CandlekeeperError
from candlekeeper.observability.health import HealthServer
from candlekeeper.observability.metrics import Metrics
from candlekeeper.observability.snapshot import (
    ConnectionRow,
    HealthSnapshot,
    HealthStatus,
    SinkRow,
)


def snap(*rows: object, **kw: object) -> HealthSnapshot:
    return HealthSnapshot(ts_ms=1, uptime_s=2.0, streams=tuple(rows), **kw)  # type: ignore[arg-type]


# -- status rules -------------------------------------------------------------------------------


def test_all_live_is_ok() -> None:
    s = snap(row("BTCUSDT"), row("ETHUSDT"),
             connections=(ConnectionRow(venue="binance-usdm", name="c0", state="connected"),),
             sinks=(SinkRow(name="sqlite", pending=10),))
    assert s.evaluate() == (HealthStatus.OK, [])


def test_some_not_live_is_degraded_with_reasons() -> None:
    s = snap(row("BTCUSDT"), row("ETHUSDT", "stalled"), row("SOLUSDT", "silent"),
             row("XRPUSDT", "stalled"))
    assert s.evaluate() == (HealthStatus.DEGRADED,
                            ["3/4 streams not live (1 silent, 2 stalled)"])


def test_connection_and_sink_problems_degrade() -> None:
    s = snap(row(), connections=(
        ConnectionRow(venue="binance-usdm", name="c1", state="reconnecting", detail="refused"),),
        sinks=(SinkRow(name="sqlite", pending=5, last_error="database is locked"),
               SinkRow(name="idle", pending=0, last_error="old error, nothing pending")))
    status, reasons = s.evaluate()
    assert status is HealthStatus.DEGRADED
    assert reasons == ["connection c1 is reconnecting: refused",
                       "sink sqlite failing (5 pending): database is locked"]


def test_nothing_live_is_down() -> None:
    assert snap().evaluate() == (HealthStatus.DOWN, ["no streams"])
    status, reasons = snap(row(state="subscribing"), row("ETHUSDT", "disconnected")).evaluate()
    assert status is HealthStatus.DOWN
    assert reasons == ["no stream is live (0/2)"]


# -- the HTTP server ----------------------------------------------------------------------------


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, resp.headers["Content-Type"], await resp.text()


@pytest.mark.parametrize(
    ("rows", "http_status", "status"),
    [
        ((row(),), 200, "ok"),
        ((row(), row("ETHUSDT", "stalled")), 200, "degraded"),
        ((row(state="silent"),), 503, "down"),
    ],
)
async def test_health_status_codes(rows: tuple[object, ...], http_status: int,
                                   status: str) -> None:
    async with HealthServer(Metrics(), lambda: snap(*rows)) as server:
        assert server.port > 0
        code, ctype, body = await get(f"{server.url}/health")
    report = json.loads(body)
    assert code == http_status
    assert ctype.startswith("application/json")
    assert report["status"] == status
    assert [s["symbol"] for s in report["streams"]] == [r.symbol for r in rows]  # type: ignore[attr-defined]


async def test_health_from_metrics_snapshot_and_metrics_endpoint() -> None:
    c = candle("64000.10", closed=True)
    metrics = Metrics(now_ms=lambda: c.event_time + 40)  # type: ignore[operator]
    key = StreamKey("binance-usdm", "BTCUSDT", "1m")
    sm = metrics.stream(key)
    sm.on_candle(c)
    sm.on_closed(c, now_ms=c.close_time + 500)
    metrics.on_stream_status(StreamStatus(key, StreamState.LIVE))
    async with HealthServer(metrics) as server:
        code, _, body = await get(f"{server.url}/health")
        mcode, mtype, text = await get(f"{server.url}/metrics")
    report = json.loads(body)
    assert code == 200
    assert report["status"] == "ok"
    [stream] = report["streams"]
    assert stream["last_close_price"] == "64000.10"
    assert stream["lag_ms"] == 40
    assert stream["messages"] == 1
    assert mcode == 200
    assert mtype.startswith("text/plain")
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for f in text_string_to_metric_families(text) for s in f.samples}
    labels = (("interval", "1m"), ("symbol", "BTCUSDT"), ("venue", "binance-usdm"))
    assert values[("candlekeeper_stream_messages_total", labels)] == 1
    assert values[("candlekeeper_stream_candles_closed_total", labels)] == 1
    live = tuple(sorted((*labels, ("state", "live"))))
    assert values[("candlekeeper_stream_state", live)] == 1


async def test_failing_provider_gives_500_is_counted_and_server_survives() -> None:
    metrics = Metrics()
    calls = 0

    def provider() -> HealthSnapshot:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("feed not ready")
        return snap(row())

    async with HealthServer(metrics, provider) as server:
        code, _, body = await get(f"{server.url}/health")
        assert code == 500
        assert json.loads(body) == {"status": "error",
                                    "reasons": ["snapshot provider failed: "
                                                "RuntimeError('feed not ready')"]}
        assert metrics.errors() == {"health_snapshot": 1}
        code, _, _ = await get(f"{server.url}/health")
        assert code == 200


async def test_start_is_idempotent_and_two_servers_coexist() -> None:
    a, b = HealthServer(Metrics()), HealthServer(Metrics())
    port = await a.start()
    try:
        assert await a.start() == port
        assert await b.start() != port
    finally:
        await a.stop()
        await b.stop()
        await a.stop()
    with pytest.raises(RuntimeError, match="not started"):
        _ = a.port


async def test_port_in_use_is_a_clear_error() -> None:
    async with HealthServer(Metrics()) as first:
        clash = HealthServer(Metrics(), port=first.port)
        with pytest.raises(CandlekeeperError, match=f"cannot serve health/metrics on "
                                                    f"127.0.0.1:{first.port}"):
            await clash.start()


async def test_unknown_path_is_404() -> None:
    async with HealthServer(Metrics()) as server:
        code, _, _ = await get(f"{server.url}/nope")
    assert code == 404
