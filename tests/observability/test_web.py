"""The web page's HTTP side against a real service fed by the simulator: the API's answers, the
token, the event stream (and a browser that drops it), and that no secret reaches a browser."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from obskit import candle
from webkit import free_port, running_service, wait_for, web_config

from candlekeeper.config import Config, ConfigValidationError
from candlekeeper.core.events import CandleUpdate
from candlekeeper.feed import CandleFeed
from candlekeeper.observability.snapshot import HealthSnapshot
from candlekeeper.observability.web import WebHub, routes
from candlekeeper.observability.web.hub import WebClient
from candlekeeper.sim import Simulator

VENUES = ("binance-usdm", "bybit-linear")
SYMBOLS = ("BTCUSDT", "ETHUSDT")
INTERVALS = ("1m", "2m", "5m")  # 2m: derived from 1m (no venue here has it)
SIM_INTERVALS = ("1m", "5m")  # what the simulated venues serve
SPEED = 300.0


async def _get(session: aiohttp.ClientSession, url: str, **kw: object) -> tuple[int, str]:
    async with session.get(url, **kw) as resp:  # type: ignore[arg-type]
        return resp.status, await resp.text()


async def _read_events(resp: aiohttp.ClientResponse, names: set[str], timeout: float
                       ) -> dict[str, list[str]]:
    """Read SSE frames until every event name in ``names`` was seen."""
    seen: dict[str, list[str]] = {}
    buf = b""
    async with asyncio.timeout(timeout):
        while not names <= set(seen):
            buf += await resp.content.readany()
            while b"\n\n" in buf:
                frame, buf = buf.split(b"\n\n", 1)
                lines = frame.decode().split("\n")
                if lines[0].startswith(":"):
                    seen.setdefault(":", []).append(lines[0])
                    continue
                event = next((ln[7:] for ln in lines if ln.startswith("event: ")), "")
                data = next((ln[6:] for ln in lines if ln.startswith("data: ")), "")
                if event:
                    seen.setdefault(event, []).append(data)
    return seen


@pytest.mark.integration
async def test_api_serves_the_table_candles_and_live_events(tmp_path: Path) -> None:
    async with Simulator(venues=VENUES, symbols=SYMBOLS, intervals=SIM_INTERVALS,
                         speed=SPEED) as sim:
        cfg = web_config(sim, tmp_path / "c.sqlite", VENUES, SYMBOLS, INTERVALS, free_port())
        async with running_service(cfg, sim) as service, aiohttp.ClientSession() as http:
            base = service.page_url
            assert base is not None and service.web is not None
            await wait_for(lambda: all(r.last_close_time_ms for r in service.snapshot().streams),
                           30, "a close on every stream")
            status, page = await _get(http, base)
            assert status == 200 and "lightweight-charts.standalone.production.js" in page
            status, lib = await _get(http, base + "static/lightweight-charts.standalone"
                                     ".production.js")
            assert status == 200 and "TradingView Lightweight Charts" in lib[:300]
            async with http.get(base + "api/streams") as resp:
                table = await resp.json()
            assert {(r["venue"], r["symbol"], r["interval"]) for r in table["streams"]} == {
                (v, s, i) for v in VENUES for s in SYMBOLS for i in INTERVALS}
            # by venue, symbol, then interval width (1m, 2m, 5m; 15m would come after them)
            assert [(r["venue"], r["symbol"], r["interval"]) for r in table["streams"]] == [
                (v, s, i) for v in sorted(VENUES) for s in sorted(SYMBOLS) for i in INTERVALS]
            row = table["streams"][0]
            assert set(row) >= {"state", "last_close", "lag_ms", "reconnects", "backfilled",
                                "clock_offset_ms"}
            assert isinstance(row["last_close"], str) and Decimal(row["last_close"]) > 0
            async with http.get(base + "api/candles", params={
                    "venue": "binance-usdm", "symbol": "BTCUSDT", "interval": "1m",
                    "n": "50"}) as resp:
                body = await resp.json()
            bars = body["candles"]
            assert 0 < len(bars) <= 50 and all(b["x"] for b in bars)
            assert [b["t"] for b in bars] == sorted({b["t"] for b in bars})
            assert all(isinstance(b["c"], str) for b in bars)  # exact decimal text
            # the ring buffer itself is what the API answered
            feed = next(f for f in service.feeds if f.venue == "binance-usdm")
            ring = feed.latest("BTCUSDT", "1m", len(bars))
            assert [b["t"] for b in bars][-len(ring):][:1] <= [c.open_time for c in ring][:1]
            async with http.get(base + "api/candles", params={
                    "venue": "bybit-linear", "symbol": "ETHUSDT", "interval": "2m"}) as resp:
                derived = await resp.json()
            assert derived["candles"] and all(b["interval"] == "2m" for b in derived["candles"])
            async with http.get(base + "api/candles", params={
                    "venue": "binance-usdm", "symbol": "NOPE", "interval": "1m"}) as resp:
                assert resp.status == 404
            async with http.get(base + "api/candles", params={
                    "venue": "binance-usdm", "symbol": "BTCUSDT", "interval": "1m",
                    "n": "x"}) as resp:
                assert resp.status == 400
            # the event stream: the table, closed and forming candles of the stream asked for
            async with http.get(base + "api/events",
                                params={"stream": "binance-usdm:BTCUSDT:1m"}) as resp:
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                events = await _read_events(resp, {"streams", "closed", "forming"}, 20)
            assert all('"symbol":"BTCUSDT"' in d and '"interval":"1m"' in d
                       for d in events["closed"] + events["forming"])
            assert all('"x":true' in d for d in events["closed"])
            await wait_for(lambda: not service.web.clients, 10, "the client to be forgotten")


@pytest.mark.integration
async def test_a_browser_that_drops_the_stream_is_forgotten_and_others_go_on(
        tmp_path: Path) -> None:
    async with Simulator(venues=VENUES[:1], symbols=SYMBOLS, intervals=INTERVALS[:1],
                         speed=SPEED) as sim:
        cfg = web_config(sim, tmp_path / "c.sqlite", VENUES[:1], SYMBOLS, INTERVALS[:1],
                         free_port())
        async with running_service(cfg, sim) as service:
            hub = service.web
            assert hub is not None and service.page_url is not None
            hub.heartbeat_s = 0.3
            url = service.page_url + "api/events"
            stream = {"stream": "binance-usdm:ETHUSDT:1m"}
            for _ in range(5):  # cut mid-stream, again and again
                async with aiohttp.ClientSession() as http:
                    resp = await http.get(url, params=stream)
                    await _read_events(resp, {"streams"}, 10)
                    resp.connection.transport.abort()  # type: ignore[union-attr]
            await wait_for(lambda: not hub.clients, 10, "the dropped clients to be forgotten")
            async with aiohttp.ClientSession() as http:
                async with http.get(url, params=stream) as resp:
                    events = await _read_events(resp, {"closed"}, 20)
                assert all('"symbol":"ETHUSDT"' in d for d in events["closed"])
                # nothing to say for a while (no stream followed, the table slowed down): a
                # heartbeat comment keeps the connection known to be alive
                hub.table_interval_s = 3600.0
                hub.tick()
                async with http.get(url) as resp:
                    events = await _read_events(resp, {":"}, 20)
                assert events[":"][0] == ": heartbeat"
            hub.table_interval_s = 1.0
            stats = [s for f in service.feeds for s in f.stats()]
            assert all(s.closed for s in stats)


@pytest.mark.integration
async def test_a_browser_that_stops_reading_is_let_go(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "WRITE_TIMEOUT_S", 1.0)
    async with Simulator(venues=VENUES[:1], symbols=SYMBOLS, intervals=SIM_INTERVALS,
                         speed=SPEED) as sim:
        cfg = web_config(sim, tmp_path / "c.sqlite", VENUES[:1], SYMBOLS, INTERVALS,
                         free_port())
        async with running_service(cfg, sim) as service, aiohttp.ClientSession() as http:
            hub = service.web
            assert hub is not None and service.page_url is not None
            hub.table_interval_s = 0.001  # a flood of table updates the browser never reads
            async with http.get(service.page_url + "api/events") as resp:
                assert resp.status == 200
                await wait_for(lambda: hub.stalled == 1, 60, "the stalled browser to be cut")
            await wait_for(lambda: not hub.clients, 10, "the client to be forgotten")
            assert service.metrics.errors().get("web_client_stalled") == 1
            closed = sum(s.closed for f in service.feeds for s in f.stats())
            await wait_for(lambda: sum(s.closed for f in service.feeds for s in f.stats())
                           > closed, 20, "the feed to go on")


async def test_a_slow_browser_loses_its_oldest_candles_never_the_feed() -> None:
    errors: list[str] = []
    hub = WebHub(lambda: None, count_error=errors.append)  # type: ignore[arg-type,return-value]
    feed = CandleFeed("binance-usdm", ["BTCUSDT"], ["1m"])
    hub.attach(feed)
    updates = feed.bus.subscribers(CandleUpdate)
    assert updates == []  # nobody watches: nothing per live frame
    client = hub.connect([feed.keys[0]])
    assert len(updates) == 1
    other = hub.connect([])  # follows nothing: gets no candle
    t0 = 1_700_000_040_000
    for i in range(client.backlog + 10):
        hub._on_closed(candle(open_time=t0 + i * 60_000, closed=True))
    hub._on_update(candle(open_time=t0 + (client.backlog + 10) * 60_000))
    assert hub.dropped == 10 and client.dropped == 10 and errors == ["web_client_dropped"] * 10
    closed, forming, resync = client.take()
    assert resync and len(closed) == client.backlog
    assert closed[0].open_time == t0 + 10 * 60_000  # the oldest went
    assert [c.open_time for c in forming] == [t0 + (client.backlog + 10) * 60_000]
    assert other.take() == ([], [], False)
    hub.disconnect(client)
    assert updates == [] and hub.forming == {}  # the last follower left: unsubscribed
    hub._on_closed(candle(open_time=t0, closed=True))
    assert client.take() == ([], [], False)


def test_forming_updates_coalesce_per_stream() -> None:
    client = WebClient([])
    for price in ("1", "2", "3"):
        client.push_forming(candle(price))
    _closed, forming, _resync = client.take()
    assert [c.close_str for c in forming] == ["3"]


@pytest.mark.integration
async def test_token_guards_the_page_and_api_and_no_secret_reaches_them(tmp_path: Path) -> None:
    token = "tok-7f3a9c"
    secrets = ("pg-pass-91b2", "nats-pass-55c1", token)
    async with Simulator(venues=VENUES[:1], symbols=SYMBOLS[:1], intervals=INTERVALS[:1],
                         speed=SPEED) as sim:
        cfg = web_config(sim, tmp_path / "c.sqlite", VENUES[:1], SYMBOLS[:1], INTERVALS[:1],
                         free_port(), token=token)
        cfg["sinks"]["postgres"] = {
            "dsn": f"postgresql://ck:{secrets[0]}@127.0.0.1:{free_port()}/market",
            "journal_dir": str(tmp_path / "pg-journal")}
        cfg["sinks"]["nats"] = {"servers": [f"nats://127.0.0.1:{free_port()}"],
                                "user": "ck", "password": secrets[1],
                                "journal_dir": str(tmp_path / "nats-journal")}
        async with running_service(cfg, sim) as service, aiohttp.ClientSession() as http:
            base = service.page_url
            assert base is not None
            await wait_for(lambda: all(r.last_close_time_ms for r in service.snapshot().streams),
                           30, "a close on every stream")
            q = "venue=binance-usdm&symbol=BTCUSDT&interval=1m"
            for path in ("", "api/streams", f"api/candles?{q}", "api/events"):
                status, body = await _get(http, base + path)
                assert status == 401 and "token" in body and token not in body
                status, _ = await _get(http, base + path,
                                       headers={"Authorization": "Bearer wrong"})
                assert status == 401
            bodies: list[str] = []
            for path in ("", "api/streams", f"api/candles?{q}"):
                sep = "&" if "?" in path else "?"
                status, body = await _get(http, f"{base}{path}{sep}token={token}")
                assert status == 200
                bodies.append(body)
                status, body = await _get(http, base + path,
                                          headers={"Authorization": f"Bearer {token}"})
                assert status == 200
            async with http.get(base + "api/events",
                                headers={"Authorization": f"Bearer {token}"},
                                params={"stream": "binance-usdm:BTCUSDT:1m"}) as resp:
                events = await _read_events(resp, {"streams", "closed"}, 20)
            bodies += [d for v in events.values() for d in v]
            # the static files hold no data: served without the token, like /metrics
            for path in ("static/app.js", "static/app.css"):
                status, body = await _get(http, base + path)
                assert status == 200
                bodies.append(body)
            assert (await _get(http, base + "metrics"))[0] == 200
            assert any("BTCUSDT" in b for b in bodies)
            for secret in secrets:
                assert not any(secret in b for b in bodies), secret


def test_a_page_beyond_loopback_needs_a_token() -> None:
    feeds = [{"venue": "binance-usdm", "symbols": ["BTCUSDT"]}]
    with pytest.raises(ConfigValidationError) as err:
        Config.from_dict({"feeds": feeds,
                          "observability": {"http": {"host": "0.0.0.0", "web": True}}})
    lines = [p for p in err.value.problems if "token" in p]
    assert len(lines) == 1 and "0.0.0.0" in lines[0] and "\n" not in lines[0]
    for ok in ({"host": "0.0.0.0", "token": "t0k"}, {"host": "0.0.0.0", "web": False},
               {"host": "127.0.0.1"}, {"host": "::1"}, {"host": "localhost"}):
        http = Config.from_dict({"feeds": feeds, "observability": {"http": ok}}
                                ).observability.http
        assert http.host == ok["host"]
    # not asked for: beyond loopback without a token the page is simply off (a service that
    # exposes /metrics to a scraper keeps starting); at loopback or with a token it is on
    def page(http: dict[str, object]) -> bool:
        return Config.from_dict({"feeds": feeds, "observability": {"http": http}}
                                ).observability.http.serves_page
    assert not page({"host": "0.0.0.0"}) and not page({"host": "0.0.0.0", "web": False})
    assert page({"host": "0.0.0.0", "token": "t0k"}) and page({"host": "127.0.0.1"})
    cfg = Config.from_dict({"feeds": feeds,
                            "observability": {"http": {"host": "0.0.0.0", "token": "t0k"}}})
    assert "t0k" not in repr(cfg) and "t0k" not in str(cfg.model_dump())


async def test_a_failing_snapshot_is_one_counted_error_not_a_dead_page() -> None:
    from candlekeeper.observability.health import HealthServer
    from candlekeeper.observability.metrics import Metrics

    def broken() -> HealthSnapshot:
        raise RuntimeError("snapshot exploded")

    metrics = Metrics()
    hub = WebHub(broken, count_error=metrics.count_error, heartbeat_s=0.2)
    async with HealthServer(metrics, broken, page=hub) as server, \
            aiohttp.ClientSession() as http:
        status, body = await _get(http, server.url + "/api/streams")
        assert status == 500 and "not available" in body and "Traceback" not in body
        async with http.get(server.url + "/api/events") as resp:
            events = await _read_events(resp, {"streams", ":"}, 10)
        assert events["streams"] == ["{}"]  # the page skips it and waits for the next tick
        status, _ = await _get(http, server.url + "/")
        assert status == 200
    assert metrics.errors()["web_table"] >= 2
