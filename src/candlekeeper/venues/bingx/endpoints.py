"""BingX perpetual swap (USDT-M) as data (protocols.md §C).

Limits and why each number is what it is:

* **200 topics per connection**, one ``dataType`` per ``sub`` message (the request has a single
  ``dataType`` field), so ``max_streams_per_subscribe=1``; a 201st topic is refused with 80403.
* **Control messages**: BingX documents no incoming-message rate. We send at most 10 per second
  (the transport uses 80 % of it): the same rate Binance documents for the same kind of message,
  and the rate BingX support suggested to JKorf/BingX.Net for REST calls. Subscribing 200 topics
  takes ~25 s per connection at that pace; the transport shards and connects in parallel.
* **REST**: BingX counts *requests*, not weights. Every call is weight 1 against the Market API
  group's IP limit of 1000 requests per minute, plus a second window of 500 requests per 10 s
  (both in ``rest_limits``), which the REST client enforces too. ``X-RateLimit-Requests-Remain``
  counts the requests left in that 10 s window (a live response showed ``499`` / ``10000``) and
  ``X-RateLimit-Requests-Expire`` when it ends. Body code ``100410`` means "rate limited" even on
  HTTP 200; 429 and 418 mean what they mean on Binance.
* **No closed flag** (``closed_flag=False``): the feed infers a close from the next push and
  confirms it over REST.
* The server sends a gzip'd text ``Ping`` every 5 s and expects a text ``Pong``; the connection
  lifetime is undocumented ("we don't close user connections"), so the generic 24 h rotation stays.
"""

from __future__ import annotations

from typing import Final

from candlekeeper.venues.contract import RestWindow, VenueSpec

_BIG: Final = 1 << 62

#: BingX kline intervals (BX-2023 table, JK ``KlineInterval``): no ``1s``
BINGX_INTERVALS: Final = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
                          "1d", "3d", "1w", "1M")

#: body code BingX returns when an IP is rate limited (protocols.md §C.4)
RATE_LIMITED_CODE: Final = 100410
#: code returned for a subscription over the 200-topic limit (protocols.md §C.2)
TOPIC_LIMIT_CODE: Final = 80403
#: requests per 10 s in the Market API group (the second, shorter REST window)
REQUESTS_PER_10S: Final = 500

BINGX_SWAP: Final = VenueSpec(
    id="bingx-swap",
    ws_base="wss://open-api-swap.bingx.com/swap-market",
    ws_testnet_base="wss://vst-open-api-ws.bingx.com/swap-market",  # VST (demo trading)
    rest_base="https://open-api.bingx.com",
    rest_testnet_base="https://open-api-vst.bingx.com",
    intervals=BINGX_INTERVALS,
    max_streams_per_connection=200,
    max_streams_per_subscribe=1,
    control_messages_per_second=10,
    connection_lifetime_s=None,  # "we don't close user connections"
    max_connections_per_ip=240,  # [!] only the zh text says so: "240 per IP"
    connect_limits=(),  # none documented
    ip_message_limits=(),  # none documented (a per-connection rate only)
    server_ping_interval_s=5.0,
    update_cadence_ms=1000,
    close_frame_max_delay_ms=1_000,  # the next candle's first push, one tick later at most
    closed_flag=False,
    pushes_when_quiet=True,  # "pushes the latest candle every second" (BX-V3 remark)
    rest_max_limit=1440,
    rest_klines_weights=((_BIG, 1),),
    rest_limits=(RestWindow(60.0, 1000), RestWindow(10.0, REQUESTS_PER_10S)),
    rest_history_candles=None,  # history back to the listing
)

#: REST paths (protocols.md §C.4); the simulator serves the same table
KLINES_PATH: Final = "/openApi/swap/v3/quote/klines"
KLINES_V2_PATH: Final = "/openApi/swap/v2/quote/klines"
CONTRACTS_PATH: Final = "/openApi/swap/v2/quote/contracts"
SERVER_TIME_PATH: Final = "/openApi/swap/v2/server/time"
#: headers with the requests left in the 10 s window and the ms until it ends
REMAIN_HEADER: Final = "X-RateLimit-Requests-Remain"
EXPIRE_HEADER: Final = "X-RateLimit-Requests-Expire"

BINGX_VENUES: Final = {BINGX_SWAP.id: BINGX_SWAP}
