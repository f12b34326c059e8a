"""The venue contract: what a venue folder provides and what the rest of candlekeeper may ask.

A venue is three things, all Sans-I/O (no asyncio, no socket, no clock in here):

* a :class:`VenueSpec` — facts and limits as data. It has **no defaults**: a venue states every
  limit it has, so a new venue can never silently inherit another venue's numbers;
* a :class:`StreamCodec` — what the WebSocket side needs: the connect URL, subscribe frames,
  ``decode`` of a received frame into one message *or several* (some venues push arrays),
  and the venue's application-level heartbeat, if it has one (:class:`Heartbeat`);
* a :class:`HistoryCodec` — what the REST side needs: request builders (klines, server time,
  symbol list), response decoders, the venue's rate-limit headers (:class:`RateUsage`) and the
  classification of its error answers (:class:`RestFailure`) from its own status codes, bodies
  and headers.

The transport depends on :class:`StreamCodec` only, the REST client and fetcher on
:class:`HistoryCodec` only; neither ever names a venue. ``venues/registry.py`` is the one list of
venue folders; ``docs/adding-a-venue.md`` walks through adding one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Final, Literal, Protocol

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import INTERVAL_MS
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.core.symbols import normalize_symbol
from candlekeeper.errors import RestErrorKind as RestErrorKind  # codecs classify with it

# -- facts ---------------------------------------------------------------------------------------


class RestWindow(msgspec.Struct, frozen=True):
    """A REST budget: at most ``limit`` weight units per ``seconds`` (a venue that counts
    requests charges every request weight 1)."""

    seconds: float
    limit: int


class VenueSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Static facts about one venue, every one stated by the venue (no field has a default)."""

    id: str
    #: production and testnet/demo endpoints; every one can be overridden in config
    ws_base: str
    rest_base: str
    ws_testnet_base: str
    rest_testnet_base: str
    #: interval names the venue serves, in our naming (``1m`` .. ``1M``)
    intervals: tuple[str, ...]
    # -- WebSocket limits ----------------------------------------------------------------------
    max_streams_per_connection: int
    #: streams one subscribe message may carry
    max_streams_per_subscribe: int
    #: control messages (subscribes, pings, pongs) the venue accepts per second per connection
    control_messages_per_second: float
    #: the venue closes every connection after this long (venue seconds), None if undocumented
    connection_lifetime_s: float | None
    #: the venue's limits on opening WebSocket connections per IP (at most ``limit`` handshakes
    #: per ``seconds``); empty when the venue documents none
    connect_limits: tuple[RestWindow, ...]
    #: messages one IP may send per window across all its WebSocket connections (subscribes,
    #: pings, pongs: at most ``limit`` per ``seconds``); empty when the venue documents none
    ip_message_limits: tuple[RestWindow, ...]
    #: WebSocket connections one IP may hold open at once (None: none documented)
    max_connections_per_ip: int | None
    #: how often the venue's server sends its own ping (protocol or in-band), None if never
    server_ping_interval_s: float | None
    #: how often the venue pushes the forming candle, in real milliseconds (its "update speed")
    update_cadence_ms: int
    #: the longest a stream may stay quiet after a candle's close until the frame that closes it
    #: (or the next candle's first push) arrives, in real milliseconds
    close_frame_max_delay_ms: int
    #: True when pushes say a candle is final (a closed flag on the wire). False: the feed
    #: infers a close from the first push with a later open time and confirms it over REST.
    closed_flag: bool
    #: True when the venue pushes every stream at ``update_cadence_ms`` whether or not anything
    #: traded; False when a stream pushes only when a trade changed its candle, so a quiet
    #: market's stream may rightly stay silent until its close (the watchdog waits that long).
    #: Undocumented behaviour counts as False: a false stall costs a REST request per quiet
    #: stream, a missed one only costs detection time (a missing close is caught as late).
    pushes_when_quiet: bool
    # -- REST limits ---------------------------------------------------------------------------
    #: the most rows one klines request may ask for
    rest_max_limit: int
    #: ``(upper_bound_exclusive, weight)`` tiers for one klines call by its ``limit``
    rest_klines_weights: tuple[tuple[int, int], ...]
    #: the venue's REST budgets per IP; the first is the window the venue's "used weight"
    #: header reports (:attr:`RateUsage.used`), the shortest is the one its "requests left"
    #: header reports (:attr:`RateUsage.remain`)
    rest_limits: tuple[RestWindow, ...]
    #: how far back the venue's klines endpoint reaches, in candles of the interval asked
    #: (counted back from now); None when its history is unlimited. A hole older than that
    #: cannot be filled from this venue: the fetcher does not ask for it, and the gap filler
    #: and the ``gaps`` audit report it as unfillable instead of retrying
    rest_history_candles: int | None

    def __post_init__(self) -> None:
        if not self.rest_limits:
            raise ValueError(f"{self.id}: a venue states at least one REST budget")
        if not self.rest_klines_weights:
            raise ValueError(f"{self.id}: a venue states the weight of a klines request")
        if self.rest_history_candles is not None and self.rest_history_candles < 1:
            raise ValueError(f"{self.id}: rest_history_candles must be None or >= 1")
        unknown = [i for i in self.intervals if i not in INTERVAL_MS]
        if unknown:
            raise ValueError(f"{self.id}: unknown interval names {unknown}")


def klines_weight(spec: VenueSpec, limit: int) -> int:
    """REST weight of one klines call with this ``limit``."""
    for upper, weight in spec.rest_klines_weights:
        if limit < upper:
            return weight
    return spec.rest_klines_weights[-1][1]


# -- what a frame decodes into (besides Candle) --------------------------------------------------


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
    """A frame the transport must send back at once (an answer to the server's in-band ping)."""

    payload: str


class Pong(msgspec.Struct, frozen=True):
    """The venue's answer to our application-level heartbeat (:attr:`StreamCodec.heartbeat`)."""


class ServerShutdown(msgspec.Struct, frozen=True):
    """The venue announced it will close the connection soon: reconnect proactively."""

    ts_ms: int


class Malformed(msgspec.Struct, frozen=True):
    """A frame that could not be decoded or carried impossible values; counted and dropped,
    never fatal. ``key`` names the stream when the frame could be routed (a closed candle with
    a bad price, say), so the feed can fetch that stream's candle over REST at once."""

    reason: str
    snippet: str
    key: StreamKey | None = None


class Ignored(msgspec.Struct, frozen=True):
    """A well-formed frame we do not need (another event type)."""

    what: str


Message = Candle | Ack | ErrorReply | Reply | Pong | ServerShutdown | Malformed | Ignored

#: One received WebSocket message. Transports may pass a ``memoryview`` into their read buffer:
#: it is only valid during the ``decode`` call, so codecs must not keep it.
Frame = bytes | bytearray | memoryview | str


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """A venue's application-level keep-alive, sent by the client as a text frame.

    ``every_s``: send it this often. ``idle_only``: send it only after ``every_s`` without any
    frame from the venue (a venue that says "if no data within 30 s, send ping"); otherwise on
    a fixed period (every 20 s, say). The answer decodes to :class:`Pong`; none within
    ``timeout_s`` of a ping means the connection is dead and it is replaced.
    """

    payload: str
    every_s: float
    timeout_s: float
    idle_only: bool


# -- REST ----------------------------------------------------------------------------------------


class RestRequest(msgspec.Struct, frozen=True):
    """A REST call described as data; the HTTP client executes it. ``params`` go in the query
    string; ``body`` (JSON, for venues whose market data is a POST) is sent as is."""

    method: str
    path: str
    params: Mapping[str, str | int]
    weight: int
    body: bytes | None = None


#: kinds a caller retries (after the wait the REST client applies to rate limits and bans)
RETRYABLE_KINDS: Final = frozenset({RestErrorKind.RATE_LIMITED, RestErrorKind.BANNED,
                                    RestErrorKind.SERVER_ERROR})


class RestFailure(msgspec.Struct, frozen=True):
    """A classified REST error answer (see :meth:`HistoryCodec.classify`)."""

    kind: RestErrorKind
    message: str
    code: int | None = None
    retry_after_s: float | None = None


class RateUsage(msgspec.Struct, frozen=True):
    """What a response's headers say about the venue's count of our requests.

    ``used``: weight used in the venue's first REST window (a "used weight" header).
    ``remain`` / ``reset_s``: requests left in its shortest window and seconds until that window
    ends ("requests remaining" / "window expires" headers).
    """

    used: int | None = None
    remain: int | None = None
    reset_s: float | None = None


NO_USAGE: Final = RateUsage()


def retry_after_s(headers: Mapping[str, str], now_s: float) -> float | None:
    """The standard ``Retry-After`` header as seconds from now (delta-seconds or an HTTP date);
    None when absent or unreadable."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now_s
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def failure_for_status(status: int, message: str, *, code: int | None = None,
                       retry_after: float | None = None) -> RestFailure:
    """The meaning of an HTTP status when the venue's body says nothing more specific."""
    if status == 429:
        kind = RestErrorKind.RATE_LIMITED
    elif status == 418:
        kind = RestErrorKind.BANNED
    elif status >= 500 or status == 408:
        kind = RestErrorKind.SERVER_ERROR
    else:
        kind = RestErrorKind.BAD_REQUEST
    return RestFailure(kind, message, code, retry_after)


# -- the two codecs ------------------------------------------------------------------------------


class StreamCodec(Protocol):
    """The WebSocket face of a venue, used by the transport and the feed."""

    spec: VenueSpec
    #: the client's keep-alive, or None: then the transport sends an RFC 6455 ping after
    #: ``idle_ping_s`` without a frame (and answers the venue's own pings either way)
    heartbeat: Heartbeat | None

    def native_symbol(self, symbol: str) -> str:
        """Canonical symbol (``BTCUSDT``) -> the venue's form (``btcusdt`` / ``BTC-USDT``)."""
        ...

    def stream_name(self, key: StreamKey) -> str:
        """The venue's name of a stream (what subscribe frames carry); raises ``ConfigError``
        for an interval the venue lacks."""
        ...

    def connect_url(self, base: str, streams: Sequence[str]) -> str:
        """URL to open for a connection that will carry ``streams`` (which may be subscribed
        live after connecting rather than listed in the URL)."""
        ...

    def subscribe(self, streams: Sequence[str], request_id: int) -> str: ...

    def unsubscribe(self, streams: Sequence[str], request_id: int) -> str: ...

    def decode(self, frame: Frame) -> Message | list[Message]:
        """One received frame -> one message, or a list when the frame carries several (every
        candle of an array push). Never raises: bad input is :class:`Malformed`."""
        ...


class HistoryCodec(Protocol):
    """The REST face of a venue, used by the REST client, the fetcher and symbol lookup."""

    spec: VenueSpec

    def native_symbol(self, symbol: str) -> str: ...

    def klines_request(self, symbol: str, interval: str, *, start_time: int | None = None,
                       end_time: int | None = None, limit: int | None = None) -> RestRequest:
        """Candles with ``start_time <= open_time <= end_time`` (inclusive, ms)."""
        ...

    def decode_klines(self, body: bytes, symbol: str, interval: str) -> list[Candle]:
        """Rows of a klines answer as ``closed=True``, ``source="rest"`` candles, ascending and
        unique by open time. The forming candle may be among them: the fetcher drops it by the
        clock, and also drops any row decoded ``closed=False`` (a venue whose rows say they are
        not final yet). Raises ``DecodeError`` for a body that is not the documented shape."""
        ...

    def server_time_request(self) -> RestRequest: ...

    def decode_server_time(self, body: bytes) -> int:
        """The venue's clock in Unix ms."""
        ...

    def symbols_request(self) -> RestRequest: ...

    def decode_symbols(self, body: bytes) -> list[str]:
        """Canonical symbols currently trading."""
        ...

    def classify(self, status: int, headers: Mapping[str, str], body: bytes,
                 now_s: float) -> RestFailure | None:
        """None for a successful answer; otherwise what went wrong, read from the venue's own
        status, body and headers (a venue may say "rate limited" in the body of an HTTP 200)."""
        ...

    def rate_usage(self, headers: Mapping[str, str]) -> RateUsage: ...


class ArchivePeriod(msgspec.Struct, frozen=True):
    """One file of a venue's public kline archive: a whole UTC month or day, ``[start, end)``
    in ms. ``label`` is how the file names it (``2024-01`` / ``2024-01-31``)."""

    kind: Literal["monthly", "daily"]
    start: int
    end: int
    label: str


class ArchiveCodec(Protocol):
    """A venue's public bulk archive of klines (zip files of CSV, each with a checksum file), as
    data and parsers: where a file lives, and what its bytes mean. The downloading, checksum
    verification, unzipping and fallback to REST are generic (``backfill/archive.py``); the
    simulator serves the same layout from its market (``sim/archive.py``)."""

    spec: VenueSpec
    #: the archive's production base URL (a config ``archive_url`` overrides it)
    base_url: str
    #: intervals the archive publishes as monthly and daily files
    intervals: tuple[str, ...]

    def file_path(self, symbol: str, interval: str, period: ArchivePeriod) -> str:
        """Path of the zip file under the base URL (starting with ``/``); its checksum file is
        the same path plus :attr:`checksum_suffix`."""
        ...

    @property
    def checksum_suffix(self) -> str: ...

    def parse_path(self, path: str) -> tuple[str, str, ArchivePeriod, bool] | None:
        """``(symbol, interval, period, is_checksum)`` of a path :meth:`file_path` builds (plus
        the checksum suffix); None for any other path. The simulator routes with it."""
        ...

    def decode_checksum(self, body: bytes) -> str | None:
        """The lower-case hex SHA-256 a checksum file states, None when it states none."""
        ...

    def decode_rows(self, text: str, symbol: str, interval: str) -> list[Candle]:
        """The CSV member of a file as ``closed=True``, ``source="archive"`` candles in file
        order (the caller checks order, alignment and range). Every documented variant of the
        format is accepted (a header row or none, ms or µs timestamps). Raises ``DecodeError``
        for a row that is not the documented shape."""
        ...


class Venue(msgspec.Struct, frozen=True):
    """One registered venue: its facts and how to build its codecs.

    ``canonical_symbol`` turns what a user writes into the venue's canonical symbol; the
    default (``BTC-USDT`` -> ``BTCUSDT``) suits every venue whose markets are named by base and
    quote. A venue that names a market otherwise (by its coin alone, say) gives its own.
    ``archive`` is optional because most venues publish no bulk archive; one that does states
    its layout and format there."""

    spec: VenueSpec
    stream_codec: Callable[[VenueSpec], StreamCodec]
    history_codec: Callable[[VenueSpec], HistoryCodec]
    canonical_symbol: Callable[[str], str] = normalize_symbol
    #: the venue's public kline archive, None when it publishes none (then ``backfill`` uses
    #: REST only)
    archive: Callable[[VenueSpec], ArchiveCodec] | None = None


# -- the venue's real samples (what the contract suite checks every venue against) --------------


class WsSample(msgspec.Struct, frozen=True):
    """A real frame, as the venue sends it on the wire, and exactly what it must decode to."""

    source: str  # file (and where in it) the frame comes from
    frame: bytes | str
    expect: tuple[Message, ...]


class RestSample(msgspec.Struct, frozen=True):
    """A real REST klines body and what it must decode to (the first row exactly, and how many
    rows there are)."""

    source: str
    body: bytes
    symbol: str
    interval: str
    first: Candle
    count: int


class Samples(msgspec.Struct, frozen=True):
    """What a venue folder's ``samples.py`` returns for one venue (``samples(venue, dir)``,
    where ``dir`` is ``../shared/protocol-samples``)."""

    ws: tuple[WsSample, ...]
    rest: tuple[RestSample, ...]
