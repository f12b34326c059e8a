"""The Binance personalities: USDⓈ-M futures and spot (protocols.md §A, §B).

One class serves both; they differ in data. Facts come from the venue's ``VenueSpec``
(``venues.binance.endpoints``); what is Binance-but-not-a-fact is a :class:`Flavour` (which ids
the control messages accept, the exchangeInfo shape) and a
:class:`~candlekeeper.sim.personality.Behaviour` (simulator choices):

* pong timeout 600 s (USDⓈ-M: "within a 10 minute period", §A.5) / 60 s (spot: "within one
  minute", §B.3); the REST ban lasts 120 s (the first step of the documented 2 min - 3 day
  ladder, §B.5); the ``x:true`` frame goes out 0.2-2 s after the close (the 2021 captures);
* spot prints every decimal with 8 places (§B.2); USDⓈ-M the symbol's own decimals;
* the routed stream paths (``/market``, §A.1) are the path of the spec's ``ws_base``.
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
from candlekeeper.sim.personality import Behaviour, FirehoseFrames, Session, VenuePusher, WsPath
from candlekeeper.sim.rest import RestApp
from candlekeeper.sim.venues.binance.frames import FirehoseTemplate, combined
from candlekeeper.sim.venues.binance.push import Pusher
from candlekeeper.sim.venues.binance.rest import BinanceRest, WeightLimiter, WeightPolicy
from candlekeeper.sim.venues.binance.session import (
    WsSession,
    error_frame,
    is_kline_stream,
    parse_ws_path,
)
from candlekeeper.venues.contract import VenueSpec


class Flavour(msgspec.Struct, frozen=True, kw_only=True):
    """What differs between the Binance venues beyond their specs."""

    #: control messages accept string ids (<= 36 characters) and null, not only integers
    string_ids: bool
    #: exchangeInfo in the futures shape (contract type, margin asset, ...)
    futures: bool


USDM_FLAVOUR = Flavour(string_ids=False, futures=True)
SPOT_FLAVOUR = Flavour(string_ids=True, futures=False)

USDM_BEHAVIOUR = Behaviour(
    pong_timeout_s=600.0, ban_s=120.0, enforces_control_rate=True, close_delay_s=(0.2, 2.0),
    idle_close=None,
    rest_final_delay_ms=100, stale_last_push=False, legacy_routes_push_klines=False,
    price_pad=None, published_extras=None,
    precision={})
SPOT_BEHAVIOUR = msgspec.structs.replace(USDM_BEHAVIOUR, pong_timeout_s=60.0, price_pad=8)


class BinancePersonality:
    """Binance USDⓈ-M futures or spot, as the flavour and behaviour say."""

    framing: Framing = TextFraming()
    in_band_ping = False
    firehose = True
    closing_frame_name = "x:true frame"

    def __init__(self, spec: VenueSpec, flavour: Flavour, behaviour: Behaviour) -> None:
        self.spec, self.flavour, self.behaviour = spec, flavour, behaviour
        #: the route that carries klines on a routed host ("/market"), "" on an unrouted one
        self.kline_route = urlsplit(spec.ws_base).path.rstrip("/")

    def parse_ws_path(self, path: str, query: Mapping[str, str],
                      opts: VenueOptions) -> WsPath | None:
        return parse_ws_path(self.kline_route, path, query, opts.legacy_routes_push_klines)

    def parse_stream(self, name: str) -> tuple[str, str] | None:
        return is_kline_stream(name)

    def stream_name(self, symbol: str, interval: str) -> str:
        return f"{symbol.lower()}@kline_{interval}"

    def new_session(self, is_valid: Callable[[str], bool], *, path: WsPath,
                    max_streams: int, now_ms: Callable[[], int]) -> Session:
        return WsSession(is_valid, combined=path.combined, max_streams=max_streams,
                         string_ids=self.flavour.string_ids)

    def is_pong(self, text: str) -> bool:
        return False  # pongs are RFC 6455 control frames

    def ping_payload(self) -> bytes:
        return b""

    def rate_limit_error(self) -> bytes:
        return error_frame(-1, "Too many requests: incoming message rate limit exceeded")

    def handshake_error(self, message: str) -> bytes:
        return msgspec.json.encode({"code": 2, "msg": f"Invalid request: {message}"})

    def malformed(self, stream: str) -> list[bytes]:
        s, sym = stream.encode(), stream.partition("@")[0].upper().encode()
        bad = [
            b"not json at all",
            b'{"e":"kline","E":1700000000000,"s":"' + sym + b'","k":{"t":oops}}',
            b'{"stream":"' + s + b'","data":{"e":"kline","E":"soon","s":"' + sym
            + b'","k":{"t":"x","x":"maybe"}}}',
            b"[]",
            b'{"e":"kline","E":1700000000000,"s":"' + sym + b'","k":{"t":1700000000000,"T":',
            b'{"stream":"' + s + b'","data":null}',
        ]
        return [self.framing.frame(b) for b in bad]

    def shutdown_notice(self, now_ms: int, combined_mode: bool) -> bytes | None:
        event = b'{"e":"serverShutdown","E":%d}' % now_ms
        return self.framing.frame(combined(b"!serverShutdown", event) if combined_mode
                                  else event)

    def make_pusher(self, market: Market, clock: ScaledClock, opts: VenueOptions,
                    seed: int) -> VenuePusher:
        return Pusher(market, clock, cadence_s=opts.update_interval_s,
                      close_delay_s=opts.close_delay_s, seed=seed)

    def make_rest(self, market: Market, clock: ScaledClock, opts: VenueOptions) -> RestApp:
        window = opts.rest_limits[0]
        limiter = WeightLimiter(window.limit, window.seconds, opts.ban_s)
        return BinanceRest(self.spec, self.flavour.futures, market, clock).app(
            WeightPolicy(limiter))

    def firehose_frames(self, candle: Candle, stream: str, combined: bool) -> FirehoseFrames:
        return FirehoseTemplate(candle, stream, combined)
