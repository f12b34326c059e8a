"""What a :class:`~candlekeeper.sinks.writer.BatchingWriter` counts, and how it reports each
outcome: one place for the wording, the rate limits, and the redaction of every text that can
reach a log line or ``/health`` (the writer itself only decides *what* happened).

Outcomes and their levels: a failed write is a WARNING (it is retried: nothing is lost yet); a
rejected candle is an ERROR (that store will never hold it); a dropped candle is an ERROR saying
DATA LOSS; journal trouble is an ERROR (the candles stay in memory). Each kind is rate-limited
per sink, so a failing backend cannot flood the log.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Sequence

from candlekeeper.core.ratelog import RateLimitedLog
from candlekeeper.observability.redact import describe_error
from candlekeeper.sinks.contract import Rejection, candle_id

__all__ = ["WriterLedger"]


class WriterLedger:
    """The counters behind ``WriterStats`` (plain ints: updated on the event loop, read by a
    scrape) and the log lines that go with them."""

    def __init__(self, sink_name: str, redact: Callable[[str], str],
                 logger: logging.Logger) -> None:
        self.sink_name = sink_name
        #: masks credentials in any text (the sink's own redactor when it has one)
        self.redact = redact
        self._log = logger
        self._rlog = RateLimitedLog(logger)
        self.written = 0
        self.batches = 0
        self.failures = 0
        self.retries = 0
        self.dropped = 0
        self.spilled = 0
        self.replayed = 0
        self.journal_errors = 0
        self.rejected = 0
        self.last_error: str | None = None
        self.last_rejection: str | None = None
        self.last_flush: float | None = None

    def stored(self, batch: int, rejected: Sequence[Rejection] | None) -> None:
        """A batch of ``batch`` candles went through; ``rejected`` of them were refused."""
        n_rejected = len(rejected) if rejected else 0
        self.written += batch - n_rejected
        self.batches += 1
        self.last_flush = time.monotonic()
        if rejected:
            self.rejected += n_rejected
            first = rejected[0]
            self.last_rejection = self.redact(f"{candle_id(first.candle)}: {first.reason}")
            self._rlog.error(
                f"reject:{self.sink_name}",
                "sink %r rejected %d candle(s) as data it can never store; not retried, %d "
                "rejected in total (first: %s)", self.sink_name, n_rejected, self.rejected,
                self.last_rejection)

    def failed(self, exc: Exception, n: int, doing: str, *, timeout_s: float | None,
               pending: int) -> None:
        """Opening or writing ``n`` candles failed; they are kept and retried."""
        self.failures += 1
        if isinstance(exc, TimeoutError):
            self.last_error = f"write timed out after {timeout_s}s"
        else:
            self.last_error = describe_error(exc, self.redact)
        self._rlog.warning(
            f"write:{self.sink_name}",
            "sink %r: %s %d candle(s) failed (%s); keeping them and retrying "
            "(%d failures, %d pending)", self.sink_name, doing, n, self.last_error,
            self.failures, pending)

    def dropped_after_stop(self) -> None:
        self.dropped += 1
        self._rlog.error(f"closed:{self.sink_name}",
                         "sink %r: candle submitted after stop() was dropped (%d in total)",
                         self.sink_name, self.dropped)

    def dropped_on_overflow(self, n: int, max_pending: int) -> None:
        self.dropped += n
        self._rlog.error(
            f"overflow:{self.sink_name}",
            "sink %r: pending buffer full (max_pending=%d); dropped %d oldest candle(s), "
            "%d dropped in total — DATA LOSS (last error: %s)",
            self.sink_name, max_pending, n, self.dropped, self.last_error)

    def journal_failed(self, kind: str, message: str, *args: object) -> None:
        """A journal operation failed (``message % args`` follows the sink's name)."""
        self.journal_errors += 1
        self._rlog.error(f"{kind}:{self.sink_name}", "sink %r: " + message, self.sink_name,
                         *args)

    def crashed(self, exc: BaseException) -> None:
        """The flush loop itself raised (a bug): its traceback, redacted."""
        self._log.error("sink %r writer task crashed: %s", self.sink_name, self.redact(
            "".join(traceback.format_exception(exc)).rstrip()))
