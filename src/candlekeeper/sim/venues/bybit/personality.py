"""The Bybit v5 personalities: linear (USDT perpetuals) and spot (§D).

One class serves both; they differ in the spec (URL path, subscribe batch) and in two things
the docs show per market tab: spot acks say ``ret_msg: "subscribe"`` and spot pongs carry no
``req_id``; spot takes at most 10 args per subscribe. Facts (cadence, limits, intervals, REST
window) come from the venue's ``VenueSpec``; simulator choices are :data:`BEHAVIOUR`:

* the server never pings (``server_ping_interval_s`` is None): the client sends
  ``{"op":"ping"}`` and gets its pong from the session; ``pong_timeout_s`` is therefore unused
  and set to the 10 minutes of the only idle rule Bybit states;
* a breach of the REST limit blocks the IP for 600 s ("at least 10 minutes");
* no incoming-message limit is enforced (none is documented);
* the ``confirm: true`` frame goes out 0.1-1.0 s after the close (undocumented; the spread
  exercises a client's patience without exceeding the spec's 3 s allowance);
* Bybit publishes OHLCV plus turnover: the truth keeps OHLCV and the quote volume
  (``published_extras``), sent as ``turnover``;
* Bybit's own decimals where a real source shows them: BTCUSDT linear tick 0.10 / step 0.001
  (instruments-info doc), spot tick 0.1 / base precision 0.000001 (same doc).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.sim.framing import Framing, TextFraming
from candlekeeper.sim.market import Market
from candlekeeper.sim.options import VenueOptions
from candlekeeper.sim.personality import (
    Behaviour,
    FirehoseFrames,
    IdleClose,
    Session,
    VenuePusher,
    WsPath,
)
from candlekeeper.sim.rest import RestApp
from candlekeeper.sim.venues.bybit import push
from candlekeeper.sim.venues.bybit.rest import BybitRest, IpLimiter, IpPolicy
from candlekeeper.sim.venues.bybit.session import BybitSession, malformed_frames
from candlekeeper.venues.bybit.endpoints import BAN_S, CATEGORY
from candlekeeper.venues.bybit.stream import parse_topic, topic
from candlekeeper.venues.contract import VenueSpec

LINEAR_BEHAVIOUR = Behaviour(
    pong_timeout_s=600.0, ban_s=BAN_S, enforces_control_rate=False, close_delay_s=(0.1, 1.0),
    idle_close=IdleClose(600.0, 1000, "idle"),
    rest_final_delay_ms=100, stale_last_push=False, legacy_routes_push_klines=False,
    price_pad=None, published_extras=("quote_volume_str",),
    precision={"BTCUSDT": (1, 3)})
SPOT_BEHAVIOUR = msgspec.structs.replace(LINEAR_BEHAVIOUR, precision={"BTCUSDT": (1, 6)})
#: "Spot can input up to 10 args for each subscription request"
SPOT_MAX_ARGS = 10


class BybitPersonality:
    """Bybit linear or spot, as the spec says."""

    framing: Framing = TextFraming()
    in_band_ping = False  # the server sends no ping; the client's JSON ping is a request
    firehose = False
    closing_frame_name = "confirm:true frame"

    def __init__(self, spec: VenueSpec, behaviour: Behaviour | None = None) -> None:
        self.spot = CATEGORY[spec.id] == "spot"
        self.spec = spec
        self.behaviour = behaviour or (SPOT_BEHAVIOUR if self.spot else LINEAR_BEHAVIOUR)
        self.ws_path = urlsplit(spec.ws_base).path.rstrip("/")  # "/v5/public/linear"

    def parse_ws_path(self, path: str, query: Mapping[str, str],
                      opts: VenueOptions) -> WsPath | None:
        return WsPath(False, True, ()) if path.rstrip("/") == self.ws_path else None

    def parse_stream(self, name: str) -> tuple[str, str] | None:
        return parse_topic(name)

    def stream_name(self, symbol: str, interval: str) -> str:
        return topic(symbol, interval)

    def new_session(self, is_valid: Callable[[str], bool], *, path: WsPath,
                    max_streams: int, now_ms: Callable[[], int]) -> Session:
        return BybitSession(is_valid, spot=self.spot, max_streams=max_streams,
                            max_args_per_request=SPOT_MAX_ARGS if self.spot else None)

    def is_pong(self, text: str) -> bool:
        return False  # the server never pings in-band

    def ping_payload(self) -> bytes:
        return b""

    def rate_limit_error(self) -> bytes:
        return msgspec.json.encode({"success": False, "ret_msg": "too many requests",
                                    "conn_id": "", "op": ""})

    def handshake_error(self, message: str) -> bytes:
        return msgspec.json.encode({"success": False, "ret_msg": message, "conn_id": "",
                                    "op": ""})

    def malformed(self, stream: str) -> list[bytes]:
        return malformed_frames(stream)

    def shutdown_notice(self, now_ms: int, combined_mode: bool) -> bytes | None:
        return None  # Bybit announces nothing

    def make_pusher(self, market: Market, clock: ScaledClock, opts: VenueOptions,
                    seed: int) -> VenuePusher:
        return push.make_pusher(market, clock, opts, seed)

    def make_rest(self, market: Market, clock: ScaledClock, opts: VenueOptions) -> RestApp:
        window = opts.rest_limits[0]
        limiter = IpLimiter(window.limit, window.seconds, opts.ban_s)
        return BybitRest(self.spec, market, clock).app(IpPolicy(limiter))

    def firehose_frames(self, candle: Candle, stream: str, combined: bool) -> FirehoseFrames:
        raise NotImplementedError("Bybit has no firehose mode")
