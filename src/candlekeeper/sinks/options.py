"""The writer's options: one model for the library's ``BatchingWriter`` and every sink section
of the service config (``sinks.sqlite``, ``sinks.postgres``, ``sinks.nats`` subclass it, adding
their backend's own keys and, where the backend warrants it, their own defaults)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from candlekeeper.core.options import Options

__all__ = ["WriterOptions"]


class WriterOptions(Options):
    """How a writer batches, retries and spills: the library's ``BatchingWriter(sink, options)``
    and every ``sinks.<name>:`` section of the service config (which add the backend's own keys
    and may choose other defaults for it) are this one model."""

    #: flush when this many candles are queued ...
    batch_size: int = Field(default=500, ge=1, le=1_000_000)
    #: ... or when the oldest has waited this long
    flush_interval_s: float = Field(default=0.5, ge=0)
    #: candles held in memory at most (beyond: spilled to the journal, or dropped and counted)
    max_pending: int = Field(default=1_000_000, ge=1)
    #: the one backoff policy between failed writes: first wait and cap
    retry_initial_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    #: a write that takes longer counts as failed (None: no limit)
    write_timeout_s: float | None = Field(default=60.0, gt=0)
    #: spill to this durable journal while the backend is down (None: memory only)
    journal_dir: Path | None = None
    #: queued candles beyond which they go to the journal (None: min(max_pending, 10,000))
    spill_threshold: int | None = Field(default=None, ge=1)
    journal_segment_bytes: int = Field(default=64 << 20, ge=4096)
    #: journal size cap (None: none)
    journal_max_bytes: int | None = Field(default=None, ge=4096)

    @model_validator(mode="after")
    def _consistent(self) -> WriterOptions:
        if self.max_pending < self.batch_size:
            raise ValueError(f"max_pending ({self.max_pending}) must be >= batch_size "
                             f"({self.batch_size})")
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError(f"retry_initial_s ({self.retry_initial_s}) must be <= "
                             f"retry_max_s ({self.retry_max_s})")
        if self.spill_threshold is not None and self.spill_threshold > self.max_pending:
            raise ValueError("spill_threshold must be between 1 and max_pending")
        return self

    def writer_options(self) -> WriterOptions:
        """Just the writer's part (a config section carries its backend's keys too)."""
        return WriterOptions.model_validate(
            {name: getattr(self, name) for name in WriterOptions.model_fields})
