"""The BingX perpetual-swap personality (protocols.md §C): gzip'd binary frames, an in-band
``Ping``/``Pong`` heartbeat, string ids, 80403 over 200 topics, a 1 s push of the current candle
with no closed flag, and a REST API that counts requests in two windows.

Facts (cadence, ping period, topic limit, REST windows, intervals) come from the venue's
``VenueSpec`` (``venues.bingx.endpoints``). Simulator choices (:data:`BEHAVIOUR`):

* 15 s without a ``Pong`` closes a connection (three missed pings; none is documented);
* a REST ban lasts 300 s ("restore after 5 minutes");
* no incoming-message limit is enforced (none is documented: the spec's number is the
  client's own pace);
* the last push of a candle is stale by default (the exchange's behaviour, §C.3);
* BingX publishes only OHLCV; its own tick / lot decimals where a real source shows them (JK
  contracts fixture: BTC-USDT pricePrecision 1, quantityPrecision 4; ETH-USDT 2 and 2; the
  pushes in protocols.md §C.3 print "121697.7" / "5.8244" and "2989.57" / "215.89").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.sim.framing import Framing, GzipFraming
from candlekeeper.sim.market import Market
from candlekeeper.sim.options import VenueOptions
from candlekeeper.sim.personality import Behaviour, FirehoseFrames, Session, VenuePusher, WsPath
from candlekeeper.sim.rest import RestApp
from candlekeeper.sim.venues.bingx import push
from candlekeeper.sim.venues.bingx import session as bx
from candlekeeper.sim.venues.bingx.rest import BingxRest, RequestLimiter, RequestPolicy
from candlekeeper.venues.contract import VenueSpec

BEHAVIOUR = Behaviour(
    pong_timeout_s=15.0, ban_s=300.0, enforces_control_rate=False, close_delay_s=(0.0, 0.0),
    idle_close=None,
    rest_final_delay_ms=100, stale_last_push=True, legacy_routes_push_klines=False,
    price_pad=None, published_extras=(),
    precision={"BTCUSDT": (1, 4), "ETHUSDT": (2, 2)})


class BingxPersonality:
    """BingX perpetual swap: everything it does differently, asked by the generic server."""

    framing: Framing = GzipFraming()
    in_band_ping = True
    firehose = False
    closing_frame_name = "last push of a candle"

    def __init__(self, spec: VenueSpec, behaviour: Behaviour = BEHAVIOUR) -> None:
        self.spec, self.behaviour = spec, behaviour
        self.ws_path = urlsplit(spec.ws_base).path.rstrip("/")  # "/swap-market"

    def parse_ws_path(self, path: str, query: Mapping[str, str],
                      opts: VenueOptions) -> WsPath | None:
        return WsPath(False, True, ()) if path.rstrip("/") == self.ws_path else None

    def parse_stream(self, name: str) -> tuple[str, str] | None:
        return bx.parse_data_type(name)

    def stream_name(self, symbol: str, interval: str) -> str:
        return bx.data_type(symbol, interval)

    def new_session(self, is_valid: Callable[[str], bool], *, path: WsPath,
                    max_streams: int, now_ms: Callable[[], int]) -> Session:
        return bx.BingxSession(is_valid, max_streams=max_streams, now_ms=now_ms)

    def is_pong(self, text: str) -> bool:
        return text == bx.PONG

    def ping_payload(self) -> bytes:
        return bx.PING.encode()

    def rate_limit_error(self) -> bytes:
        return bx.error_payload(bx.INVALID_PARAMETER, "too many messages", None, 0)

    def handshake_error(self, message: str) -> bytes:
        return bx.error_payload(bx.INVALID_PARAMETER, message, None, 0)

    def malformed(self, stream: str) -> list[bytes]:
        return bx.malformed_frames(stream)

    def shutdown_notice(self, now_ms: int, combined_mode: bool) -> bytes | None:
        return None  # BingX announces nothing; "new features may result in disconnections"

    def make_pusher(self, market: Market, clock: ScaledClock, opts: VenueOptions,
                    seed: int) -> VenuePusher:
        return push.make_pusher(market, clock, opts, seed)

    def make_rest(self, market: Market, clock: ScaledClock, opts: VenueOptions) -> RestApp:
        limiter = RequestLimiter(tuple((w.seconds, w.limit) for w in opts.rest_limits),
                                 ban_s=opts.ban_s)
        return BingxRest(self.spec, market, clock).app(RequestPolicy(limiter))

    def firehose_frames(self, candle: Candle, stream: str, combined: bool) -> FirehoseFrames:
        raise NotImplementedError("BingX has no firehose mode")
