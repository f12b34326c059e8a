"""The simulator's venue personalities: Binance USDⓈ-M / spot and BingX perpetual swap.

Each is a small object satisfying :class:`~candlekeeper.sim.venues.common.Personality`; the
venue server asks it everything that differs between venues and stays venue-agnostic itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from candlekeeper.core.clock import ScaledClock
from candlekeeper.errors import ConfigError
from candlekeeper.sim.market import Market
from candlekeeper.sim.push import Pusher
from candlekeeper.sim.rest import RestApi, WeightLimiter
from candlekeeper.sim.server import VenueOptions
from candlekeeper.sim.venues import binance, bingx
from candlekeeper.sim.venues.binance_frames import combined
from candlekeeper.sim.venues.bingx_push import BingxPusher
from candlekeeper.sim.venues.bingx_rest import BingxRestApi, RequestLimiter
from candlekeeper.sim.venues.common import (
    Framing,
    GzipFraming,
    Personality,
    RestService,
    Session,
    TextFraming,
    VenuePusher,
    WsPath,
)
from candlekeeper.venues.contract import VenueSpec


class BinancePersonality:
    """Binance USDⓈ-M futures or spot (protocols.md §A, §B)."""

    framing: Framing = TextFraming()
    in_band_ping = False
    firehose = True
    closing_frame_name = "x:true frame"

    def __init__(self, venue: str) -> None:
        self.venue = venue

    def parse_ws_path(self, path: str, query: Mapping[str, str],
                      legacy_routes_push_klines: bool) -> WsPath | None:
        return binance.parse_ws_path(self.venue, path, query, legacy_routes_push_klines)

    def parse_stream(self, name: str) -> tuple[str, str] | None:
        return binance.is_kline_stream(name)

    def stream_name(self, symbol: str, interval: str) -> str:
        return f"{symbol.lower()}@kline_{interval}"

    def new_session(self, is_valid: Callable[[str], bool], *, combined: bool,
                    max_streams: int, now_ms: Callable[[], int]) -> Session:
        return binance.WsSession(self.venue, is_valid, combined=combined,
                                 max_streams=max_streams)

    def is_pong(self, text: str) -> bool:
        return False  # Binance pongs are RFC 6455 control frames

    def ping_payload(self) -> bytes:
        return b""

    def rate_limit_error(self) -> bytes:
        return binance.error_frame(-1, "Too many requests: incoming message rate limit exceeded")

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

    def make_rest(self, spec: VenueSpec, market: Market, clock: ScaledClock,
                  opts: VenueOptions) -> RestService:
        return RestApi(spec, market, clock, WeightLimiter(
            opts.rest_weight_limit, opts.rest_window_s, opts.ban_s))


class BingxPersonality:
    """BingX perpetual swap (protocols.md §C): gzip'd binary frames, in-band Ping/Pong, string
    ids, 80403 over 200 topics, a 1 s push of the current candle with no closed flag."""

    venue = bingx.VENUE
    framing: Framing = GzipFraming()
    in_band_ping = True
    firehose = False
    closing_frame_name = "last push of a candle"

    def parse_ws_path(self, path: str, query: Mapping[str, str],
                      legacy_routes_push_klines: bool) -> WsPath | None:
        return WsPath(False, True, ()) if path.rstrip("/") == bingx.WS_PATH else None

    def parse_stream(self, name: str) -> tuple[str, str] | None:
        return bingx.parse_data_type(name)

    def stream_name(self, symbol: str, interval: str) -> str:
        return bingx.data_type(symbol, interval)

    def new_session(self, is_valid: Callable[[str], bool], *, combined: bool,
                    max_streams: int, now_ms: Callable[[], int]) -> Session:
        return bingx.BingxSession(is_valid, max_streams=max_streams, now_ms=now_ms)

    def is_pong(self, text: str) -> bool:
        return text == bingx.PONG

    def ping_payload(self) -> bytes:
        return bingx.PING.encode()

    def rate_limit_error(self) -> bytes:
        return bingx.error_payload(bingx.INVALID_PARAMETER, "too many messages", None, 0)

    def malformed(self, stream: str) -> list[bytes]:
        return bingx.malformed_frames(stream)

    def shutdown_notice(self, now_ms: int, combined_mode: bool) -> bytes | None:
        return None  # BingX announces nothing; "new features may result in disconnections"

    def make_pusher(self, market: Market, clock: ScaledClock, opts: VenueOptions,
                    seed: int) -> VenuePusher:
        return BingxPusher(market, clock, cadence_s=opts.update_interval_s,
                           stale_last_push=opts.stale_last_push)

    def make_rest(self, spec: VenueSpec, market: Market, clock: ScaledClock,
                  opts: VenueOptions) -> RestService:
        limit = opts.rest_weight_limit
        return BingxRestApi(spec, market, clock, RequestLimiter(
            ((10.0, max(1, limit // 2)), (60.0, limit)), ban_s=opts.ban_s))


PERSONALITIES: Final[dict[str, Callable[[], Personality]]] = {
    "binance-usdm": lambda: BinancePersonality("binance-usdm"),
    "binance-spot": lambda: BinancePersonality("binance-spot"),
    bingx.VENUE: BingxPersonality,
}


def personality_for(venue: str) -> Personality:
    try:
        return PERSONALITIES[venue]()
    except KeyError:
        raise ConfigError(f"the simulator has no venue {venue!r}; expected one of "
                          f"{', '.join(PERSONALITIES)}") from None
