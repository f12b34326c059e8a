"""What a candle looks like on NATS: its subject, its deduplication id and its payload (pure).

Kept apart from the publisher so that consumers (``candlekeeper tail``, other services) share one
definition with the producer and so the rules are testable without a server.

**Subject.** ``<prefix>.<venue>.<symbol>.<interval>``, e.g. ``candles.<venue>.BTCUSDT.1m``.
NATS splits subjects on ``.`` and reserves ``*`` and ``>`` as wildcards; whitespace ends a subject
on the wire. Each token is therefore *sanitised*: every such character becomes ``_`` (so a symbol
written ``BTC.USDT`` publishes to ``...BTC_USDT...``). Sanitising can map two raw names onto one
subject, which is harmless for correctness because the deduplication id and the payload keep the
raw natural key; canonical symbols (uppercase, no separator) never collide.

**Deduplication id.** ``Nats-Msg-Id: <venue>:<symbol>:<interval>:<open_time>`` — the natural key,
raw. JetStream drops a message whose id it has seen within the stream's ``duplicate_window``, so
re-publishing a batch after a failed or lost ack stores nothing twice.

**Payload.** JSON of :class:`CandleMessage`, schema version ``v`` = :data:`SCHEMA_VERSION`. Prices
and volumes are the exchange's exact decimal *strings* (``"7.6170"``, trailing zeros kept): parse
them with ``Decimal``, never ``float``. Field meanings are those of
:class:`~candlekeeper.core.candle.Candle`; times are Unix milliseconds. Compatibility rule: a new
*optional* field may be added within a version; removing or changing a field bumps ``v``, and a
consumer should reject a ``v`` it does not know (:func:`decode_candle` does).
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

import msgspec

from candlekeeper.core.candle import Candle, CorrectedCandle, Source
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import DecodeError

__all__ = [
    "MSG_ID_HEADER",
    "SCHEMA_VERSION",
    "CandleMessage",
    "decode_candle",
    "encode_candle",
    "msg_id",
    "parse_msg_id",
    "sanitize_token",
    "subject_for",
    "validate_prefix",
]

SCHEMA_VERSION: Final = 1
MSG_ID_HEADER: Final = "Nats-Msg-Id"

#: characters a NATS subject token may not contain: separator, wildcards, whitespace/control
_UNSAFE: Final = re.compile(r"[.*>\s\x00-\x1f\x7f]")
#: a subject prefix: one or more safe tokens joined by dots (no wildcard, no empty token)
_PREFIX: Final = re.compile(r"[^.*>\s\x00-\x1f\x7f]+(\.[^.*>\s\x00-\x1f\x7f]+)*")


class CandleMessage(msgspec.Struct, frozen=True, omit_defaults=False, forbid_unknown_fields=False):
    """The payload schema, version 1 (see the module docstring). Unknown fields are ignored so a
    consumer keeps working when a producer adds an optional field."""

    v: int
    venue: str
    symbol: str
    interval: str
    open_time: int
    close_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str | None = None
    trades: int | None = None
    taker_buy_base_volume: str | None = None
    taker_buy_quote_volume: str | None = None
    first_trade_id: int | None = None
    last_trade_id: int | None = None
    closed: bool = True
    event_time: int | None = None
    source: Source = "ws"


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(CandleMessage)


def sanitize_token(text: str) -> str:
    """One subject token from a free-form name: ``.``, ``*``, ``>`` and whitespace become ``_``.
    Raises ``ValueError`` for an empty name (an empty token makes an invalid subject)."""
    if not text:
        raise ValueError("a subject token cannot be empty")
    return _UNSAFE.sub("_", text)


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a valid literal subject prefix (``candles``, ``prod.candles``);
    raise ``ValueError`` otherwise (wildcards, empty tokens, whitespace)."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"invalid NATS subject prefix {prefix!r}: dot-separated, non-empty "
                         "tokens without '*', '>' or whitespace")
    return prefix


def subject_for(prefix: str, key: StreamKey) -> str:
    """``<prefix>.<venue>.<symbol>.<interval>`` with each token sanitised."""
    return (f"{prefix}.{sanitize_token(key.venue)}.{sanitize_token(key.symbol)}."
            f"{sanitize_token(key.interval)}")


def msg_id(candle: Candle) -> str:
    """The JetStream deduplication id: the raw natural key ``venue:symbol:interval:open_time``;
    a correction (:class:`CorrectedCandle`) adds ``~`` and a digest of its market values, so
    JetStream keeps it (a later message for the same key replaces the first) while a resend of
    the same correction is still deduplicated."""
    key = f"{candle.venue}:{candle.symbol}:{candle.interval}:{candle.open_time}"
    if isinstance(candle, CorrectedCandle):
        values = "|".join(str(v) for v in (candle.open, candle.high, candle.low, candle.close,
                                           candle.volume))
        return f"{key}~{hashlib.blake2s(values.encode(), digest_size=6).hexdigest()}"
    return key


def parse_msg_id(text: str) -> tuple[StreamKey, int]:
    """Inverse of :func:`msg_id` (a correction's digest dropped); ``ValueError`` unless it is
    ``venue:symbol:interval:<int>[~digest]``."""
    head, sep, open_time = text.rpartition(":")
    open_time = open_time.partition("~")[0]
    parts = head.split(":")
    if not sep or len(parts) != 3 or not open_time.lstrip("-").isdigit():
        raise ValueError(f"not a candle message id: {text!r}")
    return StreamKey(*parts), int(open_time)


def encode_candle(candle: Candle) -> bytes:
    """The JSON payload of one candle (schema version :data:`SCHEMA_VERSION`)."""
    return _encoder.encode(CandleMessage(
        SCHEMA_VERSION, candle.venue, candle.symbol, candle.interval, candle.open_time,
        candle.close_time, candle.open_str, candle.high_str, candle.low_str, candle.close_str,
        candle.volume_str, candle.quote_volume_str, candle.trades,
        candle.taker_buy_base_volume_str, candle.taker_buy_quote_volume_str,
        candle.first_trade_id, candle.last_trade_id, candle.closed, candle.event_time,
        candle.source))


def decode_candle(data: bytes | str) -> Candle:
    """Parse a payload back into a :class:`Candle`, validating every decimal string.

    Raises :class:`~candlekeeper.errors.DecodeError` for malformed JSON, missing fields, an
    unknown schema version or a value that is not an exact decimal.
    """
    try:
        m = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"malformed candle message: {exc}") from exc
    if m.v != SCHEMA_VERSION:
        raise DecodeError(f"unsupported candle message schema v={m.v} "
                          f"(this candlekeeper reads v={SCHEMA_VERSION})")
    try:
        return Candle.of(m.venue, m.symbol, m.interval, m.open_time, m.close_time, m.open,
                         m.high, m.low, m.close, m.volume, m.quote_volume, m.trades,
                         m.taker_buy_base_volume, m.taker_buy_quote_volume, m.first_trade_id,
                         m.last_trade_id, m.closed, m.event_time, m.source)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"invalid value in candle message: {exc}") from exc
