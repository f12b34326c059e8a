"""One error hierarchy for the whole package.

Library exceptions (msgspec, picows, aiohttp, sqlite3, ...) are mapped onto these at the module
boundary with ``raise ... from exc`` so that callers only ever catch ``CandlekeeperError``.
"""

from __future__ import annotations

import enum


class CandlekeeperError(Exception):
    """Base class of every error candlekeeper raises on purpose."""


class ConfigError(CandlekeeperError):
    """Invalid configuration: unknown key, bad value, unknown venue, symbol or interval."""


class DecodeError(CandlekeeperError):
    """A frame or REST body that does not match the venue's documented format."""


class TransportError(CandlekeeperError):
    """A connection could not be opened, or broke."""


class BackfillError(CandlekeeperError):
    """REST history could not be fetched."""


class RestErrorKind(enum.StrEnum):
    """What a REST failure means for the caller (each venue's history codec decides which)."""

    RATE_LIMITED = "rate_limited"  # wait (every caller of the venue), then retry
    BANNED = "banned"  # the IP is banned until retry_after: every caller waits
    BAD_REQUEST = "bad_request"  # cannot succeed on retry (bad parameter, WAF refusal)
    UNKNOWN_SYMBOL = "unknown_symbol"  # the venue does not list the symbol
    SERVER_ERROR = "server_error"  # the venue's own trouble: retry with backoff


class RestError(BackfillError):
    """A REST call failed. ``kind`` says what the venue meant (None: no answer at all — a
    timeout or a connection error, worth retrying)."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None,
                 retry_after: float | None = None, kind: RestErrorKind | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.code = code
        self.retry_after = retry_after


class SinkError(CandlekeeperError):
    """A storage or publishing backend failed."""
