"""The sink contract and the batching writer that feeds one sink.

A *sink* is a storage or publishing backend (SQLite now; PostgreSQL and NATS JetStream later). It
only has to do one thing well: write a batch of candles idempotently on the natural key
``(venue, symbol, interval, open_time)``, raising :class:`~candlekeeper.errors.SinkError` when the
batch could not be stored. Everything about *when* to write — batching by size or time, retrying
with backoff, bounding memory, draining on shutdown — lives once in :class:`BatchingWriter`, so
every backend gets the same behaviour and the feed is isolated from every backend: ``submit`` is
O(1) and never blocks or raises, whatever the disk or database is doing.

Why one writer per sink: with several sinks configured (issue 4), a slow or failing one must not
stall the others, so each gets its own buffer, task and failure counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.errors import SinkError
from candlekeeper.observability.logging import RateLimitedLog

__all__ = ["BatchingWriter", "Sink", "WriterStats", "backoff_delays"]

log = logging.getLogger(__name__)


@runtime_checkable
class Sink(Protocol):
    """A backend that stores (or publishes) closed candles.

    Contract every implementation keeps:

    * ``open()`` and ``close()`` are idempotent (the writer calls them, and a service may too).
    * ``write()`` is idempotent on ``(venue, symbol, interval, open_time)``: writing the same
      candle twice never creates a second row/message, and a candle already stored never makes the
      batch fail (cryptofeed's "one duplicate drops the whole batch" bug).
    * ``write()`` either stores the whole batch or raises ``SinkError`` (then nothing must be
      half-visible, or the partial part must be harmless to re-write — which idempotency gives).
      A candle the backend can never store (malformed) is rejected and counted by the sink itself,
      not raised, because the writer treats every raise as transient and retries the batch.
    """

    name: str

    async def open(self) -> None: ...

    async def write(self, candles: Sequence[Candle]) -> None: ...

    async def close(self) -> None: ...


class WriterStats(msgspec.Struct, frozen=True):
    """A snapshot of one writer's counters (cheap to take; safe to show on a dashboard).

    ``pending`` includes the batch currently being written or retried. ``dropped`` is the number of
    candles discarded by the overflow policy — any non-zero value means data loss.
    """

    written: int
    pending: int
    batches: int
    failures: int
    retries: int
    dropped: int
    last_error: str | None
    last_flush_monotonic: float | None


def backoff_delays(initial_s: float, max_s: float,
                   rng: Callable[[], float] = random.random) -> Iterator[float]:
    """Capped exponential backoff with "equal jitter": attempt *n* waits a random time in
    ``[d/2, d]`` with ``d = min(max_s, initial_s * 2**n)``.

    Jitter keeps several writers (or processes) that failed together from retrying in lockstep;
    the lower bound of ``d/2`` keeps the wait from collapsing to zero. Pure and infinite: the caller
    decides when to stop.
    """
    if initial_s <= 0 or max_s < initial_s:
        raise ValueError("need 0 < initial_s <= max_s")
    delay = initial_s
    while True:
        yield delay * (0.5 + 0.5 * rng())
        delay = min(max_s, delay * 2.0)


class BatchingWriter:
    """Feeds one sink: flush on size or time, retry with capped backoff, bounded buffer, drain on
    shutdown within a deadline.

    * **Batching**: a batch is written as soon as ``batch_size`` candles are pending, or when the
      oldest pending candle has waited ``flush_interval_s`` — whichever comes first. Large batches
      are what make storage fast (one transaction per batch); the interval bounds the latency.
    * **Failures**: a batch whose ``write`` raises is kept (never split, never dropped), the failure
      is counted and logged at a limited rate, and the same batch is retried after a capped,
      jittered exponential backoff (``retry_initial_s`` doubling up to ``retry_max_s``) until it
      succeeds. Order is preserved: newer candles wait behind it.
    * **Bounded memory**: at most ``max_pending`` candles are held. Beyond that the *oldest* candles
      not already in the batch being written are dropped, counted in ``stats.dropped`` and logged
      as errors. This is the last resort that keeps a long outage from exhausting memory; it loses
      data, so size ``max_pending`` for the outage you want to ride out (1,000,000 closed candles is
      ~17 hours of 1000 one-minute streams). Issue 4 adds a durable on-disk journal before it.
    * **Shutdown**: ``stop()`` keeps flushing (and retrying) until everything is written or the
      drain deadline passes, then reports what was left and closes the sink.

    ``submit`` must be called from the event loop's thread (from another thread use
    ``loop.call_soon_threadsafe(writer.submit, candle)``); everything else is async.
    """

    def __init__(self, sink: Sink, *, batch_size: int = 500, flush_interval_s: float = 0.5,
                 max_pending: int = 1_000_000, retry_initial_s: float = 0.5,
                 retry_max_s: float = 30.0, write_timeout_s: float | None = 60.0) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if flush_interval_s < 0:
            raise ValueError("flush_interval_s must be >= 0")
        if max_pending < batch_size:
            raise ValueError("max_pending must be >= batch_size")
        if retry_initial_s <= 0 or retry_max_s < retry_initial_s:
            raise ValueError("need 0 < retry_initial_s <= retry_max_s")
        if write_timeout_s is not None and write_timeout_s <= 0:
            raise ValueError("write_timeout_s must be > 0 or None")
        self.sink = sink
        self._batch_size = batch_size
        self._flush_interval = flush_interval_s
        self._max_pending = max_pending
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._write_timeout = write_timeout_s
        self._pending: deque[Candle] = deque()
        self._inflight: list[Candle] = []
        self._oldest_at = 0.0  # monotonic time the oldest queued candle was (about) submitted
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped = False
        self._rlog = RateLimitedLog(log)
        # counters
        self._written = 0
        self._batches = 0
        self._failures = 0
        self._retries = 0
        self._dropped = 0
        self._last_error: str | None = None
        self._last_flush: float | None = None

    # -- feed side ----------------------------------------------------------------------------
    def submit(self, candle: Candle) -> None:
        """Queue one closed candle for writing. O(1); never blocks and never raises."""
        if self._stopped:
            self._dropped += 1
            self._rlog.error(f"closed:{self.sink.name}",
                             "sink %r: candle submitted after stop() was dropped (%d in total)",
                             self.sink.name, self._dropped)
            return
        pending = self._pending
        if not pending:
            self._oldest_at = time.monotonic()
        pending.append(candle)
        n = len(pending)
        if n + len(self._inflight) > self._max_pending:
            self._drop_oldest()
            n = len(pending)
        if n == 1 or n >= self._batch_size:
            self._wake.set()

    def _drop_oldest(self) -> None:
        dropped = 0
        pending = self._pending
        while pending and len(pending) + len(self._inflight) > self._max_pending:
            pending.popleft()
            dropped += 1
        self._dropped += dropped
        self._rlog.error(
            f"overflow:{self.sink.name}",
            "sink %r: pending buffer full (max_pending=%d); dropped %d oldest candle(s), "
            "%d dropped in total — DATA LOSS (last error: %s)",
            self.sink.name, self._max_pending, dropped, self._dropped, self._last_error)

    @property
    def stats(self) -> WriterStats:
        return WriterStats(
            written=self._written,
            pending=len(self._pending) + len(self._inflight),
            batches=self._batches,
            failures=self._failures,
            retries=self._retries,
            dropped=self._dropped,
            last_error=self._last_error,
            last_flush_monotonic=self._last_flush,
        )

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the sink and start the flush task. Idempotent.

        Opening is not retried: a sink that cannot even open (bad path, wrong schema version) is a
        configuration problem that should stop the service at startup with a clear ``SinkError``.
        """
        if self._stopped:
            raise SinkError(f"writer for sink {self.sink.name!r} was stopped; make a new one")
        if self._task is not None:
            return
        await self.sink.open()
        self._task = asyncio.create_task(self._run(), name=f"sink-writer:{self.sink.name}")

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Write everything pending (retrying failures) until done or ``drain_timeout_s`` passes,
        then close the sink. What could not be written is logged and left in ``stats.pending``.

        If the deadline interrupts a write in progress, the backend may still commit that batch;
        it then stays counted as pending (an upper bound), and re-writing it later is harmless.
        """
        if self._stopped:
            return
        self._stopping = True
        self._wake.set()
        task = self._task
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=max(0.0, drain_timeout_s))
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            elif not task.cancelled() and task.exception() is not None:
                # a bug in the flush loop itself: surface it in the logs
                log.error("sink %r writer task crashed", self.sink.name,
                          exc_info=task.exception())
        self._stopped = True
        left = len(self._pending) + len(self._inflight)
        if left:
            log.error("sink %r: drain deadline (%.1fs) passed with %d candle(s) not written "
                      "(%d written, %d failures, last error: %s)", self.sink.name,
                      drain_timeout_s, left, self._written, self._failures, self._last_error)
        else:
            log.info("sink %r drained: %d candle(s) written in %d batch(es)", self.sink.name,
                     self._written, self._batches)
        try:
            await self.sink.close()
        except Exception as exc:  # closing must not prevent the rest of a shutdown
            log.error("sink %r: close failed: %s", self.sink.name, exc)

    # -- flush loop -----------------------------------------------------------------------------
    async def _run(self) -> None:
        delays: Iterator[float] | None = None
        while True:
            if not self._inflight and not await self._next_batch():
                return
            if await self._write_inflight():
                delays = None
                continue
            if delays is None:
                delays = backoff_delays(self._retry_initial, self._retry_max)
            await asyncio.sleep(next(delays))
            self._retries += 1

    async def _next_batch(self) -> bool:
        """Wait until a batch is due and move it to ``_inflight``; False when stopped and empty."""
        pending = self._pending
        while True:
            if not pending:
                if self._stopping:
                    return False
                self._wake.clear()
                await self._wake.wait()
                continue
            if len(pending) < self._batch_size and not self._stopping:
                delay = self._oldest_at + self._flush_interval - time.monotonic()
                if delay > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
                    continue
            n = min(self._batch_size, len(pending))
            self._inflight = [pending.popleft() for _ in range(n)]
            if pending:
                # the rest arrived after the batch's oldest; "now" is a safe approximation that
                # flushes them at most one interval later (a full batch goes out immediately)
                self._oldest_at = time.monotonic()
            return True

    async def _write_inflight(self) -> bool:
        batch = self._inflight
        try:
            # asyncio.timeout, not wait_for: no extra task per batch, and the counters below are
            # updated in the same step as the write completes
            async with asyncio.timeout(self._write_timeout):
                await self.sink.write(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is retried; see Sink's contract
            self._failures += 1
            if isinstance(exc, TimeoutError):
                self._last_error = f"write timed out after {self._write_timeout}s"
            else:
                self._last_error = f"{type(exc).__name__}: {exc}"
            self._rlog.warning(
                f"write:{self.sink.name}",
                "sink %r: writing %d candle(s) failed (%s); keeping them and retrying "
                "(%d failures, %d pending)", self.sink.name, len(batch), self._last_error,
                self._failures, len(self._pending) + len(batch))
            return False
        self._written += len(batch)
        self._batches += 1
        self._last_flush = time.monotonic()
        self._inflight = []
        return True
