"""The Hyperliquid perpetuals personality (§F): JSON text frames on ``/ws``, one subscription
per message, acks that echo the subscription (no id), a client ``{"method":"ping"}`` answered
``{"channel":"pong"}``, pushes of the whole forming candle about once a second with **no closed
flag**, an unknown coin answered by dropping the socket, and one ``POST /info`` REST route.

Facts (cadence, limits, intervals, REST window, the 5,000-candle memory) come from the venue's
``VenueSpec``; simulator choices are :data:`BEHAVIOUR`:

* the server never pings (the client does); ``pong_timeout_s`` is therefore unused and set to
  the 60 s idle rule;
* **idle close**: a connection the server has sent nothing on for 60 s is dropped without a
  close frame, so the client reports 1006 (§F.5: what the probe saw);
* no incoming-message limit closes a connection (none documented as such); subscribe bursts
  beyond 20 a second are silently ignored (``session.BURST_PER_S``);
* the last push of a candle is stale (``stale_last_push``): the push order around a close is
  undocumented (§F.4 [!]), so the client's REST confirmation is always exercised;
* REST shows a candle's final values 100 ms after its close;
* no REST ban is documented: ``ban_s`` is the 60 s window the 429 lasts at most;
* Hyperliquid publishes OHLCV and a trade count (``n``): the truth keeps those
  (``published_extras``);
* BTC's real decimals (``szDecimals`` 5, prices with one decimal, e.g. ``"84143.0"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.errors import ConfigError
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
from candlekeeper.sim.venues.hyperliquid.push import HyperliquidPusher
from candlekeeper.sim.venues.hyperliquid.rest import HyperliquidRest, WeightLimiter, WeightPolicy
from candlekeeper.sim.venues.hyperliquid.session import (
    HyperliquidSession,
    error_payload,
    malformed_frames,
)
from candlekeeper.venues.contract import VenueSpec
from candlekeeper.venues.hyperliquid.endpoints import IDLE_CLOSE_S
from candlekeeper.venues.hyperliquid.stream import parse_stream, stream_name
from candlekeeper.venues.hyperliquid.symbols import native

BEHAVIOUR = Behaviour(
    pong_timeout_s=IDLE_CLOSE_S, ban_s=60.0, enforces_control_rate=False,
    close_delay_s=(0.0, 0.0), idle_close=IdleClose(IDLE_CLOSE_S, None, "idle"),
    rest_final_delay_ms=100, stale_last_push=True, legacy_routes_push_klines=False,
    price_pad=None, published_extras=("trades",), precision={"BTCUSDT": (1, 5)})


class HyperliquidPersonality:
    """Hyperliquid perpetuals: everything they do differently, asked by the generic server."""

    framing: Framing = TextFraming()
    in_band_ping = False  # the server never pings; the client's JSON ping is a request
    firehose = False
    closing_frame_name = "last push of a candle"

    def __init__(self, spec: VenueSpec, behaviour: Behaviour = BEHAVIOUR) -> None:
        self.spec, self.behaviour = spec, behaviour
        self.ws_path = urlsplit(spec.ws_base).path.rstrip("/")  # "/ws"
        self.intervals = frozenset(spec.intervals)

    def parse_ws_path(self, path: str, query: Mapping[str, str],
                      opts: VenueOptions) -> WsPath | None:
        return WsPath(False, True, ()) if path.rstrip("/") == self.ws_path else None

    def parse_stream(self, name: str) -> tuple[str, str] | None:
        parsed = parse_stream(name)
        if parsed is None or parsed[1] not in self.intervals:
            return None
        coin = parsed[0]
        try:
            if native(coin) != coin:  # the venue is case-sensitive: ``btc`` is no coin
                return None
        except ConfigError:
            return None
        return coin.upper(), parsed[1]

    def stream_name(self, symbol: str, interval: str) -> str:
        return stream_name(symbol, interval)

    def new_session(self, is_valid: Callable[[str], bool], *, path: WsPath,
                    max_streams: int, now_ms: Callable[[], int]) -> Session:
        return HyperliquidSession(is_valid, intervals=self.intervals, max_streams=max_streams)

    def is_pong(self, text: str) -> bool:
        return False  # the server never pings in-band

    def ping_payload(self) -> bytes:
        return b""

    def rate_limit_error(self) -> bytes:
        return error_payload("Too many messages")

    def handshake_error(self, message: str) -> bytes:
        return msgspec.json.encode({"channel": "error", "data": message})

    def malformed(self, stream: str) -> list[bytes]:
        return malformed_frames(stream)

    def shutdown_notice(self, now_ms: int, combined_mode: bool) -> bytes | None:
        return None  # Hyperliquid announces nothing

    def make_pusher(self, market: Market, clock: ScaledClock, opts: VenueOptions,
                    seed: int) -> VenuePusher:
        return HyperliquidPusher(market, clock, cadence_s=opts.update_interval_s,
                                 stale_last_push=opts.stale_last_push)

    def make_rest(self, market: Market, clock: ScaledClock, opts: VenueOptions) -> RestApp:
        window = opts.rest_limits[0]
        limiter = WeightLimiter(window.limit, window.seconds)
        return HyperliquidRest(self.spec, market, clock).app(WeightPolicy(limiter))

    def firehose_frames(self, candle: Candle, stream: str, combined: bool) -> FirehoseFrames:
        raise NotImplementedError("Hyperliquid has no firehose mode")
