"""The service configuration: one typed, frozen, strict model tree.

Why it looks like this (architecture.md principle 9):

* **Strict.** An unknown key anywhere is an error naming the key, its path and the closest valid
  name (``sinks.sqlite.pth: unknown key (did you mean 'path'?)``). A typo must never silently
  become a default - cryptofeed's config did exactly that.
* **All problems at once.** :class:`ConfigValidationError` lists every problem found, so a user
  fixes the file in one pass instead of one error per run. Pydantic's tracebacks never escape.
* **Frozen.** The service is built from the config once; nothing mutates it afterwards, so it is
  safe to share between tasks and threads.
* **Venue-aware.** ``venue`` is checked against the registry of :class:`VenueSpec` and every
  interval against *that* venue's intervals (``1s`` exists on spot, not on USDⓈ-M); symbols are
  normalised to the canonical form (``BTC/USDT:USDT`` -> ``BTCUSDT``).

Sources, lowest priority first: model defaults, the YAML file, then environment variables
``CANDLEKEEPER__SECTION__KEY=value`` (double underscore = one level of nesting, list items by
index: ``CANDLEKEEPER__FEEDS__0__WS_URL``). See docs/configuration.md for every key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from candlekeeper.config_support import (
    CONFIG_PATH_ENV,
    ENV_PREFIX,
    ConfigValidationError,
    EnvOverrides,
    apply_env,
    did_you_mean,
    format_config_errors,
    pydantic_problems,
    read_yaml,
)
from candlekeeper.core.intervals import ALL_INTERVALS, INTERVAL_MS
from candlekeeper.core.shard import Shard
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.core.symbols import normalize_symbol
from candlekeeper.errors import ConfigError
from candlekeeper.venues.contract import VenueSpec
from candlekeeper.venues.registry import VENUES, get_spec

__all__ = [
    "CONFIG_PATH_ENV",
    "ENV_PREFIX",
    "ClockConfig",
    "Config",
    "ConfigValidationError",
    "FeedConfig",
    "GapFillConfig",
    "HttpConfig",
    "NatsSinkConfig",
    "ObservabilityConfig",
    "PostgresSinkConfig",
    "ShutdownConfig",
    "SinksConfig",
    "SqliteSinkConfig",
    "TransportConfig",
    "check_config",
    "format_config_errors",
    "known_venues",
    "load_config",
    "load_config_text",
]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def known_venues() -> Mapping[str, VenueSpec]:
    """Every venue id a config may name, from :mod:`candlekeeper.venues.registry` (the one place
    that knows every venue: registering a venue there makes it valid here too)."""
    return {venue: get_spec(venue) for venue in VENUES}


class _Section(BaseModel):
    """Base of every config model: unknown keys forbidden, immutable, empty section allowed."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_section(cls, data: Any) -> Any:
        # ``sinks:`` followed only by comments parses as None in YAML; treat it as "defaults".
        return {} if data is None else data


def _split_list(value: object, what: str) -> list[object]:
    """A YAML list, or a comma-separated string (handy in environment overrides)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    raise ValueError(f"expected a list of {what}, got {type(value).__name__} {value!r}")


class FeedConfig(_Section):
    """One venue: which symbols and intervals to stream from it, and where to connect."""

    venue: str
    symbols: tuple[str, ...] | Literal["all"]
    intervals: tuple[str, ...] = ("1m",)
    testnet: bool = False
    ws_url: str | None = None
    rest_url: str | None = None

    @field_validator("venue")
    @classmethod
    def _venue(cls, value: str) -> str:
        venues = known_venues()
        if value not in venues:
            raise ValueError(
                f"unknown venue {value!r}{did_you_mean(value, tuple(venues))}; "
                f"known venues: {', '.join(sorted(venues))}"
            )
        return value

    @field_validator("symbols", mode="plain")
    @classmethod
    def _symbols(cls, value: object) -> tuple[str, ...] | Literal["all"]:
        if isinstance(value, str) and value.strip().lower() == "all":
            return "all"
        items = _split_list(value, "symbols (or 'all')")
        if len(items) == 1 and isinstance(items[0], str) and items[0].lower() == "all":
            return "all"
        if not items:
            raise ValueError("at least one symbol is required (or 'all')")
        seen: dict[str, None] = {}
        problems: list[str] = []
        for item in items:
            if not isinstance(item, str):
                problems.append(f"{item!r} is not a symbol (quote it in YAML)")
                continue
            try:
                seen[normalize_symbol(item)] = None
            except ConfigError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
        return tuple(seen)

    @field_validator("intervals", mode="plain")
    @classmethod
    def _intervals(cls, value: object, info: ValidationInfo) -> tuple[str, ...]:
        items = _split_list(value, "intervals")
        if not items:
            raise ValueError("at least one interval is required")
        venue = info.data.get("venue")
        spec = known_venues().get(venue) if isinstance(venue, str) else None
        allowed = spec.intervals if spec else ALL_INTERVALS
        bad = [i for i in items if not isinstance(i, str) or i not in allowed]
        if bad:
            where = f" for {spec.id}" if spec else ""
            hints = "".join(
                f" ({b!r}: intervals are case-sensitive, did you mean {b.lower()!r}?)"
                for b in bad
                if isinstance(b, str) and b.lower() in allowed
            )
            names = ", ".join(repr(b) for b in bad)
            raise ValueError(
                f"unknown interval{'s' if len(bad) > 1 else ''} {names}{where}; "
                f"allowed: {', '.join(allowed)}{hints}"
            )
        unique = dict.fromkeys(str(i) for i in items)
        return tuple(sorted(unique, key=INTERVAL_MS.__getitem__))

    @field_validator("ws_url")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        # ws:// is allowed on purpose: the simulator and local tests listen on plain ws://.
        if value is not None and not value.startswith(("ws://", "wss://")):
            raise ValueError(f"must start with ws:// or wss://, got {value!r}")
        return value.rstrip("/") if value else value

    @field_validator("rest_url")
    @classmethod
    def _rest_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/") if value else value

    @property
    def spec(self) -> VenueSpec:
        return known_venues()[self.venue]

    @property
    def all_symbols(self) -> bool:
        """True when ``symbols: all``: resolve the list from the venue's exchangeInfo."""
        return self.symbols == "all"

    @property
    def ws_base(self) -> str:
        """The WebSocket base URL to use: the override, else testnet or production."""
        spec = self.spec
        return self.ws_url or (spec.ws_testnet_base if self.testnet else spec.ws_base)

    @property
    def rest_base(self) -> str:
        spec = self.spec
        return self.rest_url or (spec.rest_testnet_base if self.testnet else spec.rest_base)

    def stream_keys(self, symbols: tuple[str, ...] | list[str] | None = None) -> list[StreamKey]:
        """Every ``(venue, symbol, interval)``; pass ``symbols`` when the config says ``all``."""
        if symbols is None:
            if self.symbols == "all":
                raise ConfigError(f"{self.venue}: symbols is 'all'; resolve them first")
            symbols = self.symbols
        return [StreamKey(self.venue, s, i) for s in symbols for i in self.intervals]


class TransportConfig(_Section):
    """Connection policy; field names match ``candlekeeper.transport.TransportOptions``."""

    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_factor: float = Field(default=2.0, ge=1)
    backoff_max_s: float = Field(default=60.0, gt=0)
    backoff_jitter: float = Field(default=0.2, ge=0, le=1)
    healthy_after_s: float = Field(default=30.0, ge=0)
    ack_timeout_s: float = Field(default=10.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    stall_grace_ms: int = Field(default=5_000, ge=0)
    max_streams_per_connection: int | None = Field(default=None, ge=1)
    rotate_after_s: float | None = Field(default=84_600.0, gt=0)  # 23.5 h, before the 24 h cut

    @model_validator(mode="after")
    def _backoff_order(self) -> TransportConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s}) must be >= backoff_initial_s "
                f"({self.backoff_initial_s})"
            )
        return self


class SqliteSinkConfig(_Section):
    enabled: bool = True
    path: Path = Path("candles.sqlite")
    batch_size: int = Field(default=500, ge=1, le=100_000)
    flush_interval_s: float = Field(default=0.5, gt=0)
    max_pending: int = Field(default=1_000_000, ge=1)
    retry_initial_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)


class _WriterConfig(_Section):
    """Batching and outage behaviour shared by every sink's writer."""

    batch_size: int = Field(default=500, ge=1, le=100_000)
    flush_interval_s: float = Field(default=0.2, gt=0)
    max_pending: int = Field(default=1_000_000, ge=1)
    retry_initial_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    #: spill to this durable journal while the backend is down (None: memory only)
    journal_dir: Path | None = None


class PostgresSinkConfig(_WriterConfig):
    """PostgreSQL (TimescaleDB hypertable when available, native partitioning otherwise)."""

    enabled: bool = False
    dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/postgres")
    schema_name: str = Field(default="public", alias="schema")
    layout: Literal["auto", "partitioned", "timescaledb"] = "auto"
    pool_max_size: int = Field(default=4, ge=1)
    batch_size: int = Field(default=10_000, ge=1, le=1_000_000)
    journal_dir: Path | None = Path(".candlekeeper-journal/postgres")

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True,
                              populate_by_name=True)


class NatsSinkConfig(_WriterConfig):
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


class SinksConfig(_Section):
    sqlite: SqliteSinkConfig = SqliteSinkConfig()
    postgres: PostgresSinkConfig = PostgresSinkConfig()
    nats: NatsSinkConfig = NatsSinkConfig()


class HttpConfig(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65_535)


class ObservabilityConfig(_Section):
    http: HttpConfig = HttpConfig()
    log_level: LogLevel = "INFO"
    log_json: bool = False
    dashboard: bool = True
    dashboard_refresh_hz: float = Field(default=2.0, gt=0, le=20)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class ShutdownConfig(_Section):
    drain_timeout_s: float = Field(default=10.0, ge=0)


class ClockConfig(_Section):
    """Venue time. Leave it alone against a real exchange; set it to follow an accelerated
    simulator running in another process (``candlekeeper simulate`` prints the values)."""

    speed: float = Field(default=1.0, gt=0)
    start_ms: int | None = None
    monotonic_origin: float | None = None


class GapFillConfig(_Section):
    """REST warm-up and backfill (see docs/guarantees.md)."""

    enabled: bool = True
    #: candles per stream fetched at start when storage has nothing for it (0 = none)
    history: int | None = Field(default=None, ge=0)  # None = buffer_size
    #: store and emit those warm-up candles too (off: they only fill latest())
    emit_history: bool = True
    close_grace_ms: int = Field(default=3_000, ge=0)
    close_grace_wall_s: float = Field(default=0.5, ge=0)
    max_hole_attempts: int = Field(default=5, ge=1)


class Config(_Section):
    """The whole service configuration (docs/configuration.md documents every key)."""

    feeds: tuple[FeedConfig, ...]
    buffer_size: int = Field(default=500, ge=1, le=1_000_000)
    transport: TransportConfig = TransportConfig()
    sinks: SinksConfig = SinksConfig()
    observability: ObservabilityConfig = ObservabilityConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    gap_fill: GapFillConfig = GapFillConfig()
    clock: ClockConfig = ClockConfig()
    #: ``K/N``: this instance ingests only the symbols of shard K (0-based) of N
    shard: str | None = None

    @field_validator("shard")
    @classmethod
    def _shard(cls, value: str | None) -> str | None:
        if value is not None:
            Shard.parse(value)  # raises ConfigError with the reason
        return value

    @field_validator("feeds")
    @classmethod
    def _one_entry_per_venue(cls, feeds: tuple[FeedConfig, ...]) -> tuple[FeedConfig, ...]:
        # checked here rather than with Field(min_length=1): pydantic reports the length check
        # as a second, spurious problem whenever any item is invalid
        if not feeds:
            raise ValueError("at least one feed is required")
        first: dict[str, int] = {}
        for i, feed in enumerate(feeds):
            if feed.venue in first:
                raise ValueError(
                    f"feeds[{i}]: venue {feed.venue!r} is already configured in "
                    f"feeds[{first[feed.venue]}]; list all its symbols in one entry"
                )
            first[feed.venue] = i
        return feeds

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None,
                  env_origins: Mapping[tuple[str | int, ...], str] | None = None) -> Config:
        """Validate a plain mapping; raise :class:`ConfigValidationError` listing all problems."""
        if not isinstance(data, Mapping):
            raise ConfigValidationError(
                [f"expected a mapping at the top level, got {type(data).__name__}"], source)
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            problems = pydantic_problems(cls, exc, env_origins or {})
            raise ConfigValidationError(problems, source) from None

    def stream_keys(self) -> list[StreamKey]:
        """Every configured stream (feeds with ``symbols: all`` are skipped: resolve them)."""
        return [k for f in self.feeds if not f.all_symbols for k in f.stream_keys()]


# -- loading --------------------------------------------------------------------------------------


def load_config_text(text: str, env: Mapping[str, str] | None = None, *,
                     source: str = "<string>") -> Config:
    """Parse YAML ``text``, apply ``env`` overrides (none by default) and validate."""
    problems: list[str] = []
    data = read_yaml(text, source, problems)
    return _finish(data, env or {}, source, problems)


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Load the YAML file at ``path`` and apply environment overrides.

    ``env`` defaults to ``os.environ``. When ``path`` is None, ``$CANDLEKEEPER_CONFIG`` names the
    file; with neither, the config comes from defaults + environment alone. Raises
    :class:`ConfigValidationError` (a :class:`ConfigError`) listing every problem.
    """
    if env is None:
        import os

        env = os.environ
    if path is None and env.get(CONFIG_PATH_ENV):
        path = env[CONFIG_PATH_ENV]
    if path is None:
        return _finish({}, env, "environment", [])
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigValidationError([f"file not found: {file}"], str(file)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigValidationError([f"cannot read file: {exc}"], str(file)) from None
    problems: list[str] = []
    data = read_yaml(text, str(file), problems)
    return _finish(data, env, str(file), problems)


def _finish(data: object, env: Mapping[str, str], source: str, problems: list[str]) -> Config:
    if problems:
        raise ConfigValidationError(problems, source)
    overrides: EnvOverrides = apply_env(data, env)
    if not isinstance(overrides.data, Mapping):
        raise ConfigValidationError(
            [f"expected a mapping at the top level, got {type(overrides.data).__name__}"], source)
    try:
        config = Config.from_dict(overrides.data, source=source, env_origins=overrides.origins)
    except ConfigValidationError as exc:
        # report bad variables and model problems together: one pass fixes everything
        raise ConfigValidationError([*overrides.problems, *exc.problems], source) from None
    if overrides.problems:
        raise ConfigValidationError(overrides.problems, source)
    return config


def check_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> list[str]:
    """Every problem in the config (empty when valid): what ``candlekeeper config check`` prints."""
    try:
        load_config(path, env)
    except ConfigValidationError as exc:
        return list(exc.problems)
    except ConfigError as exc:
        return [str(exc)]
    return []
