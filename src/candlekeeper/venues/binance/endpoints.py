"""Binance venues as data (protocols.md §A, §B, §E).

USDⓈ-M kline streams must use the routed ``/market`` path: since 2026-04-23 the unrouted
``/ws`` and ``/stream`` URLs accept subscriptions but push no kline data (BF-NOTICE).
"""

from __future__ import annotations

from typing import Final

from candlekeeper.core.intervals import ALL_INTERVALS
from candlekeeper.venues.base import VenueSpec

_BIG: Final = 1 << 62

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
    control_messages_per_second=10,
    rest_klines_path="/fapi/v1/klines",
    rest_max_limit=1500,
    rest_klines_weights=((100, 1), (500, 2), (1001, 5), (_BIG, 10)),
    rest_weight_limit_per_minute=2400,
    exchange_info_path="/fapi/v1/exchangeInfo",
    exchange_info_weight=1,
    update_cadence_ms=250,
    server_ping_interval_s=180.0,
)

BINANCE_SPOT: Final = VenueSpec(
    id="binance-spot",
    ws_base="wss://stream.binance.com:9443",
    ws_testnet_base="wss://stream.testnet.binance.vision",
    rest_base="https://api.binance.com",
    rest_testnet_base="https://testnet.binance.vision",
    intervals=ALL_INTERVALS,
    max_streams_per_connection=1024,
    control_messages_per_second=5,
    rest_klines_path="/api/v3/klines",
    rest_max_limit=1000,
    rest_klines_weights=((_BIG, 2),),
    rest_weight_limit_per_minute=6000,
    exchange_info_path="/api/v3/exchangeInfo",
    exchange_info_weight=20,
    update_cadence_ms=2000,
    server_ping_interval_s=20.0,
)

BINANCE_VENUES: Final = {v.id: v for v in (BINANCE_USDM, BINANCE_SPOT)}
