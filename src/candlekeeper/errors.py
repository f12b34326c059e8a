"""One error hierarchy for the whole package.

Library exceptions (msgspec, picows, aiohttp, sqlite3, ...) are mapped onto these at the module
boundary with ``raise ... from exc`` so that callers only ever catch ``CandlekeeperError``.
"""

from __future__ import annotations


class CandlekeeperError(Exception):
    """Base class of every error candlekeeper raises on purpose."""


class ConfigError(CandlekeeperError):
    """Invalid configuration: unknown key, bad value, unknown venue, symbol or interval."""


class DecodeError(CandlekeeperError):
    """A frame or REST body that does not match the venue's documented format."""


class TransportError(CandlekeeperError):
    """A connection could not be opened, or broke."""


class SubscriptionError(TransportError):
    """The venue refused a subscription (error frame, unknown stream, stream cap)."""


class BackfillError(CandlekeeperError):
    """REST history could not be fetched."""


class RestError(BackfillError):
    """A REST call failed with an HTTP or venue error code."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class SinkError(CandlekeeperError):
    """A storage or publishing backend failed."""
