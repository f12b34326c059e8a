"""What the generic simulator asks of a venue *personality*.

The server (``sim.server``) accepts sockets, runs the heartbeat and moves bytes; the REST
dispatcher (``sim.rest``) routes paths and applies faults; the fault injector and the shaper
damage delivery. None of them knows a venue. Everything that differs between venues is asked of
a :class:`Personality`, which lives in ``sim/venues/<package>/`` (the same folder name as the
client's ``venues/<package>/``) and is built from the venue's :class:`VenueSpec`:

* **facts** (cadence, ping period, limits, intervals, REST budgets) come from the spec, never
  from a second table here;
* **simulator-only behaviour** (how long an unanswered ping is tolerated, how long a ban lasts,
  how decimals are printed, which candle fields the venue publishes, ...) is the personality's
  :class:`Behaviour`, as data;
* **protocol** (which URL paths are market streams, what a stream name means, the
  per-connection control-message state machine, framing, heartbeat style, the pusher that times
  frames, the REST handlers) is the personality's code.

Venue variants are data and small objects rather than a subclass tree of servers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol

import msgspec

if TYPE_CHECKING:
    from candlekeeper.core.candle import Candle
    from candlekeeper.core.clock import ScaledClock
    from candlekeeper.sim.framing import Framing
    from candlekeeper.sim.market import Market
    from candlekeeper.sim.options import VenueOptions
    from candlekeeper.sim.rest import RestApp
    from candlekeeper.sim.shaper import Shaper
    from candlekeeper.venues.contract import VenueSpec


class IdleClose(NamedTuple):
    """A venue's rule for connections it has sent nothing on: after ``seconds`` (wall), it
    closes them with ``code`` and ``reason``; ``code=None``: it drops them with no close frame
    (the client sees 1006)."""

    seconds: float
    code: int | None
    reason: str


class Behaviour(msgspec.Struct, frozen=True, kw_only=True):
    """Simulator-only knobs of a personality: how the simulated exchange behaves where the
    venue documents nothing, or where the simulator must choose. Like ``VenueSpec``, nothing has
    a default, so a new personality never inherits another's choices silently. Each can be
    overridden per run through ``Simulator(...)`` (see :mod:`candlekeeper.sim.options`)."""

    #: close a connection whose oldest unanswered server ping is this old (wall seconds)
    pong_timeout_s: float
    #: how long an IP that kept sending after a 429 is banned (wall seconds)
    ban_s: float
    #: True: more incoming messages than the spec's ``control_messages_per_second`` in a
    #: rolling second close the connection (the venue documents that limit). False: the venue
    #: documents none, so none is enforced (the spec's number is then the client's own pace).
    enforces_control_rate: bool
    #: a venue with a closed flag: wall seconds (lo, hi) between a candle's close and its
    #: closing frame, fixed per candle by the seed
    close_delay_s: tuple[float, float]
    #: venue ms after a candle's close before REST shows its final values: until then REST
    #: answers as the market stood this long ago (the candle still forming, missing its last
    #: trades), as a venue whose REST view lags its matching engine does
    rest_final_delay_ms: int
    #: close a connection the server has sent nothing on (no push, no pong) for this many wall
    #: seconds, with this close code and reason (a venue that documents such a rule, e.g. 30 s
    #: and its own close code); None: the venue documents none
    idle_close: IdleClose | None
    #: a venue without a closed flag pushing on a fixed wall-clock tick: True reproduces the
    #: last push of a candle predating its close; False also pushes the final values at the
    #: close (kinder than such a venue)
    stale_last_push: bool
    #: a venue with routed stream paths: True lets its unrouted legacy paths carry klines too
    legacy_routes_push_klines: bool
    #: print every decimal with exactly this many places (None: the symbol's own decimals)
    price_pad: int | None
    #: the candle fields beyond open/high/low/close/volume the venue publishes (e.g.
    #: ``("quote_volume_str",)``); the others — trade counts, quote and taker volumes, trade ids
    #: — are dropped from the truth too. None: every field
    published_extras: tuple[str, ...] | None
    #: the venue's own (price, quantity) decimals per canonical symbol where a real source shows
    #: them; other symbols use the shared profile table (``sim.profiles``)
    precision: Mapping[str, tuple[int, int]]


class WsPath(NamedTuple):
    """What a WebSocket URL asks for."""

    combined: bool  # frames wrapped with their stream name vs bare payloads
    pushes_klines: bool  # False on a path that accepts subscriptions but carries no klines
    streams: tuple[str, ...]  # names given in the URL (the session decides which are streams)


class Control(NamedTuple):
    """Result of one incoming text frame: the reply *payload* (unframed) and the changes.
    ``drop``: the venue answers nothing and drops the connection at once, without a close
    frame (a venue that closes the socket on a subscribe it cannot serve); ``reply`` is then
    not sent."""

    reply: bytes
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    is_error: bool = False
    drop: bool = False


class FrameSink(Protocol):
    """A connection as a pusher sees it."""

    @property
    def combined(self) -> bool: ...

    #: frame faults of this connection (``sim.shaper``); None when no fault is active
    shaper: Shaper | None

    def write(self, data: bytes) -> None: ...


class Session(Protocol):
    """The subscription state machine of one connection (Sans-I/O)."""

    combined: bool
    subscriptions: dict[str, None]

    def open_with(self, streams: tuple[str, ...]) -> tuple[str, ...] | str:
        """Subscribe what the URL names; the subscribed streams, or why the URL is refused."""
        ...

    def handle(self, text: str | bytes) -> Control: ...


class VenuePusher(Protocol):
    """Decides when kline frames go out and writes them to subscribed sinks."""

    frames_sent: int
    closes_sent: int
    errors: int
    #: set by the fault injector once a frame fault is applied (frames then go through shapers)
    shaping: bool

    def subscribe(self, sink: FrameSink, name: str) -> None: ...

    def unsubscribe(self, sink: FrameSink, name: str) -> None: ...

    def drop(self, sink: FrameSink) -> None: ...

    async def run(self) -> None: ...


class FirehoseFrames(Protocol):
    """Pre-encoded kline frames for the saturation benchmark (``sim.firehose``)."""

    def frames(self, start: int, count: int, event_time: int) -> bytes:
        """``count`` distinct, valid frames for messages ``start .. start+count-1``, joined."""
        ...


class Personality(Protocol):
    """Everything venue-specific the generic simulator asks."""

    spec: VenueSpec
    behaviour: Behaviour
    framing: Framing
    #: True: the heartbeat is an in-band text message answered by a text message (a venue
    #: with an application-level ping); False: RFC 6455 ping/pong control frames whose payload
    #: must be echoed
    in_band_ping: bool
    #: True when the venue offers the firehose benchmark mode (:meth:`firehose_frames`)
    firehose: bool
    #: what the fault log calls the frame that closes a candle
    closing_frame_name: str

    def parse_ws_path(self, path: str, query: Mapping[str, str],
                      opts: VenueOptions) -> WsPath | None:
        """What a WebSocket URL asks for; None when the path is no market-stream endpoint."""
        ...

    def parse_stream(self, name: str) -> tuple[str, str] | None:
        """Stream name -> (canonical symbol, interval); None when it is no kline stream."""
        ...

    def stream_name(self, symbol: str, interval: str) -> str: ...

    def new_session(self, is_valid: Callable[[str], bool], *, path: WsPath,
                    max_streams: int, now_ms: Callable[[], int]) -> Session: ...

    def is_pong(self, text: str) -> bool:
        """Is this incoming text frame the in-band heartbeat answer?"""
        ...

    def ping_payload(self) -> bytes: ...

    def rate_limit_error(self) -> bytes:
        """Payload sent before closing a connection over the incoming-message rate."""
        ...

    def handshake_error(self, message: str) -> bytes:
        """The JSON body of an HTTP 400 refusing a WebSocket handshake."""
        ...

    def malformed(self, stream: str) -> list[bytes]:
        """Bad *frames* (already framed) the ``malformed`` fault picks from."""
        ...

    def shutdown_notice(self, now_ms: int, combined: bool) -> bytes | None:
        """The framed shutdown notice, or None when the venue announces nothing."""
        ...

    def make_pusher(self, market: Market, clock: ScaledClock, opts: VenueOptions,
                    seed: int) -> VenuePusher: ...

    def make_rest(self, market: Market, clock: ScaledClock, opts: VenueOptions) -> RestApp: ...

    def firehose_frames(self, candle: Candle, stream: str, combined: bool) -> FirehoseFrames:
        """The firehose template for ``stream`` (only called when :attr:`firehose` is True)."""
        ...


#: how a venue package exports its personalities: ``PERSONALITIES = {venue_id: factory}``
PersonalityFactory = Callable[["VenueSpec"], Personality]
