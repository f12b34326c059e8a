"""OKX v5 venues as data: USDT perpetual swaps and spot (protocols-more-venues.md §E).

Candles are on the **business** WebSocket (``/ws/v5/business``) since 2023; the public URL
answers a candle subscribe with ``60018`` (§E.1). Demo trading uses the same paths on
``wspap.okx.com``. REST: OKX's own docs now list ``openapi.okx.com``; every client we know
(ccxt, JKorf, cryptofeed, hummingbot) uses ``www.okx.com`` (§E.1 [!]); we use ``www.okx.com``,
which serves both, and every base can be overridden in config.

Limits and where each number comes from:

* **One channel per subscribe** (``max_streams_per_subscribe=1``): OKX acknowledges every arg of
  a request with its own frame (§E.2), and a request refused for one bad arg would leave the
  others' fate unclear; one arg per request gives one ack or one error per stream.
* **480 subscribe/unsubscribe operations per connection per hour** (§E.6). At one channel per
  operation, **100 channels per connection** (our choice; OKX documents no cap, §H) keep a
  connection's first hour at 100 operations and leave room for resubscribes.
* **Control messages**: OKX documents no message rate for public channels (only the hourly
  operation budget and ``60014`` "Requests too frequent"); 10 per second is our own pace.
* **3 connections per second per IP** (§E.6): the contract has no field for a connection rate;
  at 100 channels per connection a service needs more than 300 streams before it opens a fourth
  connection (see docs/venues.md).
* **Heartbeat**: the client sends the text ``ping`` after 20 s without a frame (the server
  closes after 30 s without data, code 4004) and expects ``pong`` (§E.5); the server never pings.
* **Closed flag**: ``confirm`` ``"1"`` (§E.4); forming candles are pushed at most once a second.
* **REST**: ``market/candles`` 40 requests / 2 s and ``market/history-candles`` 20 / 2 s per IP,
  at most 300 rows per call (§E.7). The contract has one per-IP budget for every call, so we state
  the stricter one, **20 requests per 2 s**, every call weight 1: the client can never exceed
  either endpoint's limit, whichever it uses. ``public/time`` allows 10 / 2 s; the client calls it
  rarely (clock checks).
"""

from __future__ import annotations

from typing import Final

from candlekeeper.venues.contract import RestWindow, VenueSpec

_BIG: Final = 1 << 62

#: our interval names OKX serves -> its bar names; every bar of 6h and above is the ``utc`` one,
#: so candles open at 00:00 UTC like on every other venue (the plain names open at UTC+8).
#: ``1s`` (history-candles keeps only 3 months of it), ``8h`` (no such bar) and ``3d`` (OKX's
#: 3Dutc grid is undocumented) are left out.
BARS: Final[dict[str, str]] = {
    "1m": "1m", "3m": "3m", "5m": "5m", "15m": "15m", "30m": "30m",
    "1h": "1H", "2h": "2H", "4h": "4H",
    "6h": "6Hutc", "12h": "12Hutc", "1d": "1Dutc", "1w": "1Wutc", "1M": "1Mutc",
}
OKX_INTERVALS: Final = tuple(BARS)

#: the WebSocket channel of a bar is ``candle`` + the bar name (``candle1Dutc``)
CHANNEL_PREFIX: Final = "candle"

# -- codes (§E.2, §E.10); OKX sends every code as a string ----------------------------------
RATE_LIMITED_CODE: Final = "50011"
UNKNOWN_INSTRUMENT_CODE: Final = "51001"
BAD_PARAMETER_CODE: Final = "51000"
WS_INVALID_REQUEST: Final = "60012"
WS_INVALID_ARGS: Final = "60013"
WS_TOO_FREQUENT: Final = "60014"
WS_WRONG_URL_OR_CHANNEL: Final = "60018"
WS_INVALID_OP: Final = "60019"
WS_MOVED_TO_BUSINESS: Final = "64001"
WS_SERVICE_UPGRADE: Final = "64008"
#: subscribe/unsubscribe operations one connection may send per hour (§E.6)
SUBSCRIBE_OPS_PER_HOUR: Final = 480
#: the server closes a connection after this long without data (§E.5, close code 4004)
IDLE_CLOSE_S: Final = 30.0

#: REST paths (§E.7-E.9); the simulator serves the same table
CANDLES_PATH: Final = "/api/v5/market/candles"
HISTORY_CANDLES_PATH: Final = "/api/v5/market/history-candles"
INSTRUMENTS_PATH: Final = "/api/v5/public/instruments"
SERVER_TIME_PATH: Final = "/api/v5/public/time"
#: rows ``market/candles`` reaches back (§E.7: "the latest 1,440 data entries")
CANDLES_DEPTH: Final = 1440
#: per-endpoint REST limits per IP, (requests, seconds) (§E.7-E.9)
ENDPOINT_LIMITS: Final[dict[str, tuple[int, float]]] = {
    CANDLES_PATH: (40, 2.0),
    HISTORY_CANDLES_PATH: (20, 2.0),
    INSTRUMENTS_PATH: (20, 2.0),
    SERVER_TIME_PATH: (10, 2.0),
}


def _spec(venue_id: str) -> VenueSpec:
    return VenueSpec(
        id=venue_id,
        ws_base="wss://ws.okx.com:8443/ws/v5/business",
        ws_testnet_base="wss://wspap.okx.com:8443/ws/v5/business",
        rest_base="https://www.okx.com",
        rest_testnet_base="https://www.okx.com",  # demo: same host, header x-simulated-trading
        intervals=OKX_INTERVALS,
        max_streams_per_connection=100,
        max_streams_per_subscribe=1,
        control_messages_per_second=10,
        connection_lifetime_s=None,  # undocumented
        max_connections_per_ip=None,  # none documented for public channels
        connect_limits=(RestWindow(1.0, 3),),  # "3 requests per second (based on IP)" (E.6)
        ip_message_limits=(),  # none documented (a per-connection rate only)
    server_ping_interval_s=None,  # the client pings (text "ping")
        update_cadence_ms=1000,
        close_frame_max_delay_ms=2_000,  # undocumented (§H); our simulator: 0.2-1 s
        closed_flag=True,
        pushes_when_quiet=False,  # whether quiet candles are pushed is not documented
        rest_max_limit=300,
        rest_klines_weights=((_BIG, 1),),
        rest_limits=(RestWindow(2.0, 20),),
        rest_history_candles=None,  # history-candles reaches back years
    )


OKX_SWAP: Final = _spec("okx-swap")
OKX_SPOT: Final = _spec("okx-spot")

#: OKX ``instType`` of each venue, and the suffix its instrument ids carry
INST_TYPE: Final = {OKX_SWAP.id: "SWAP", OKX_SPOT.id: "SPOT"}
INST_SUFFIX: Final = {OKX_SWAP.id: "-SWAP", OKX_SPOT.id: ""}

OKX_VENUES: Final = {OKX_SWAP.id: OKX_SWAP, OKX_SPOT.id: OKX_SPOT}
