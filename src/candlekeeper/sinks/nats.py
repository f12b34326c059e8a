"""NATS JetStream sink: publishes every closed candle to ``<prefix>.<venue>.<symbol>.<interval>``.

Design decisions (also in ``docs/deploying.md``):

* **A sink like any other.** ``NatsSink`` sits behind a :class:`~candlekeeper.sinks.writer.
  BatchingWriter`, so batching, retry with backoff, bounded memory (and the durable journal) are
  the writer's job. ``write`` publishes a whole batch or raises ``SinkError``; the writer keeps
  the batch and retries it, in order.
* **Acks awaited, pipelined.** A batch is published without waiting between messages (a few large
  TCP writes; ``max_inflight`` messages at most before their acks are awaited), then every
  publish ack is awaited, within ``ack_timeout_s`` (``nats_acks.AckPipeline``). One missing or
  negative ack fails the batch. Waiting for each ack in turn would cap the rate at one message
  per round trip; pipelining costs nothing in safety because of the next point.
* **Exactly once through deduplication.** Every message carries ``Nats-Msg-Id`` = the natural key
  (``venue:symbol:interval:open_time``). Re-publishing a batch whose acks were lost (server
  restart, network cut) stores nothing twice *as long as the retry lands within the stream's
  ``duplicate_window``*. Beyond the window JetStream has forgotten the id, so the sink adds a
  second guard: after any failure (and on the first batch after ``open``) it asks the stream for
  the last message of each subject in the batch and skips candles at or before that open time,
  which were already stored. This relies on what the pipeline guarantees: closes of one series
  are written in open-time order (the writer never reorders). ``skip_stored_on_retry=False``
  turns the guard off.
* **The stream is created if missing** (file storage, ``limits`` retention by age/bytes, the dedup
  window) and reused as it is if it exists; a stream that does not capture the subject prefix is
  a configuration error.
* **Reconnects.** nats-py reconnects forever in the background. While it is disconnected the
  sink fails fast (no publishing into the client's reconnect buffer), so the writer backs off
  and the candles wait in the writer, not in an invisible client buffer.
* **Credentials never reach an output**: server URLs are shown without their user info, the
  user, password, token, credentials file and seed are not part of ``repr``, and every error
  text (nats-py's included) goes through the sink's :meth:`NatsSink.redact`. A server URL whose
  user info holds an unescaped ``/ ? #`` is refused with a ``ConfigError`` (nats-py would read
  the rest of the password as the host); such credentials go in ``user``/``password``.
* **Rejections**: a candle that cannot become a message (a subject it cannot have, a payload
  over the server's ``max_payload``) is returned as a ``Rejection``, never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Sequence
from typing import Any, Literal

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from candlekeeper.core.candle import Candle
from candlekeeper.core.ratelog import RateLimitedLog
from candlekeeper.errors import ConfigError, SinkError
from candlekeeper.observability.redact import (
    Redactor,
    describe_error,
    malformed_userinfo,
    redact_url,
)
from candlekeeper.sinks.contract import Rejection
from candlekeeper.sinks.nats_acks import AckPipeline
from candlekeeper.sinks.nats_schema import (
    MSG_ID_HEADER,
    encode_candle,
    msg_id,
    parse_msg_id,
    subject_for,
    validate_prefix,
)
from candlekeeper.sinks.nats_stream import ensure_stream

__all__ = ["NatsSink", "check_server_urls", "redact_url"]

log = logging.getLogger(__name__)

#: failures of the client library and of the network that a retry may cure
_TRANSIENT = (nats.errors.Error, OSError, TimeoutError)


def check_server_urls(owner: str, servers: Sequence[str]) -> None:
    """Raise ``ConfigError`` (showing only the redacted URL) for a server URL whose user info
    nats-py would misread: an unescaped ``/``, ``?`` or ``#`` in it ends it early, and nats-py
    does not decode ``%2F``-style escapes in URL credentials."""
    for url in servers:
        if malformed_userinfo(url, allow_at=True):
            raise ConfigError(
                f"{owner}: the server URL {redact_url(url)} cannot be parsed: its user name or "
                "password holds '/', '?' or '#'; give the credentials separately (user and "
                "password, or token) instead of in the URL")


class NatsSink:
    """Publishes closed candles to a JetStream stream (see the module docstring for the policy).

    Counters: ``published`` (acknowledged as stored for the first time), ``duplicates`` (acked as
    a duplicate: already in the stream), ``skipped`` (not sent: found in the stream by the
    post-failure check), ``rejected`` (a candle that cannot be turned into a message, returned
    by ``write`` and never retried). A message stored by an attempt whose ack was lost is
    counted by its retry, under ``duplicates`` or ``skipped``.

    ``in_order_only``: a bus carries each series in open-time order (consumers follow it, and
    the last-message check relies on it), so the service gives it the closes the feed emits and
    not the warm-up history fetched behind them at start (that goes to the databases).
    """

    in_order_only = True

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        name: str = "nats",
        stream: str = "CANDLES",
        subject_prefix: str = "candles",
        duplicate_window_s: float = 600.0,
        max_age_s: float | None = 7 * 86_400.0,
        max_bytes: int | None = None,
        storage: Literal["file", "memory"] = "file",
        replicas: int = 1,
        create_stream: bool = True,
        ack_timeout_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        reconnect_wait_s: float = 2.0,
        max_inflight: int = 10_000,
        skip_stored_on_retry: bool = True,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        creds_file: str | None = None,
        nkeys_seed_file: str | None = None,
        tls_ca_file: str | None = None,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        client_name: str = "candlekeeper",
    ) -> None:
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        if not self.servers:
            raise ConfigError(f"nats sink {name!r}: at least one server URL is needed")
        check_server_urls(f"nats sink {name!r}", self.servers)
        #: masks the credentials (URL user info, password, token) in any text
        self.redact = Redactor(secrets=[password, token], urls=self.servers)
        try:
            validate_prefix(subject_prefix)
        except ValueError as exc:
            raise ConfigError(f"nats sink {name!r}: {exc}") from exc
        if not stream or any(ch in stream for ch in ".*> \t\r\n"):
            raise ConfigError(f"nats sink {name!r}: invalid stream name {stream!r}")
        if duplicate_window_s <= 0 or ack_timeout_s <= 0 or connect_timeout_s <= 0:
            raise ConfigError(f"nats sink {name!r}: duplicate_window_s, ack_timeout_s and "
                              "connect_timeout_s must be > 0")
        if max_age_s is not None and max_age_s < duplicate_window_s:
            raise ConfigError(f"nats sink {name!r}: max_age_s must be >= duplicate_window_s")
        if max_inflight < 1 or replicas < 1:
            raise ConfigError(f"nats sink {name!r}: max_inflight and replicas must be >= 1")
        if tls_cert_file and not tls_key_file:
            raise ConfigError(f"nats sink {name!r}: tls_cert_file needs tls_key_file")
        self.name = name
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.duplicate_window_s = duplicate_window_s
        self.max_age_s = max_age_s
        self.max_bytes = max_bytes
        self.storage = storage
        self.replicas = replicas
        self.create_stream = create_stream
        self.ack_timeout_s = ack_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.reconnect_wait_s = reconnect_wait_s
        self.max_inflight = max_inflight
        self.skip_stored_on_retry = skip_stored_on_retry
        self._auth: dict[str, Any] = {k: v for k, v in (
            ("user", user), ("password", password), ("token", token),
            ("user_credentials", creds_file), ("nkeys_seed", nkeys_seed_file)) if v is not None}
        self._tls = (tls_ca_file, tls_cert_file, tls_key_file)
        self._client_name = client_name
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._acks: AckPipeline | None = None
        self._stream_ok = False
        self._check_stored = True  # first batch after open: some of it may already be stored
        self._closing = False
        self._lock = asyncio.Lock()
        self._rlog = RateLimitedLog(log)
        self.published = 0
        self.duplicates = 0
        self.skipped = 0
        self.rejected = 0

    def __repr__(self) -> str:
        servers = ",".join(redact_url(s) for s in self.servers)
        return (f"NatsSink(name={self.name!r}, servers={servers!r}, stream={self.stream!r}, "
                f"subject_prefix={self.subject_prefix!r})")

    @property
    def is_connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    # -- lifecycle ----------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and make sure the stream exists. Idempotent. Raises ``SinkError`` if no server
        answers within ``connect_timeout_s`` or the stream cannot be created or is unsuitable."""
        async with self._lock:
            await self._connect()
            await self._ensure_stream()

    async def close(self) -> None:
        """Flush what the client holds and close the connection. Idempotent."""
        async with self._lock:
            nc, self._nc, self._js, self._acks = self._nc, None, None, None
            self._stream_ok = False
            if nc is None:
                return
            self._closing = True
            try:
                if nc.is_connected:
                    with contextlib.suppress(*_TRANSIENT):
                        await nc.flush(timeout=max(1, int(self.ack_timeout_s)))
                with contextlib.suppress(*_TRANSIENT):
                    await nc.close()
            finally:
                self._closing = False

    async def _connect(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            return
        shown = ",".join(redact_url(s) for s in self.servers)
        nc = Client()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await nc.connect(
                    servers=self.servers, name=self._client_name, tls=self._ssl_context(),
                    connect_timeout=max(1, int(self.connect_timeout_s)),
                    reconnect_time_wait=self.reconnect_wait_s,  # type: ignore[arg-type]
                    max_reconnect_attempts=-1, error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected, reconnected_cb=self._on_reconnected,
                    **self._auth)
        except (*_TRANSIENT, ssl.SSLError) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            raise SinkError(f"nats sink {self.name!r}: cannot connect to {shown} within "
                            f"{self.connect_timeout_s:g}s ({describe_error(exc, self.redact)})"
                            ) from None
        self._nc = nc
        self._js = nc.jetstream(timeout=self.ack_timeout_s)
        self._acks = AckPipeline(nc, chunk=self.max_inflight)
        try:
            await self._acks.start()
        except _TRANSIENT as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            raise SinkError(f"nats sink {self.name!r}: cannot subscribe to acks: "
                            f"{describe_error(exc, self.redact)}") from None
        self._stream_ok = False
        log.info("nats sink %r connected to %s", self.name,
                 redact_url(str(nc.connected_url.geturl())) if nc.connected_url else shown)

    def _ssl_context(self) -> ssl.SSLContext | None:
        ca, cert, key = self._tls
        if not (ca or cert):
            return None
        ctx = ssl.create_default_context(cafile=ca)
        if cert:
            ctx.load_cert_chain(cert, key)
        return ctx

    async def _ensure_stream(self) -> None:
        if self._stream_ok:
            return
        assert self._js is not None
        await ensure_stream(
            self._js, sink=self.name, stream=self.stream, prefix=self.subject_prefix,
            create=self.create_stream, duplicate_window_s=self.duplicate_window_s,
            max_age_s=self.max_age_s, max_bytes=self.max_bytes, storage=self.storage,
            replicas=self.replicas, timeout_s=self.ack_timeout_s)
        self._stream_ok = True

    async def _on_error(self, exc: Exception) -> None:
        self._rlog.warning(f"nats-error:{self.name}", "nats sink %r: %s", self.name,
                           describe_error(exc, self.redact))

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        self._rlog.warning(f"nats-down:{self.name}", "nats sink %r: disconnected; reconnecting "
                           "in the background (writes fail and are retried meanwhile)", self.name)

    async def _on_reconnected(self) -> None:
        log.info("nats sink %r: reconnected", self.name)

    # -- writing ------------------------------------------------------------------------------
    async def write(self, candles: Sequence[Candle]) -> list[Rejection]:
        """Publish a batch and await every ack; ``SinkError`` if any is missing or negative.
        Returns the candles that cannot become a message (never sent, never retried).

        Safe to call again with the same batch: what was stored already is deduplicated by
        ``Nats-Msg-Id`` (and, after a failure, skipped by the last-message check).
        """
        if not candles:
            return []
        try:
            js = await self._ready()
            batch = await self._unstored(js, candles) if self._check_stored else candles
            rejected = await self._publish(batch)
        except SinkError:
            self._check_stored = self.skip_stored_on_retry
            raise
        except _TRANSIENT as exc:
            self._check_stored = self.skip_stored_on_retry
            if isinstance(exc, nats.js.errors.NoStreamResponseError | nats.js.errors.NotFoundError):
                self._stream_ok = False  # the stream was deleted under us: re-create it
            raise SinkError(f"nats sink {self.name!r}: {describe_error(exc, self.redact)}"
                            ) from None
        self._check_stored = False
        self.rejected += len(rejected)
        return rejected

    async def _ready(self) -> JetStreamContext:
        async with self._lock:
            if self._nc is None or self._nc.is_closed:
                await self._connect()
            nc, js = self._nc, self._js
            assert nc is not None
            assert js is not None
            if not nc.is_connected:
                raise SinkError(f"nats sink {self.name!r}: not connected (reconnecting)")
            await self._ensure_stream()
            return js

    async def _publish(self, batch: Sequence[Candle]) -> list[Rejection]:
        messages: list[tuple[str, bytes, dict[str, str]]] = []
        rejected: list[Rejection] = []
        assert self._nc is not None
        max_payload = self._nc.max_payload
        for candle in batch:
            try:
                payload = encode_candle(candle)
                if len(payload) > max_payload:
                    raise ValueError(f"message of {len(payload)} bytes exceeds the server's "
                                     f"max_payload ({max_payload})")
                messages.append((subject_for(self.subject_prefix, candle.key), payload,
                                 {MSG_ID_HEADER: msg_id(candle)}))
            except (ValueError, TypeError, AttributeError) as exc:
                rejected.append(Rejection.of(candle, exc))
        if not messages:
            return rejected
        assert self._acks is not None
        outcome = await self._acks.publish(messages, self.ack_timeout_s)
        self.published += outcome.stored
        self.duplicates += outcome.duplicates
        if outcome.no_stream:
            self._stream_ok = False  # deleted under us: the retry re-creates it
        if not outcome.ok:
            reason = outcome.first_error or f"no ack within {self.ack_timeout_s:g}s"
            raise SinkError(f"nats sink {self.name!r}: {outcome.failed + outcome.unanswered} of "
                            f"{outcome.sent} publish(es) not acknowledged "
                            f"({self.redact(reason)})")
        return rejected

    async def _unstored(self, js: JetStreamContext, candles: Sequence[Candle]) -> list[Candle]:
        """The candles of ``candles`` the stream does not hold yet, judged by the last message of
        each subject (closes of one series are published in open-time order)."""
        subjects: dict[str, None] = {}
        for c in candles:
            with contextlib.suppress(ValueError, TypeError):  # malformed: _publish rejects it
                subjects[subject_for(self.subject_prefix, c.key)] = None
        gate = asyncio.Semaphore(64)

        async def last(subject: str) -> tuple[str, str | None]:
            async with gate:
                try:
                    msg = await js.get_last_msg(self.stream, subject)
                except nats.js.errors.NotFoundError:
                    return subject, None
                return subject, (msg.headers or {}).get(MSG_ID_HEADER)

        lasts: dict[str, tuple[Any, int]] = {}
        for subject, mid in await asyncio.gather(*(last(s) for s in subjects)):
            if mid is not None:
                with contextlib.suppress(ValueError):
                    lasts[subject] = parse_msg_id(mid)
        if not lasts:
            return list(candles)
        out: list[Candle] = []
        for c in candles:
            try:
                stored = lasts.get(subject_for(self.subject_prefix, c.key))
                done = stored is not None and stored[0] == c.key and c.open_time <= stored[1]
            except (ValueError, TypeError):  # malformed: _publish rejects it
                done = False
            if done:
                self.skipped += 1
            else:
                out.append(c)
        if len(out) < len(candles):
            log.info("nats sink %r: %d candle(s) of a retried batch were already in stream %r; "
                     "not re-published", self.name, len(candles) - len(out), self.stream)
        return out
