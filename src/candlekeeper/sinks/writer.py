"""``BatchingWriter``: feeds one sink with batching, retry, a bounded buffer, an optional durable
outage journal, and a drain on shutdown (see the class docstring; the policy is in
``docs/storage.md``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from candlekeeper.core.backoff import backoff_delays
from candlekeeper.core.candle import Candle
from candlekeeper.errors import ConfigError, SinkError
from candlekeeper.observability.redact import describe_error, redact_text
from candlekeeper.sinks.contract import Sink, WriterStats
from candlekeeper.sinks.journal import JournalError, JournalRecord
from candlekeeper.sinks.options import WriterOptions
from candlekeeper.sinks.spool import JournalSpool
from candlekeeper.sinks.writer_ledger import WriterLedger

__all__ = ["BatchingWriter"]

log = logging.getLogger("candlekeeper.sinks.writer")


class BatchingWriter:
    """Feeds one sink: flush on size or time, retry with capped backoff, bounded memory with an
    optional durable spill journal, drain on shutdown within a deadline.

    * **Batching**: a batch is written as soon as ``batch_size`` candles are pending, or when the
      oldest pending candle has waited ``flush_interval_s`` — whichever comes first. Large batches
      are what make storage fast (one transaction per batch); the interval bounds the latency.
    * **Failures**: a batch whose ``write`` raises is counted, logged at a limited rate, and retried
      after a capped, jittered exponential backoff (``retry_initial_s`` doubling up to
      ``retry_max_s``) until it succeeds. Order is preserved: newer candles wait behind it. A
      raise is always an outage, never a reason to drop data.
    * **Rejections**: candles the sink refuses as data it can never store come back from
      ``write`` (:class:`~candlekeeper.sinks.contract.Rejection`); they are not counted as
      written, are counted in ``stats.rejected``, logged in one rate-limited line, and never
      retried (retrying could not change the answer, and would block every newer candle).
    * **Outage journal** (``journal_dir``): when a write fails, or when more than
      ``spill_threshold`` candles wait in memory, everything held in memory (the failed batch
      included, oldest first) is appended to a local fsynced journal
      (:mod:`candlekeeper.sinks.journal`) on a worker thread. The journal is always drained
      first, in order, record by record (each record is acknowledged only once the sink stored
      it), then memory — so order is kept, a long outage costs disk instead of memory, and a
      crash or restart during the outage loses nothing: ``start()`` replays a non-empty journal
      before new data. Spills never happen while a batch from memory is being written, which is
      what keeps "journal before memory" true.
    * **Bounded memory**: at most ``max_pending`` candles are held in memory. Beyond that (no
      journal, or the journal is full/failing) the *oldest* queued candles are dropped, counted in
      ``stats.dropped`` and logged as errors: the last resort that keeps the process alive.
    * **Shutdown**: ``stop()`` keeps flushing (and retrying) until everything is written or the
      drain deadline passes; with a journal, what is left in memory is then spilled so the next
      start replays it; finally the sink is closed.
    * **Opening**: ``start()`` opens the sink and raises if it cannot (a configuration problem),
      unless ``retry_open`` is set — for network databases that may be down when the service
      starts: the failure is then logged and opening is retried with every write attempt while
      candles queue and spill. A ``ConfigError`` is raised even then: no retry can fix it.
    * **No secret in any output**: every exception text that reaches a log line or
      ``stats.last_error`` goes through the sink's ``redact(text) -> str`` when it has one, and
      always loses URL user info and ``password=`` values
      (:mod:`candlekeeper.observability.redact`).

    ``submit`` must be called from the event loop's thread (from another thread use
    ``loop.call_soon_threadsafe(writer.submit, candle)``); everything else is async.
    """

    def __init__(self, sink: Sink, options: WriterOptions | None = None, *,
                 retry_open: bool = False, **overrides: Any) -> None:
        """``options`` (or a config section, which is one) with any field overridden by
        keyword: ``BatchingWriter(sink, batch_size=100)``."""
        base = (options or WriterOptions()).writer_options()
        opts = base if not overrides else WriterOptions.model_validate(
            {**base.model_dump(), **overrides})
        self.options = opts
        batch_size, max_pending = opts.batch_size, opts.max_pending
        spill_threshold = opts.spill_threshold
        if spill_threshold is None:
            spill_threshold = min(max_pending, max(batch_size, 10_000))
        journal_dir = opts.journal_dir
        self.sink = sink
        self._batch_size = batch_size
        self._flush_interval = opts.flush_interval_s
        self._max_pending = max_pending
        self._retry_initial = opts.retry_initial_s
        self._retry_max = opts.retry_max_s
        self._write_timeout = opts.write_timeout_s
        self._spill_threshold = spill_threshold
        self._retry_open = retry_open
        self._spool = None if journal_dir is None else JournalSpool(
            journal_dir, name=sink.name, segment_bytes=opts.journal_segment_bytes,
            max_bytes=opts.journal_max_bytes)
        self._pending: deque[Candle] = deque()
        self._oldest_at = 0.0  # monotonic time the oldest queued candle was (about) submitted
        self._oldest_wall = 0.0  # the same in wall-clock seconds (for the age metric)
        self._inflight: list[Candle] = []
        self._inflight_wall = 0.0
        self._inflight_record: JournalRecord | None = None  # set when _inflight came from disk
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._opened = False
        self._failing = False
        self._spill_blocked_until = 0.0
        self._stopping = False
        self._stopped = False
        redact = getattr(sink, "redact", None)
        self._ledger = WriterLedger(sink.name, redact if callable(redact) else redact_text, log)

    # -- feed side ----------------------------------------------------------------------------
    def submit(self, candle: Candle) -> None:
        """Queue one closed candle for writing. O(1); never blocks and never raises."""
        if self._stopped:
            self._ledger.dropped_after_stop()
            return
        pending = self._pending
        if not pending:
            self._oldest_at = time.monotonic()
            self._oldest_wall = time.time()
        pending.append(candle)
        n = len(pending)
        if n + self._held_besides_queue() > self._max_pending:
            self._drop_oldest()
            n = len(pending)
        if n == 1 or n >= self._batch_size:
            self._wake.set()

    def _held_besides_queue(self) -> int:
        inflight = 0 if self._inflight_record is not None else len(self._inflight)
        return inflight + (len(self._spool.spilling) if self._spool is not None else 0)

    def _drop_oldest(self) -> None:
        dropped = 0
        pending = self._pending
        held = self._held_besides_queue()
        while pending and len(pending) + held > self._max_pending:
            pending.popleft()
            dropped += 1
        self._ledger.dropped_on_overflow(dropped, self._max_pending)

    @property
    def stats(self) -> WriterStats:
        spool = self._spool
        in_memory = len(self._pending) + self._held_besides_queue()
        journal_rows = 0 if spool is None else spool.rows
        oldest: float | None = None
        if self._inflight:
            oldest = self._inflight_wall
        if spool is not None and spool.oldest_ms is not None:
            oldest = min(oldest or math.inf, spool.oldest_ms / 1000)
        if self._pending:
            oldest = min(oldest or math.inf, self._oldest_wall)
        ledger = self._ledger
        return WriterStats(
            written=ledger.written,
            pending=in_memory + journal_rows,
            batches=ledger.batches,
            failures=ledger.failures,
            retries=ledger.retries,
            dropped=ledger.dropped,
            last_error=ledger.last_error,
            last_flush_monotonic=ledger.last_flush,
            in_memory=in_memory,
            journal_rows=journal_rows,
            journal_bytes=0 if spool is None else spool.bytes,
            spilled=ledger.spilled,
            replayed=ledger.replayed,
            journal_errors=ledger.journal_errors + (0 if spool is None
                                                    else spool.journal.undecodable_records),
            journal_corrupt_bytes=0 if spool is None else spool.journal.corrupt_bytes,
            oldest_pending_age_s=None if oldest is None else max(0.0, time.time() - oldest),
            rejected=ledger.rejected,
            last_rejection=ledger.last_rejection,
        )

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the journal (replaying a previous run's backlog first) and the sink, and start
        the flush task. Idempotent. See the class docstring for ``retry_open``."""
        if self._stopped:
            raise SinkError(f"writer for sink {self.sink.name!r} was stopped; make a new one")
        if self._task is not None:
            return
        if self._spool is not None:
            await self._spool.open()
        try:
            await self.sink.open()
            self._opened = True
        except Exception as exc:
            if not self._retry_open or isinstance(exc, ConfigError):
                if self._spool is not None:
                    await self._spool.close()
                raise
            self._note_failure(exc, 0, "opening")
        self._task = asyncio.create_task(self._run(), name=f"sink-writer:{self.sink.name}")

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Write everything pending (retrying failures) until done or ``drain_timeout_s`` passes.
        Then, with a journal, spill what is still in memory (the next start replays it); without
        one, log what is lost. Finally close the sink.

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
                crash = task.exception()  # a bug in the flush loop itself: show it
                assert crash is not None
                self._ledger.crashed(crash)
        self._stopped = True
        if self._spool is not None:
            await self._final_spill(self._spool)
        stats = self.stats
        ledger = self._ledger
        if stats.in_memory:
            log.error("sink %r: drain deadline (%.1fs) passed with %d candle(s) not written "
                      "(%d written, %d failures, last error: %s)", self.sink.name,
                      drain_timeout_s, stats.in_memory, ledger.written, ledger.failures,
                      ledger.last_error)
        elif stats.journal_rows:
            log.warning("sink %r: %d candle(s) not written yet are safe in the journal and will "
                        "be replayed on the next start (last error: %s)", self.sink.name,
                        stats.journal_rows, ledger.last_error)
        else:
            log.info("sink %r drained: %d candle(s) written in %d batch(es)", self.sink.name,
                     ledger.written, ledger.batches)
        if self._spool is not None:
            await self._spool.close()
        try:
            await self.sink.close()
        except Exception as exc:  # closing must not prevent the rest of a shutdown
            log.error("sink %r: close failed: %s", self.sink.name,
                      describe_error(exc, ledger.redact))

    async def _final_spill(self, spool: JournalSpool) -> None:
        """After the flush task ended: settle an interrupted spill, then journal what memory
        still holds (a batch read back from the journal is still there, unacknowledged)."""
        failed = await spool.settle()
        if failed:
            self._pending.extendleft(reversed(failed))
        if self._inflight_record is not None:
            self._inflight, self._inflight_record = [], None
        if self._inflight or self._pending:
            self._spill_blocked_until = 0.0
            await self._spill()

    # -- flush loop -----------------------------------------------------------------------------
    async def _run(self) -> None:
        delays: Iterator[float] | None = None
        while True:
            if not self._inflight and not await self._next_batch():
                return
            if await self._write_inflight():
                delays = None
                continue
            if self._spool is not None:
                await self._spill()  # the sink is failing: make what memory holds durable
            if delays is None:
                # the one backoff: doubling, capped, each wait drawn from [d/2, d]
                delays = backoff_delays(self._retry_initial, 2.0, self._retry_max, jitter=0.5)
            await self._backoff(next(delays))
            self._ledger.retries += 1

    async def _backoff(self, delay: float) -> None:
        """Sleep ``delay``, spilling meanwhile if memory passes the threshold."""
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)
            if self._want_spill():
                await self._spill()

    def _want_spill(self) -> bool:
        if self._spool is None or time.monotonic() < self._spill_blocked_until:
            return False
        memory = len(self._pending) + (0 if self._inflight_record else len(self._inflight))
        return memory > 0 and (self._failing or memory >= self._spill_threshold)

    async def _spill(self) -> None:
        """Move everything in memory (a failed in-memory batch first) to the journal, in order.
        Called only from the flush task between writes, so no batch from memory is in flight."""
        spool = self._spool
        if spool is None or time.monotonic() < self._spill_blocked_until:
            return
        chunk: list[Candle] = []
        oldest = self._oldest_wall
        if self._inflight and self._inflight_record is None:
            chunk, oldest = self._inflight, self._inflight_wall
            self._inflight = []
        if self._pending:
            oldest = min(oldest, self._oldest_wall) if chunk else self._oldest_wall
            chunk.extend(self._pending)
            self._pending.clear()
        if not chunk:
            return
        try:
            await spool.append(chunk, oldest_ms=int(oldest * 1000), record_rows=self._batch_size)
        except JournalError as exc:
            self._pending.extendleft(reversed(chunk))
            self._oldest_wall, self._oldest_at = oldest, time.monotonic()
            self._spill_blocked_until = time.monotonic() + self._retry_max
            self._ledger.journal_failed(
                "journal", "spilling %d candle(s) to the journal failed (%s); keeping them in "
                "memory (max_pending=%d)", len(chunk), exc, self._max_pending)
            return
        self._ledger.spilled += len(chunk)
        self._wake.set()

    async def _next_batch(self) -> bool:
        """Wait until a batch is due and move it to ``_inflight``: the journal's oldest record
        first, then memory. False when stopping and nothing is left."""
        pending = self._pending
        spool = self._spool
        while True:
            if self._want_spill():
                await self._spill()
            if spool is not None and spool.rows:
                record = await self._peek(spool)
                if record is not None:
                    self._inflight, self._inflight_record = record.candles, record
                    self._inflight_wall = record.oldest_ms / 1000
                    return True
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
            self._inflight_wall = self._oldest_wall
            if pending:
                # the rest arrived after the batch's oldest; "now" is a safe approximation that
                # flushes them at most one interval later (a full batch goes out immediately)
                self._oldest_at = time.monotonic()
                self._oldest_wall = time.time()
            return True

    async def _peek(self, spool: JournalSpool) -> JournalRecord | None:
        try:
            return await spool.peek()
        except JournalError as exc:  # unreadable journal: count, wait, try again
            self._ledger.journal_failed("journal-read", "%s", exc)
            await asyncio.sleep(self._retry_initial)
            return None

    async def _write_inflight(self) -> bool:
        batch = self._inflight
        try:
            # asyncio.timeout, not wait_for: no extra task per batch, and the counters below are
            # updated in the same step as the write completes
            async with asyncio.timeout(self._write_timeout):
                if not self._opened:
                    await self.sink.open()
                    self._opened = True
                rejected = await self.sink.write(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is retried; see Sink's contract
            self._note_failure(exc, len(batch), "writing")
            return False
        self._failing = False
        self._ledger.stored(len(batch), rejected)
        record, self._inflight_record = self._inflight_record, None
        self._inflight = []
        if record is not None and self._spool is not None:
            self._ledger.replayed += len(batch)
            try:
                await self._spool.ack(record)
            except JournalError as exc:  # a re-send after a restart is harmless (idempotent)
                self._ledger.journal_failed("journal-ack", "%s", exc)
        return True

    def _note_failure(self, exc: Exception, n: int, doing: str) -> None:
        self._failing = True
        self._ledger.failed(exc, n, doing, timeout_s=self._write_timeout,
                            pending=self.stats.pending)
