"""The ``sinks`` section: SQLite, PostgreSQL and NATS, each behind its own writer.

Names the sinks build SQL and subjects from are checked here by the sinks' own rules (imported,
not copied), and, for enabled sinks, the paths they will create or open, so that ``config
check`` saying OK means the sinks can start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from candlekeeper.config_checks import (
    check_dir_path,
    check_dsn,
    check_file_path,
    check_server_url,
)
from candlekeeper.config_support import Section
from candlekeeper.errors import ConfigError
from candlekeeper.sinks.nats_schema import validate_prefix
from candlekeeper.sinks.options import WriterOptions
from candlekeeper.sinks.postgres_schema import quote_ident

__all__ = ["NatsSinkConfig", "PostgresSinkConfig", "SinksConfig", "SqliteSinkConfig"]


class SqliteSinkConfig(WriterOptions):
    """The embedded default. Its writer keys are :class:`WriterOptions`' (same defaults); no
    journal by default: the file is local, an outage is a full disk or a lock."""

    enabled: bool = True
    path: Path = Path("candles.sqlite")

    @model_validator(mode="after")
    def _usable_path(self) -> SqliteSinkConfig:
        if self.enabled:
            from candlekeeper.sinks.sqlite import SQLiteSink

            try:  # the sink's own rule (":memory:" and "file:" URIs are refused)
                SQLiteSink(self.path)
            except ConfigError as exc:
                raise ValueError(f"path: {_sink_reason(exc)}") from None
            check_file_path(self.path, what="sinks.sqlite.path")
        return self


def _sink_reason(exc: ConfigError) -> str:
    """A sink's constructor error without its ``"<kind> sink 'name': "`` prefix."""
    text = str(exc)
    head, sep, rest = text.partition(": ")
    return rest if sep and " sink " in head else text


class _NetworkWriterConfig(WriterOptions):
    """A network backend's writer: flushed more often than SQLite's (0.2 s: a round trip per
    batch is cheap next to the latency a consumer sees) and journalled by default, because a
    database or message bus can be away for a long time."""

    flush_interval_s: float = Field(default=0.2, ge=0)

    def _check_journal(self, sink: str) -> None:
        if self.journal_dir is not None:
            try:
                check_dir_path(self.journal_dir, what=f"sinks.{sink}.journal_dir")
            except ValueError as exc:
                raise ValueError(f"journal_dir: {exc}") from None


class PostgresSinkConfig(_NetworkWriterConfig):
    """PostgreSQL (TimescaleDB hypertable when available, native partitioning otherwise)."""

    enabled: bool = False
    dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/postgres")
    schema_name: str = Field(default="public", alias="schema")
    layout: Literal["auto", "partitioned", "timescaledb"] = "auto"
    pool_max_size: int = Field(default=4, ge=1)
    batch_size: int = Field(default=10_000, ge=1, le=1_000_000)
    journal_dir: Path | None = Path(".candlekeeper-journal/postgres")

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True,
                              populate_by_name=True, allow_inf_nan=False)

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, value: SecretStr) -> SecretStr:
        check_dsn(value.get_secret_value())  # its messages never quote the DSN
        return value

    @field_validator("schema_name")
    @classmethod
    def _schema(cls, value: str) -> str:
        try:
            quote_ident(value)  # the rule the sink builds its SQL with
        except ValueError as exc:
            raise ValueError(f"{exc} (lower-case letters, digits and '_', not starting with "
                             "a digit, at most 48 characters)") from None
        return value

    @model_validator(mode="after")
    def _paths(self) -> PostgresSinkConfig:
        if self.enabled:
            self._check_journal("postgres")
        return self


class NatsSinkConfig(_NetworkWriterConfig):
    """NATS JetStream: one message per closed candle on ``<prefix>.<venue>.<symbol>.<interval>``,
    deduplicated by the natural key."""

    enabled: bool = False
    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    stream: str = "CANDLES"
    subject_prefix: str = "candles"
    duplicate_window_s: float = Field(default=600.0, gt=0)
    max_age_s: float | None = Field(default=604_800.0, gt=0)
    storage: Literal["file", "memory"] = "file"
    replicas: int = Field(default=1, ge=1)
    create_stream: bool = True
    ack_timeout_s: float = Field(default=10.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    creds_file: Path | None = None
    journal_dir: Path | None = Path(".candlekeeper-journal/nats")

    @field_validator("servers")
    @classmethod
    def _servers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one server URL is required")
        for i, url in enumerate(value):
            check_server_url(url, what=f"servers[{i}]")  # never quoted: it may hold a password
        return value

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return validate_prefix(value)  # the rule the sink builds its subjects with

    @model_validator(mode="after")
    def _as_the_sink_sees_it(self) -> NatsSinkConfig:
        from candlekeeper.sinks.nats import NatsSink

        try:  # the sink's own checks: stream name, max_age_s vs duplicate_window_s, ...
            NatsSink(list(self.servers), stream=self.stream, subject_prefix=self.subject_prefix,
                     duplicate_window_s=self.duplicate_window_s, max_age_s=self.max_age_s,
                     storage=self.storage, replicas=self.replicas,
                     create_stream=self.create_stream, ack_timeout_s=self.ack_timeout_s,
                     connect_timeout_s=self.connect_timeout_s)
        except ConfigError as exc:
            raise ValueError(_sink_reason(exc)) from None
        if self.enabled:
            self._check_journal("nats")
            if self.creds_file is not None and not self.creds_file.is_file():
                raise ValueError(f"creds_file: {self.creds_file} is not a file")
        return self


class SinksConfig(Section):
    sqlite: SqliteSinkConfig = SqliteSinkConfig()
    postgres: PostgresSinkConfig = PostgresSinkConfig()
    nats: NatsSinkConfig = NatsSinkConfig()
