"""Binance venues as data (protocols.md §A, §B, §E).

USDⓈ-M kline streams must use the routed ``/market`` path: since 2026-04-23 the unrouted
``/ws`` and ``/stream`` URLs accept subscriptions but push no kline data (BF-NOTICE).

Limits, and where each number comes from:

* 1024 streams per connection (200 per SUBSCRIBE: our choice, to keep messages short);
  10 (USDⓈ-M) / 5 (spot) incoming messages per second, pings and pongs included (§A.5, §B.3).
* Every connection is cut after 24 h; the server pings every 3 min (USDⓈ-M) / 20 s (spot).
* Forming candles are pushed every 250 ms (USDⓈ-M) / 2000 ms (spot) when they changed; the
  ``x:true`` frame comes up to ~2 s after the close (nothing of the stream in between).
* REST weight per IP and minute: 2400 (USDⓈ-M) / 6000 (spot), reported back in
  ``X-MBX-USED-WEIGHT-1M``. A klines call weighs by its ``limit`` on USDⓈ-M (1 / 2 / 5 / 10),
  2 whatever the limit on spot; exchangeInfo weighs 1 / 20.
"""

from __future__ import annotations

from typing import Final

import msgspec

from candlekeeper.core.intervals import ALL_INTERVALS
from candlekeeper.venues.contract import RestWindow, VenueSpec

_BIG: Final = 1 << 62
DAY_S: Final = 24 * 3600.0

BINANCE_USDM: Final = VenueSpec(
    id="binance-usdm",
    ws_base="wss://fstream.binance.com/market",
    # [!] the testnet WS host changed to fstream.binancefuture.com on 2024-01-24 (BF-CL); we
    # assume it follows the same routed-path layout as production.
    ws_testnet_base="wss://fstream.binancefuture.com/market",
    rest_base="https://fapi.binance.com",
    rest_testnet_base="https://demo-fapi.binance.com",
    intervals=tuple(i for i in ALL_INTERVALS if i != "1s"),  # 1s is spot-only (A.4 [!])
    max_streams_per_connection=1024,
    max_streams_per_subscribe=200,
    control_messages_per_second=10,
    connection_lifetime_s=DAY_S,
    # [!] the futures docs state none; the spot figure (A.5): 300 connections per 5 minutes
    max_connections_per_ip=None,  # none documented
    connect_limits=(RestWindow(300.0, 300),),
    ip_message_limits=(),  # none documented (a per-connection rate only)
    server_ping_interval_s=180.0,
    update_cadence_ms=250,
    close_frame_max_delay_ms=2_000,
    closed_flag=True,
    pushes_when_quiet=False,  # pushes only with trades; the x:true frame always (§A.4)
    rest_max_limit=1500,
    rest_klines_weights=((100, 1), (500, 2), (1001, 5), (_BIG, 10)),
    rest_limits=(RestWindow(60.0, 2400),),
    rest_history_candles=None,  # history back to the listing
)

BINANCE_SPOT: Final = VenueSpec(
    id="binance-spot",
    ws_base="wss://stream.binance.com:9443",
    ws_testnet_base="wss://stream.testnet.binance.vision",
    rest_base="https://api.binance.com",
    rest_testnet_base="https://testnet.binance.vision",
    intervals=ALL_INTERVALS,
    max_streams_per_connection=1024,
    max_streams_per_subscribe=200,
    control_messages_per_second=5,
    connection_lifetime_s=DAY_S,
    max_connections_per_ip=None,  # none documented
    connect_limits=(RestWindow(300.0, 300),),  # "300 connections per attempt every 5 minutes"
    ip_message_limits=(),  # none documented (a per-connection rate only)
    server_ping_interval_s=20.0,
    update_cadence_ms=2000,
    close_frame_max_delay_ms=2_000,
    closed_flag=True,
    pushes_when_quiet=False,  # pushes only with trades; the x:true frame always (§A.4)
    rest_max_limit=1000,
    rest_klines_weights=((_BIG, 2),),
    rest_limits=(RestWindow(60.0, 6000),),
    rest_history_candles=None,  # history back to the listing
)


class RestPaths(msgspec.Struct, frozen=True, kw_only=True):
    """The REST endpoints of one Binance venue (the simulator serves the same table)."""

    klines: str
    exchange_info: str
    exchange_info_weight: int
    time: str
    ping: str


REST_PATHS: Final[dict[str, RestPaths]] = {
    BINANCE_USDM.id: RestPaths(klines="/fapi/v1/klines", exchange_info="/fapi/v1/exchangeInfo",
                               exchange_info_weight=1, time="/fapi/v1/time",
                               ping="/fapi/v1/ping"),
    BINANCE_SPOT.id: RestPaths(klines="/api/v3/klines", exchange_info="/api/v3/exchangeInfo",
                               exchange_info_weight=20, time="/api/v3/time",
                               ping="/api/v3/ping"),
}

#: the header that reports the weight an IP used in the current minute
USED_WEIGHT_HEADER: Final = "X-MBX-USED-WEIGHT-1M"
#: error code of an unknown symbol (errors.md: -1121 "Invalid symbol.")
INVALID_SYMBOL: Final = -1121

BINANCE_VENUES: Final = {v.id: v for v in (BINANCE_USDM, BINANCE_SPOT)}
