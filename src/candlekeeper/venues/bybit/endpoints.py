"""Bybit v5 linear (USDT perpetuals) and spot as data (protocols-more-venues.md §D).

Limits and why each number is what it is:

* **REST**: "600 requests within a 5-second window per IP" (§D.10); Bybit counts *requests*,
  so every call weighs 1. A breach answers HTTP 403 "access too frequent" and blocks the IP for
  at least 10 minutes: the shared budget must never reach it (the REST client paces at a
  fraction of ``rest_limits``). ``/v5/market/kline`` serves at most 1000 rows (§D.7).
* **Subscribe args**: spot takes at most 10 args per subscribe request; linear has no args
  limit but one connection's args may not exceed 21,000 characters (§D.6). A kline topic is at
  most ~33 characters with its quotes and comma, so 500 topics per connection stay under
  17,000 characters; linear subscribes go 50 at a time (our choice: small frames, quick acks).
* **Control messages**: Bybit documents no incoming-message rate; we send at most 10 per
  second (Binance's documented number for the same kind of message).
* **Heartbeat**: the client sends ``{"op":"ping"}`` every 20 s (§D.5); the server never pings.
  The only idle rule is "cut off after 10 minutes" without ping-pong or data.
* **Closed flag**: ``confirm: true`` (§D.4). How late the closing frame comes is undocumented;
  we allow 3 s before the feed asks REST.
* **Push cadence** "1-60s" (§D.3): the simulator pushes every second.
"""

from __future__ import annotations

from typing import Final

from candlekeeper.venues.contract import RestWindow, VenueSpec

_BIG: Final = 1 << 62

#: our interval name -> Bybit's (§D.3; the same names on REST and WebSocket)
INTERVAL_NAMES: Final[dict[str, str]] = {
    "1m": "1", "3m": "3", "5m": "5", "15m": "15", "30m": "30", "1h": "60", "2h": "120",
    "4h": "240", "6h": "360", "12h": "720", "1d": "D", "1w": "W", "1M": "M",
}
#: Bybit's interval name -> ours
INTERVALS_BY_NAME: Final[dict[str, str]] = {v: k for k, v in INTERVAL_NAMES.items()}
BYBIT_INTERVALS: Final = tuple(INTERVAL_NAMES)

#: REST paths (§D.7-§D.9); the simulator serves the same table
KLINES_PATH: Final = "/v5/market/kline"
INSTRUMENTS_PATH: Final = "/v5/market/instruments-info"
SERVER_TIME_PATH: Final = "/v5/market/time"
#: the topic of a kline stream: ``kline.<interval>.<SYMBOL>``
KLINE_PREFIX: Final = "kline."
#: the largest ``limit`` instruments-info takes (§D.8)
INSTRUMENTS_PAGE: Final = 1000
#: the ban after a breach of the IP limit: "wait for at least 10 minutes" (§D.10)
BAN_S: Final = 600.0
#: the documented heartbeat period (§D.5)
PING_EVERY_S: Final = 20.0

def _spec(venue_id: str, market: str, max_streams_per_subscribe: int) -> VenueSpec:
    """One Bybit market; the two differ only in their URL path and subscribe batch."""
    return VenueSpec(
        id=venue_id,
        ws_base=f"wss://stream.bybit.com/v5/public/{market}",
        ws_testnet_base=f"wss://stream-testnet.bybit.com/v5/public/{market}",
        rest_base="https://api.bybit.com",
        rest_testnet_base="https://api-testnet.bybit.com",
        intervals=BYBIT_INTERVALS,
        max_streams_per_connection=500,
        max_streams_per_subscribe=max_streams_per_subscribe,
        control_messages_per_second=10,
        connection_lifetime_s=None,  # none documented
        max_connections_per_ip=1000,  # "1,000 connections per IP for market data" (D.6)
        connect_limits=(RestWindow(300.0, 500),),  # "over 500 connections in 5 minutes" (D.6)
        ip_message_limits=(),  # none documented (a per-connection rate only)
    server_ping_interval_s=None,  # the client pings (codec.heartbeat)
        update_cadence_ms=1000,  # "1-60s"
        close_frame_max_delay_ms=3_000,  # undocumented; our allowance
        closed_flag=True,
        pushes_when_quiet=False,  # "push frequency 1-60s": quiet pushes not promised
        rest_max_limit=1000,
        rest_klines_weights=((_BIG, 1),),
        rest_limits=(RestWindow(5.0, 600),),
        rest_history_candles=None,  # history back to the listing
    )


#: no args limit for futures: 50 topics per subscribe is our batch size
BYBIT_LINEAR: Final = _spec("bybit-linear", "linear", 50)
#: "Spot can input up to 10 args for each subscription request"
BYBIT_SPOT: Final = _spec("bybit-spot", "spot", 10)

#: venue id -> the ``category`` its REST calls name
CATEGORY: Final[dict[str, str]] = {BYBIT_LINEAR.id: "linear", BYBIT_SPOT.id: "spot"}
BYBIT_VENUES: Final = {BYBIT_LINEAR.id: BYBIT_LINEAR, BYBIT_SPOT.id: BYBIT_SPOT}
