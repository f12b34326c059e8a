"""The composition root: config -> feeds -> sinks -> observability, and the lifecycle around it.

The CLI only builds a :class:`Config` and calls :meth:`Service.run`; everything with a lifetime
(sockets, threads, HTTP server, dashboard) is started and stopped here in one place, in order:
sinks first (so no closed candle has nowhere to go), feeds last; on shutdown feeds first (no new
candles), then the writers drain within ``shutdown.drain_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec
from pydantic import SecretStr

from candlekeeper.backfill.http import RestClient
from candlekeeper.config import Config, FeedConfig, NatsSinkConfig, PostgresSinkConfig
from candlekeeper.core.backoff import backoff_delays
from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import Clock, ScaledClock, SystemClock
from candlekeeper.core.events import CandleCorrected
from candlekeeper.core.shard import Shard
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import CandlekeeperError, RestError
from candlekeeper.feed import CandleFeed, FeedPlumbing, StreamStats
from candlekeeper.feed_derived import DerivedStream, StreamPlan, plan_streams
from candlekeeper.observability.health import HealthServer
from candlekeeper.observability.metrics import Metrics
from candlekeeper.observability.snapshot import HealthSnapshot
from candlekeeper.observability.web import WebHub
from candlekeeper.sinks import BatchingWriter, Sink, WriterStats
from candlekeeper.sinks.nats import NatsSink
from candlekeeper.sinks.postgres import PostgresSink
from candlekeeper.sinks.sqlite import SQLiteSink
from candlekeeper.venues.registry import history_codec

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ServiceCounters:
    unknown_symbols: int = 0
    symbol_lookup_failures: int = 0
    started_monotonic: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class ServiceReport:
    """What a finished run did (printed by the CLI on shutdown)."""

    streams: list[StreamStats]
    writers: dict[str, WriterStats]
    uptime_s: float
    unknown_symbols: list[str]
    #: each stream's state just before shutdown (afterwards every stream is disconnected)
    final_states: dict[StreamKey, str] = field(default_factory=dict)
    #: the derived streams (built from a finer base: ``docs/derived-intervals.md``); apart
    #: from ``streams`` because a derived stream is no ``StreamStats`` (no subscription, no
    #: sequence of its own: it takes its base's state)
    derived: list[DerivedStream] = field(default_factory=list)


def make_clock(config: Config) -> Clock:
    """The real clock, or the accelerated venue time the config asks for."""
    c = config.clock
    if c.speed == 1.0 and c.start_ms is None and c.monotonic_origin is None:
        return SystemClock()
    return ScaledClock(c.start_ms, c.speed, monotonic_origin=c.monotonic_origin)


class Service:
    """Runs every feed of a config into its sinks until asked to stop."""

    def __init__(self, config: Config, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or make_clock(config)
        self.feeds: list[CandleFeed] = []
        self.writers: dict[str, BatchingWriter] = {}
        self.sqlite: SQLiteSink | None = None
        self.postgres: PostgresSink | None = None
        self.counters = ServiceCounters()
        self.unknown_symbols: list[str] = []
        self.ready = asyncio.Event()
        self.metrics = Metrics(now_ms=self.clock.time_ms)
        self.shard = Shard.parse(config.shard) if config.shard else None
        self.health: HealthServer | None = None
        #: the web page's live fan-out (``observability.http.web``); fed by every feed
        self.web: WebHub | None = None
        self._final_states: dict[StreamKey, str] = {}

    # -- streams --------------------------------------------------------------------------
    async def _listing(self, feed: FeedConfig, stop: asyncio.Event) -> set[str] | None:
        """The venue's trading symbols from exchangeInfo; None when they cannot be had and the
        feed can do without them (no ``symbols: all``), or when asked to stop meanwhile."""
        codec = history_codec(feed.venue)
        async with RestClient(codec, feed.rest_base, timeout_s=10.0, options=self.config.rest,
                              count_error=self.metrics.count_error) as rest:
            delays = backoff_delays(1.0, 2.0, 60.0)  # the one backoff policy
            delay = next(delays)
            while True:
                try:
                    return set(codec.decode_symbols(
                        await rest.fetch(codec.symbols_request())))
                except (RestError, CandlekeeperError) as exc:
                    self.counters.symbol_lookup_failures += 1
                    self.metrics.count_error("symbol_lookup")
                    if not feed.all_symbols:
                        log.warning("%s: cannot check symbols against exchangeInfo (%s); "
                                    "subscribing as configured", feed.venue, exc)
                        return None
                    log.error("%s: cannot list symbols (%s); retrying in %.0fs", feed.venue, exc,
                              delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    if stop.is_set():
                        return None
                    delay = next(delays)

    async def _resolve_streams(self, feed: FeedConfig, stop: asyncio.Event) -> list[StreamKey]:
        """The feed's streams this instance ingests: ``all`` groups resolved against the
        venue's listing, symbols named in the config checked against it (an unknown symbol is
        one clear error and a counter, not a silent dead stream), then this shard's share."""
        listed = await self._listing(feed, stop)
        if listed is None and feed.all_symbols:
            return []  # stopped while the listing was retried
        keys = self._own(feed.venue, feed.stream_keys(sorted(listed or ())
                                                      if feed.all_symbols else None))
        if listed is None:
            return keys
        for symbol in dict.fromkeys(k.symbol for k in keys if k.symbol not in listed):
            self.counters.unknown_symbols += 1
            self.metrics.count_error("unknown_symbol")
            self.unknown_symbols.append(f"{feed.venue}:{symbol}")
            log.error("%s: unknown symbol %s (not trading per exchangeInfo); skipping it, the "
                      "other streams keep running", feed.venue, symbol)
        return [k for k in keys if k.symbol in listed]

    def _own(self, venue: str, keys: list[StreamKey]) -> list[StreamKey]:
        """The streams this instance ingests (all of them unless it runs one shard); shards
        split by symbol, so each symbol's intervals stay together."""
        if self.shard is None:
            return keys
        symbols = list(dict.fromkeys(k.symbol for k in keys))
        mine = set(self.shard.select(symbols))
        log.info("%s: shard %s owns %d of %d symbols", venue, self.shard, len(mine),
                 len(symbols))
        return [k for k in keys if k.symbol in mine]

    # -- lifecycle ------------------------------------------------------------------------
    async def _open_sinks(self) -> None:
        """Every enabled sink behind its own writer: one slow or failing backend never stalls
        the others or the feed (``submit`` is O(1); network sinks open lazily, retrying, and
        spill to a durable journal while they are down)."""
        sinks = self.config.sinks
        cfg = sinks.sqlite
        if cfg.enabled:
            self.sqlite = SQLiteSink(cfg.path)
            await self._start_writer(self.sqlite, BatchingWriter(self.sqlite, cfg))
        pg = sinks.postgres
        if pg.enabled:
            self.postgres = PostgresSink(pg.dsn.get_secret_value(), schema=pg.schema_name,
                                         layout=pg.layout, pool_max_size=pg.pool_max_size)
            await self._start_writer(self.postgres, self._writer(self.postgres, pg))
        nc = sinks.nats
        if nc.enabled:
            nats = NatsSink(list(nc.servers), stream=nc.stream, subject_prefix=nc.subject_prefix,
                            duplicate_window_s=nc.duplicate_window_s, max_age_s=nc.max_age_s,
                            storage=nc.storage, replicas=nc.replicas,
                            create_stream=nc.create_stream, ack_timeout_s=nc.ack_timeout_s,
                            connect_timeout_s=nc.connect_timeout_s, user=nc.user,
                            password=_secret(nc.password), token=_secret(nc.token),
                            creds_file=str(nc.creds_file) if nc.creds_file else None)
            await self._start_writer(nats, self._writer(nats, nc))

    @staticmethod
    def _writer(sink: Sink, cfg: PostgresSinkConfig | NatsSinkConfig) -> BatchingWriter:
        # a network backend may be down when the service starts: open it lazily, retrying
        return BatchingWriter(sink, cfg, retry_open=True)

    async def _start_writer(self, sink: Sink, writer: BatchingWriter) -> None:
        await writer.start()
        self.writers[sink.name] = writer
        self.metrics.track_sink(sink.name, lambda: writer.stats)

    async def _make_feeds(self, resolved: Sequence[tuple[FeedConfig, list[StreamKey]]]
                          ) -> None:
        for feed_cfg, keys in resolved:
            if not keys:
                log.error("%s: no symbols to stream", feed_cfg.venue)
                continue
            # derived intervals resume with their bases' stored candles (docs/derived-intervals)
            plan = plan_streams(feed_cfg.venue, feed_cfg.spec.intervals, keys,
                                derive_from=feed_cfg.derive_from, anchor=feed_cfg.anchor)
            resume, preload = await self._stored_state(plan)
            # one feed (one connection pool) per venue and endpoint, whatever its groups
            feed = CandleFeed(feed_cfg.venue, keys=keys, ws_url=feed_cfg.ws_base,
                              derive_from=feed_cfg.derive_from, anchor=feed_cfg.anchor,
                              rest_url=feed_cfg.rest_base,
                              buffer_size=self.config.buffer_size, clock=self.clock,
                              transport=self.config.transport, gap_fill=self.config.gap_fill,
                              mode=feed_cfg.transport, close_policy=feed_cfg.close_policy,
                              rest=self.config.rest,
                              plumbing=FeedPlumbing(resume_from=resume, preload=preload,
                                                    metrics=self.metrics))
            if self.web is not None:
                self.web.attach(feed)
            if self.writers:
                store = self._storer(feed)
                feed.on_closed(store, inline=True)
                # a correction replaces the stored row (every sink writes by natural key)
                feed.on_corrected(self._corrector(), inline=True)
                # warm-up history is stored too (it is not emitted to consumers by default), in
                # the databases: it arrives behind the first live closes, and a bus carries
                # each series in open-time order
                feed.on_history(_newest_first(self._storer(feed, history=True)))
            self.feeds.append(feed)

    async def _stored_state(self, plan: StreamPlan
                            ) -> tuple[dict[StreamKey, int], dict[StreamKey, list[Candle]]]:
        """Where each stream's stored series ends (resume point after a restart, even a
        ``kill -9``) and its newest candles (to warm the ring buffer without REST). The primary
        store is SQLite when enabled, else PostgreSQL (if it is reachable at start). The base of
        a derived stream preloads at least a bucket of the widest one built on it."""
        resume: dict[StreamKey, int] = {}
        preload: dict[StreamKey, list[Candle]] = {}
        keys = plan.keys
        size = self.config.buffer_size

        def n_of(key: StreamKey) -> int:
            return max(size, plan.preload_need(key))

        if self.sqlite is not None:
            for key in keys:
                last = self.sqlite.last_open_time(key)
                if last is not None:
                    resume[key], preload[key] = last, self.sqlite.latest(key, n_of(key))
        elif self.postgres is not None and self.postgres.is_open:
            try:
                for key in keys:
                    last_pg = await self.postgres.last_open_time(key)
                    if last_pg is not None:
                        resume[key] = last_pg
                        preload[key] = await self.postgres.latest(key, n_of(key))
            except CandlekeeperError as exc:
                log.warning("cannot read the resume points from PostgreSQL (%s); warming up "
                            "from REST instead", exc)
        if resume:
            log.info("resuming %d stream(s) from storage", len(resume))
        return resume, preload

    def _storer(self, feed: CandleFeed, *, history: bool = False) -> Callable[[Candle], None]:
        """Inline closed-candle handler: hand the candle to every writer (O(1), never blocks);
        ``history``: only to those that take history out of open-time order."""
        writers = [w for w in self.writers.values()
                   if not (history and getattr(w.sink, "in_order_only", False))]
        if not writers:
            return lambda candle: None
        metrics = {k: feed.metrics.stream(k) for k in [*feed.keys, *feed.derived_keys]}

        def store(candle: Candle) -> None:
            for writer in writers:
                writer.submit(candle)
            metrics[candle.key].stored += 1

        return store

    def _corrector(self) -> Callable[[CandleCorrected], None]:
        """Inline correction handler: the corrected candle to every writer (not counted as
        stored again: the row exists, its values change)."""
        writers = list(self.writers.values())

        def correct(event: CandleCorrected) -> None:
            for writer in writers:
                writer.submit(event.candle)

        return correct

    async def _start_http(self) -> None:
        http = self.config.observability.http
        if not http.enabled:
            return
        if http.serves_page:
            self.web = WebHub(self.snapshot, count_error=self.metrics.count_error)
        self.health = HealthServer(self.metrics, self.snapshot, host=http.host, port=http.port,
                                   page=self.web, token=_secret(http.token))
        try:
            port = await self.health.start()
        except (CandlekeeperError, OSError) as exc:
            # e.g. a second instance on the same host with the default port: ingesting matters
            # more than the probe, so say so once and carry on (docs/deploying.md: per-shard
            # ports)
            self.metrics.count_error("http_bind")
            reason = exc if isinstance(exc, CandlekeeperError) else (
                f"cannot serve health/metrics on {http.host}:{http.port}: {exc.strerror or exc}")
            log.error("%s; continuing without /metrics and /health (give each instance its own "
                      "observability.http.port)", reason)
            self.health = self.web = None
            return
        log.info("serving /metrics and /health on http://%s:%d", http.host, port)
        if http.web is None and not http.serves_page:
            log.info("web page off: %s is beyond this machine and observability.http.token is "
                     "not set (set it, or web: true with a token, to serve the page)", http.host)

    @property
    def page_url(self) -> str | None:
        """The web page's address once the HTTP server is up (None: not served)."""
        if self.health is None or self.web is None:
            return None
        return f"{self.health.url}/"

    def snapshot(self) -> HealthSnapshot:
        """What ``/health`` and the dashboard show (venue time from the service clock)."""
        snap = self.metrics.snapshot(self.clock.time_ms())
        snap = msgspec.structs.replace(snap, warming=self.warming)
        if self.shard is not None:
            snap = msgspec.structs.replace(snap, shard=str(self.shard))
        return snap

    @property
    def warming(self) -> int:
        """Streams still fetching warm-up history behind their live closes."""
        return sum(f.filler.warming for f in self.feeds if f.filler is not None)

    async def run(self, stop: asyncio.Event) -> ServiceReport:
        """Run until ``stop`` is set; always shuts down cleanly and returns the statistics."""
        try:
            await self._open_sinks()
            await self._start_http()
            resolved = [(f, await self._resolve_streams(f, stop)) for f in self.config.feeds]
            if not stop.is_set():
                await self._make_feeds(resolved)
                for feed in self.feeds:
                    await feed.start()
                self.ready.set()
                await stop.wait()
        finally:
            await self._shutdown()
        return self.report()

    async def _shutdown(self) -> None:
        self._final_states = {s.key: str(s.state) for f in self.feeds for s in f.stats()}
        for feed in self.feeds:
            try:
                await feed.stop()
            except Exception:  # pragma: no cover - shutdown must continue whatever happens
                log.exception("stopping %s feed failed", feed.venue)
        # every sink drains at once, under one deadline: a dead backend must not eat the time
        # of the healthy ones, nor shutdown take (number of sinks) x drain_timeout_s
        timeout = self.config.shutdown.drain_timeout_s
        results = await asyncio.gather(*(w.stop(timeout) for w in self.writers.values()),
                                       return_exceptions=True)
        for (name, writer), result in zip(self.writers.items(), results, strict=True):
            if isinstance(result, BaseException):
                log.error("sink %s: stopping failed: %s", name, result)
            stats = writer.stats
            if stats.pending:
                log.error("%s: %d candles could not be written before the drain deadline",
                          name, stats.pending)
        if self.health is not None:
            await self.health.stop()

    def report(self) -> ServiceReport:
        return ServiceReport(
            streams=[s for f in self.feeds for s in f.stats()],
            writers={name: w.stats for name, w in self.writers.items()},
            uptime_s=time.monotonic() - self.counters.started_monotonic,
            unknown_symbols=list(self.unknown_symbols),
            final_states=dict(self._final_states),
            derived=[d for f in self.feeds for d in f.derived_streams()],
        )


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def _newest_first(store: Callable[[Candle], None]) -> Callable[[list[Candle]], None]:
    """Store a stretch of history newest first. Warm-up history reaches back from a stream's
    first stored close; written newest first, whatever part of it is stored when the process
    dies (``kill -9`` between two writer batches) joins the stored series without a hole — a
    restart resumes from the newest stored candle and would never look below it."""
    def store_all(candles: list[Candle]) -> None:
        for candle in reversed(candles):
            store(candle)
    return store_all
