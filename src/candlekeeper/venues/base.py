"""What every venue adapter provides, as data and pure functions.

A venue is a :class:`VenueSpec` (URLs, limits, intervals — data, not subclasses) plus a codec
that satisfies :class:`VenueCodec`. Codecs are Sans-I/O: they turn a received frame into one
message object and build outgoing frames; they never touch a socket, a loop or a clock. The
transport is venue-agnostic and only moves bytes between a socket and a codec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.stream_key import StreamKey


class VenueSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Static facts about one venue (see ../shared/docs/protocols.md for the sources)."""

    id: str
    ws_base: str
    rest_base: str
    ws_testnet_base: str
    rest_testnet_base: str
    intervals: tuple[str, ...]
    max_streams_per_connection: int
    control_messages_per_second: float
    rest_klines_path: str
    rest_max_limit: int
    #: ``(upper_bound_exclusive, weight)`` tiers for one klines call by its ``limit``
    rest_klines_weights: tuple[tuple[int, int], ...]
    rest_weight_limit_per_minute: int
    exchange_info_path: str
    exchange_info_weight: int
    update_cadence_ms: int
    max_streams_per_subscribe: int = 200
    close_frame_max_delay_ms: int = 2_000
    connection_lifetime_s: int = 24 * 3600
    server_ping_interval_s: float = 180.0
    #: True when pushes say a candle is final (Binance ``x``). False (BingX): the feed infers a
    #: close from the first push with a later open time and confirms it over REST.
    closed_flag: bool = True
    #: further ``(window_s, limit)`` REST budgets besides the per-minute one, each request
    #: charged its weight (BingX: 500 requests per 10 s on top of 1000 per minute)
    rest_extra_windows: tuple[tuple[float, int], ...] = ()
    #: response header with the weight the IP used in the current minute (Binance), if any
    rest_used_weight_header: str | None = "X-MBX-USED-WEIGHT-1M"
    #: response headers with the requests left in the venue's *shortest* window and when that
    #: window expires (BingX ``X-RateLimit-Requests-Remain`` / ``-Expire``), if any
    rest_remain_header: str | None = None
    rest_expire_header: str | None = None
    #: error codes in a response body that mean "rate limited" like an HTTP 429 (BingX 100410)
    rest_rate_limit_codes: tuple[int, ...] = ()


# -- messages a codec decodes a frame into (besides Candle) -----------------------------------


class Ack(msgspec.Struct, frozen=True):
    """A successful reply to a control request (``{"result":null,"id":1}``)."""

    request_id: int | str | None
    result: object = None


class ErrorReply(msgspec.Struct, frozen=True):
    """The venue refused a request (``{"error":{"code":2,"msg":"..."},"id":2}``)."""

    request_id: int | str | None
    code: int
    msg: str


class Reply(msgspec.Struct, frozen=True):
    """A frame the transport must send back at once (e.g. BingX ``Pong``)."""

    payload: str


class ServerShutdown(msgspec.Struct, frozen=True):
    """The venue announced it will close the connection soon: reconnect proactively."""

    ts_ms: int


class Malformed(msgspec.Struct, frozen=True):
    """A frame that could not be decoded; counted and dropped, never fatal."""

    reason: str
    snippet: str


class Ignored(msgspec.Struct, frozen=True):
    """A well-formed frame we do not need (another event type)."""

    what: str


Message = Candle | Ack | ErrorReply | Reply | ServerShutdown | Malformed | Ignored


def klines_weight(spec: VenueSpec, limit: int) -> int:
    """REST weight of one klines call with this ``limit``."""
    for upper, weight in spec.rest_klines_weights:
        if limit < upper:
            return weight
    return spec.rest_klines_weights[-1][1]


def klines_rest_request(spec: VenueSpec, native_symbol: str, interval: str, *,
                        start_time: int | None, end_time: int | None,
                        limit: int | None) -> RestRequest:
    """``GET <klines path>?symbol=&interval=&limit=[&startTime=][&endTime=]`` — the same
    parameters on Binance (spot, USDⓈ-M) and BingX; only the path, limits and weights differ."""
    from candlekeeper.errors import ConfigError

    limit = spec.rest_max_limit if limit is None else limit
    if not 1 <= limit <= spec.rest_max_limit:
        raise ConfigError(f"limit must be in [1, {spec.rest_max_limit}], got {limit}")
    params: dict[str, str | int] = {"symbol": native_symbol, "interval": interval,
                                    "limit": limit}
    if start_time is not None:
        params["startTime"] = start_time
    if end_time is not None:
        params["endTime"] = end_time
    return RestRequest("GET", spec.rest_klines_path, params, klines_weight(spec, limit))


class RestRequest(msgspec.Struct, frozen=True):
    """A REST call described as data; the HTTP client executes it."""

    method: str
    path: str
    params: Mapping[str, str | int]
    weight: int


#: One received WebSocket message. Transports may pass a ``memoryview`` into their read buffer:
#: it is only valid during the ``decode`` call, so codecs must not keep it.
Frame = bytes | bytearray | memoryview | str


class VenueCodec(Protocol):
    """The Sans-I/O face of a venue, used by the transport, the feed and the backfiller."""

    spec: VenueSpec

    def native_symbol(self, symbol: str) -> str:
        """Canonical symbol (``BTCUSDT``) -> the venue's form (``btcusdt`` / ``BTC-USDT``)."""
        ...

    def stream_name(self, key: StreamKey) -> str: ...

    def stream_key(self, stream_name: str) -> StreamKey: ...

    def connect_url(self, base: str, streams: Sequence[str]) -> str:
        """URL to open for a connection that will carry ``streams`` (which may be subscribed
        live after connecting rather than listed in the URL)."""
        ...

    def subscribe(self, streams: Sequence[str], request_id: int) -> str: ...

    def unsubscribe(self, streams: Sequence[str], request_id: int) -> str: ...

    def list_subscriptions(self, request_id: int) -> str: ...

    def decode(self, frame: Frame) -> Message: ...

    def klines_request(self, symbol: str, interval: str, *, start_time: int | None = None,
                       end_time: int | None = None, limit: int | None = None) -> RestRequest: ...

    def decode_klines(self, body: bytes, symbol: str, interval: str) -> list[Candle]: ...

    def exchange_info_request(self) -> RestRequest: ...

    def decode_symbols(self, body: bytes) -> list[str]: ...
