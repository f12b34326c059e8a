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

The sections live beside this module: ``config_feeds`` (feeds and their groups),
``config_sinks``, ``config_checks`` (URLs, hosts, paths), ``config_yaml`` (the strict reader) and
``config_support`` (environment overrides, the base section, one line per problem, secrets).

Sources, lowest priority first: model defaults, the YAML file, then environment variables
``CANDLEKEEPER__SECTION__KEY=value`` (double underscore = one level of nesting, list items by
index: ``CANDLEKEEPER__FEEDS__0__WS_URL``). See docs/configuration.md for every key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from candlekeeper.backfill.options import RestOptions
from candlekeeper.config_checks import check_bind_host, is_loopback
from candlekeeper.config_feeds import FeedConfig, StreamGroup, known_venues
from candlekeeper.config_sinks import (
    NatsSinkConfig,
    PostgresSinkConfig,
    SinksConfig,
    SqliteSinkConfig,
)
from candlekeeper.config_support import (
    CONFIG_PATH_ENV,
    ENV_PREFIX,
    MAX_YAML_BYTES,
    ConfigValidationError,
    EnvOverrides,
    Section,
    apply_env,
    format_config_errors,
    pydantic_problems,
    read_yaml,
    secret_paths,
    secret_values,
)
from candlekeeper.core.shard import Shard
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError
from candlekeeper.gapfill import MAX_WARMUP_HISTORY, GapFillOptions
from candlekeeper.transport.options import TransportOptions

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
    "RestConfig",
    "ShutdownConfig",
    "SinksConfig",
    "SqliteSinkConfig",
    "StreamGroup",
    "TransportConfig",
    "check_config",
    "format_config_errors",
    "known_venues",
    "load_config",
    "load_config_text",
]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

#: ``clock.speed`` cap: beyond a million venue seconds per wall second every candle closes
#: within microseconds of the next, which nothing downstream can follow
MAX_CLOCK_SPEED = 1_000_000.0
#: 9999-12-31T23:59:59.999Z: the latest time a candle (and ``clock.start_ms``) can have
MAX_TIME_MS = 253_402_300_799_999


#: the ``transport:`` section is the transport's own options model (one definition)
TransportConfig = TransportOptions


class HttpConfig(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65_535)
    #: the read-only web page (``GET /``) and its API next to /metrics and /health. None
    #: (default): on at a loopback address or with a token, off otherwise (a service that
    #: exposes /metrics to a scraper keeps starting, without showing its candles to the
    #: network); true beyond loopback needs a token
    web: bool | None = None
    #: required by the page and its API when set; required to serve them beyond loopback
    token: SecretStr | None = None

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_bind_host(value)

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None  # an empty override (``CANDLEKEEPER__...__TOKEN=``) means none
        return value

    @property
    def serves_page(self) -> bool:
        """Whether the web page is served (``web``, or its default: see the field)."""
        if self.web is not None:
            return self.web
        return self.token is not None or is_loopback(self.host)

    @model_validator(mode="after")
    def _exposed_page_needs_token(self) -> HttpConfig:
        # candles and stream states are nobody else's business: a page reachable from other
        # machines must ask for a token (metrics and health stay open for scrapers and probes)
        if self.enabled and self.web is True and self.token is None \
                and not is_loopback(self.host):
            raise ValueError(
                f"the web page would be served on {self.host} (beyond this machine) without a "
                "token: set observability.http.token, or web: false, or host: 127.0.0.1")
        return self


class ObservabilityConfig(Section):
    http: HttpConfig = HttpConfig()
    log_level: LogLevel = "INFO"
    log_json: bool = False
    dashboard: bool = True
    dashboard_refresh_hz: float = Field(default=2.0, gt=0, le=20)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class ShutdownConfig(Section):
    drain_timeout_s: float = Field(default=10.0, ge=0)


class ClockConfig(Section):
    """Venue time. Leave it alone against a real exchange; set it to follow an accelerated
    simulator running in another process (``candlekeeper simulate`` prints the values)."""

    speed: float = Field(default=1.0, gt=0, le=MAX_CLOCK_SPEED)
    start_ms: int | None = Field(default=None, ge=0, le=MAX_TIME_MS)
    monotonic_origin: float | None = Field(default=None, ge=0)


#: the ``gap_fill:`` section is the gap filler's own options model (one definition)
GapFillConfig = GapFillOptions
#: the ``rest:`` section is the REST client's own options model (one definition)
RestConfig = RestOptions


class Config(Section):
    """The whole service configuration (docs/configuration.md documents every key)."""

    feeds: tuple[FeedConfig, ...]
    buffer_size: int = Field(default=500, ge=1, le=1_000_000)
    transport: TransportOptions = TransportOptions()
    sinks: SinksConfig = SinksConfig()
    observability: ObservabilityConfig = ObservabilityConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    gap_fill: GapFillOptions = GapFillOptions()
    rest: RestOptions = RestOptions()
    clock: ClockConfig = ClockConfig()
    #: ``K/N``: this instance ingests only the symbols of shard K (0-based) of N
    shard: str | None = None

    @field_validator("shard")
    @classmethod
    def _shard(cls, value: str | None) -> str | None:
        if value is not None:
            Shard.parse(value)  # raises ConfigError with the reason
        return value

    @model_validator(mode="after")
    def _warmup_fits(self) -> Config:
        # history defaults to buffer_size, which may be set far higher than a warm-up should be
        if self.gap_fill.enabled and self.gap_fill.history is None \
                and self.buffer_size > MAX_WARMUP_HISTORY:
            raise ValueError(f"gap_fill.history defaults to buffer_size ({self.buffer_size:,}), "
                             f"above the warm-up cap of {MAX_WARMUP_HISTORY:,}: set "
                             "gap_fill.history explicitly")
        return self

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
                    f"feeds[{first[feed.venue]}]; list all its symbols in one entry (use "
                    "groups for different intervals per symbol)"
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
            raise ConfigValidationError(problems, source,
                                        secrets=secret_values(data, secret_paths(cls))) from None
        except RecursionError:  # a recursive structure built in Python (YAML refuses them)
            raise ConfigValidationError(["the configuration refers to itself"], source) from None

    def stream_keys(self) -> list[StreamKey]:
        """Every stream listed by name (groups with ``symbols: all`` are skipped: resolve
        them with :meth:`FeedConfig.stream_keys`)."""
        return [k for f in self.feeds for k in f.explicit_keys()]


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
        if file.is_dir():
            raise ConfigValidationError([f"{file} is a directory, not a file"], str(file))
        with file.open("rb") as f:
            raw = f.read(MAX_YAML_BYTES + 1)
        if len(raw) > MAX_YAML_BYTES:
            raise ConfigValidationError(
                [f"the file is larger than {MAX_YAML_BYTES >> 20} MiB; refusing it"], str(file))
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigValidationError([f"file not found: {file}"], str(file)) from None
    except UnicodeDecodeError as exc:
        raise ConfigValidationError([f"not UTF-8 text (byte {exc.start})"], str(file)) from None
    except OSError as exc:
        raise ConfigValidationError([f"cannot read file: {exc.strerror or exc}"],
                                    str(file)) from None
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
        raise ConfigValidationError(
            overrides.problems, source,
            secrets=secret_values(overrides.data, secret_paths(Config)))
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
