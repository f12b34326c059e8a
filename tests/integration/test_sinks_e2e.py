"""The service writing to SQLite, PostgreSQL and NATS JetStream at once, from the simulator, while
PostgreSQL and then nats-server restart mid-run: every backend ends up holding exactly the
simulator's closed candles — nothing lost, nothing duplicated — and the healthy sinks never
stalled while one was down."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import nats.js.errors
import pytest

from candlekeeper import StreamKey
from candlekeeper.config import Config
from candlekeeper.service import Service
from candlekeeper.sim import Simulator
from candlekeeper.sinks.nats_schema import decode_candle
from candlekeeper.sinks.postgres import PostgresSink
from candlekeeper.sinks.sqlite import SQLiteSink
from servers import NatsServer, PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
INTERVALS = ("1m", "5m")


async def nats_candles(url: str) -> list[tuple[str, str, str, int, str]]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("CANDLES")
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                c = decode_candle((await js.get_msg("CANDLES", seq)).data or b"")
            except nats.js.errors.NotFoundError:
                continue
            out.append((c.venue, c.symbol, c.interval, c.open_time, c.close_str))
        return out
    finally:
        await nc.close()


def written(service: Service, name: str) -> int:
    return service.writers[name].stats.written


@pytest.mark.parametrize(("venue", "speed"), [("binance-usdm", 300.0), ("bingx-swap", 120.0)])
async def test_three_sinks_survive_database_and_bus_restarts(
        tmp_path: Path, postgres: PostgresServer, nats: NatsServer, venue: str,
        speed: float) -> None:
    db = tmp_path / "candles.sqlite"
    async with Simulator(venues=(venue,), symbols=SYMBOLS, intervals=INTERVALS, speed=speed,
                         seed=9, update_interval_s={"bingx-swap": 0.05}) as sim:
        cfg = Config.from_dict({
            "feeds": [{"venue": venue, "symbols": list(SYMBOLS), "intervals": list(INTERVALS),
                       "ws_url": sim.ws_base(venue), "rest_url": sim.rest_base(venue)}],
            "sinks": {
                "sqlite": {"path": str(db), "flush_interval_s": 0.1},
                "postgres": {"enabled": True, "dsn": postgres.dsn, "batch_size": 200,
                             "flush_interval_s": 0.1, "retry_max_s": 0.5,
                             "journal_dir": str(tmp_path / "journal-pg")},
                "nats": {"enabled": True, "servers": [nats.url], "batch_size": 200,
                         "flush_interval_s": 0.1, "retry_max_s": 0.5, "connect_timeout_s": 2,
                         "ack_timeout_s": 2, "journal_dir": str(tmp_path / "journal-nats")},
            },
            "observability": {"http": {"enabled": False}, "dashboard": False},
            "gap_fill": {"history": 10},
        })
        service = Service(cfg, clock=sim.clock)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        await asyncio.wait_for(service.ready.wait(), 30)

        async def grows(name: str, by: int, timeout: float = 30) -> None:
            start = written(service, name)
            async with asyncio.timeout(timeout):
                while written(service, name) < start + by:
                    await asyncio.sleep(0.05)

        await grows("postgres", 40)
        await asyncio.to_thread(postgres.stop)  # the database goes away ...
        sqlite_before = written(service, "sqlite")
        await asyncio.sleep(3)
        assert written(service, "sqlite") > sqlite_before  # ... the other sinks do not stall
        assert service.writers["postgres"].stats.pending > 0
        await asyncio.to_thread(postgres.start)
        await grows("postgres", 20)
        await asyncio.to_thread(nats.stop)  # then the message bus
        await asyncio.sleep(3)
        assert service.writers["nats"].stats.pending > 0
        await asyncio.to_thread(nats.start)
        await grows("nats", 20)
        async with asyncio.timeout(60):  # every warm-up done, every writer's backlog drained
            while service.warming or any(w.stats.pending for w in service.writers.values()):
                await asyncio.sleep(0.1)
        stop.set()
        report = await asyncio.wait_for(task, 60)
        truth = {(s, i): sim.closed_candles(venue, s, i) for s in SYMBOLS for i in INTERVALS}
    assert all(w.dropped == 0 for w in report.writers.values())
    lite = SQLiteSink(db)
    await lite.open()
    pg = PostgresSink(postgres.dsn)
    await pg.open()
    published = await nats_candles(nats.url)
    total = 0
    try:
        for (symbol, interval), closed in truth.items():
            key = StreamKey(venue, symbol, interval)
            rows = lite.read(key)
            assert rows
            want = [c for c in closed if rows[0].open_time <= c.open_time <= rows[-1].open_time]
            assert [c.open_time for c in rows] == [c.open_time for c in want]
            assert all(a.same_values(b, trade_ids=a.source == "ws")
                       for a, b in zip(rows, want, strict=True))
            pg_rows = await pg.read(key)
            assert [(c.open_time, c.close_str, c.volume_str) for c in pg_rows] == \
                [(c.open_time, c.close_str, c.volume_str) for c in rows]
            # the bus carries the closes the feed emitted, in open-time order; the warm-up
            # history (at least 10 candles per stream, fetched behind the first live close)
            # is in the databases only
            on_bus = [(p[3], p[4]) for p in published if p[1:3] == (symbol, interval)]
            assert on_bus == [(c.open_time, c.close_str) for c in rows
                              if c.open_time >= on_bus[0][0]]
            assert len(rows) - len(on_bus) >= 10
            total += len(on_bus)
    finally:
        await lite.close()
        await pg.close()
    assert len(published) == total  # one message per close: no duplicate on the bus
