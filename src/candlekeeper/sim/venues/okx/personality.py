"""The OKX v5 personalities: USDT swaps and spot (protocols-more-venues.md §E), one class that
differs in data (the venue id decides the instrument ids, the volume fields and ``instType``).

Facts (cadence, intervals, channel cap, REST limits) come from the venue's ``VenueSpec``
(``venues.okx.endpoints``). Simulator choices (:data:`BEHAVIOUR`):

* the server never pings (``server_ping_interval_s`` None): the client sends the text ``ping``
  and the session answers ``pong``; ``pong_timeout_s`` is unused;
* OKX documents no REST ban (only 50011 / HTTP 429): ``ban_s`` 0, a ban only comes from the
  ``rest_418`` fault;
* the ``confirm`` "1" push goes out 0.2-1 s after the close (undocumented, §H);
* OKX publishes OHLCV plus volumes in contracts / base / quote, no trade counts or taker volumes:
  the truth is OHLCV plus the quote volume (``published_extras``), sent as ``volCcyQuote``;
* BTC-USDT prints prices with one decimal (tickSz 0.1, both instruments), base volumes with 4
  decimals on the swap (volCcy "13.3007") and 8 on spot ("942.87870026"), as the samples show.

Idle disconnect after 30 s without data (§E.5) is not reproduced: the generic server offers no
per-connection idle timer to a personality (see docs/venues.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from urllib.parse import urlsplit

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.sim.framing import Framing
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
from candlekeeper.sim.venues.okx import push
from candlekeeper.sim.venues.okx import session as okx
from candlekeeper.sim.venues.okx.rest import (
    EndpointLimiter,
    EndpointPolicy,
    OkxRest,
    ct_val,
    scaled_limits,
)
from candlekeeper.venues.contract import VenueSpec
from candlekeeper.venues.okx.endpoints import INST_TYPE, WS_INVALID_REQUEST, WS_TOO_FREQUENT

SWAP_BEHAVIOUR = Behaviour(
    pong_timeout_s=30.0, ban_s=0.0, enforces_control_rate=False, close_delay_s=(0.2, 1.0),
    idle_close=IdleClose(30.0, 4004, "No data received in 30s"),
    rest_final_delay_ms=100, stale_last_push=False, legacy_routes_push_klines=False,
    price_pad=None, published_extras=("quote_volume_str",), precision={"BTCUSDT": (1, 4)})
SPOT_BEHAVIOUR = msgspec.structs.replace(SWAP_BEHAVIOUR, precision={"BTCUSDT": (1, 8)})


class OkxPersonality:
    """OKX swap or spot, as the venue id says."""

    framing: Framing = okx.OkxFraming()
    in_band_ping = False  # the server never pings; the client's text ping is a control message
    firehose = False
    closing_frame_name = "confirm push"

    def __init__(self, spec: VenueSpec, behaviour: Behaviour | None = None) -> None:
        self.spec = spec
        self.swap = INST_TYPE[spec.id] == "SWAP"
        self.behaviour = behaviour or (SWAP_BEHAVIOUR if self.swap else SPOT_BEHAVIOUR)
        self.ws_path = urlsplit(spec.ws_base).path.rstrip("/")  # "/ws/v5/business"
        #: the public path, where candles were until 2023: it connects, but a candle channel
        #: there is refused with 60018 (§E.1)
        self.public_path = self.ws_path.rsplit("/", 1)[0] + "/public"

    def parse_ws_path(self, path: str, query: Mapping[str, str],
                      opts: VenueOptions) -> WsPath | None:
        path = path.rstrip("/")
        if path == self.ws_path:
            return WsPath(False, True, ())
        return WsPath(False, False, ()) if path == self.public_path else None

    def parse_stream(self, name: str) -> tuple[str, str] | None:
        return okx.parse_stream(self.spec.id, name)

    def stream_name(self, symbol: str, interval: str) -> str:
        return okx.stream_name(self.spec.id, symbol, interval)

    def new_session(self, is_valid: Callable[[str], bool], *, path: WsPath,
                    max_streams: int, now_ms: Callable[[], int]) -> Session:
        if not path.pushes_klines:  # on the public path no candle channel exists
            return okx.OkxSession(lambda _: False, max_streams=max_streams)
        return okx.OkxSession(is_valid, max_streams=max_streams)

    def is_pong(self, text: str) -> bool:
        return text == okx.PONG.decode()

    def ping_payload(self) -> bytes:
        return okx.PING

    def rate_limit_error(self) -> bytes:
        return okx.event_payload("error", code=WS_TOO_FREQUENT, msg="Requests too frequent.")

    def handshake_error(self, message: str) -> bytes:
        return okx.event_payload("error", code=WS_INVALID_REQUEST,
                                 msg=f"Invalid request: {message}")

    def malformed(self, stream: str) -> list[bytes]:
        return [self.framing.frame(p) for p in okx.malformed_payloads(stream)]

    def shutdown_notice(self, now_ms: int, combined_mode: bool) -> bytes | None:
        return self.framing.frame(okx.notice_payload("0"))

    def _ct_val(self, symbol: str) -> Decimal | None:
        return ct_val(symbol) if self.swap else None

    def make_pusher(self, market: Market, clock: ScaledClock, opts: VenueOptions,
                    seed: int) -> VenuePusher:
        return push.make_pusher(market, clock, opts, seed, parse=self.parse_stream,
                                ct_val=self._ct_val)

    def make_rest(self, market: Market, clock: ScaledClock, opts: VenueOptions) -> RestApp:
        limiter = EndpointLimiter(scaled_limits(self.spec, opts.rest_limits))
        return OkxRest(self.spec, market, clock).app(EndpointPolicy(limiter))

    def firehose_frames(self, candle: Candle, stream: str, combined: bool) -> FirehoseFrames:
        raise NotImplementedError("OKX has no firehose mode")
