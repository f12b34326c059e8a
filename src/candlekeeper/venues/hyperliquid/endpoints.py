"""Hyperliquid perpetuals as data (protocols-more-venues.md §F).

Limits and why each number is what it is (where the sources disagree, the stricter one):

* **Connections**: the docs' older snapshots say 100 WebSocket connections per IP, the newer
  ones (after 2025-11-23, and the 2026-09 probe) **10 connections** and **30 new connections
  per minute** (§F.6 [!]). We keep to 10: **1000 subscriptions per IP** over 10 connections is
  **100 streams per connection** (``max_streams_per_connection``).
* **One subscription per message** (§F.2): ``max_streams_per_subscribe=1``.
* **2000 messages per minute per IP** across all connections (§F.6), and "a client that sends
  many subscribes at once receives nothing" (a third-party note): we pace at
  ``control_messages_per_second=5`` per connection (the transport uses 80 % of it, 240 a
  minute), and every connection of the process shares ``ip_message_limits`` (2000 a minute;
  the transport keeps to 80 % of that too), so ten connections subscribing at once wait for
  their turn instead of sending 2400 a minute.
* **Heartbeat**: the server closes a connection it has sent nothing on for 60 s and never pings
  (§F.5); the client sends ``{"method":"ping"}`` every 30 s (the SDK: 50 s) and expects
  ``{"channel":"pong"}``.
* **No closed flag** (§F.4): a push for a later ``t`` closes the previous candle, confirmed
  over REST (``closed_flag=False``). Pushes come 0.9-1.8 a second (§F.3, probe): the next
  candle's first push comes within ~2 s of a close.
* **REST** (§F.7, §F.10): one ``POST /info``; 1200 weight per minute per IP; ``candleSnapshot``
  weighs 20 plus an unquantified "additional weight per 60 items returned": we charge one more
  per 60 rows asked. "Responses that take a time range will only return 500 elements": whether
  that applies to candles is not stated, so a page is at most **500** candles (the stricter
  reading). "Only the most recent **5000** candles are available" per coin and interval
  (``rest_history_candles``): an older hole cannot be filled from Hyperliquid.
"""

from __future__ import annotations

from typing import Final

from candlekeeper.venues.contract import RestWindow, VenueSpec

#: Hyperliquid's interval names are ours (§F.3); no 6h
HL_INTERVALS: Final = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d",
                       "3d", "1w", "1M")

#: the one REST path (every market-data call is a POST of ``{"type": ...}``)
INFO_PATH: Final = "/info"
#: info request types (§F.7-§F.9, §F.11)
CANDLE_SNAPSHOT: Final = "candleSnapshot"
META: Final = "meta"
EXCHANGE_STATUS: Final = "exchangeStatus"
#: weights (§F.10): 2 for exchangeStatus and a few others, 20 for every other info request
LIGHT_WEIGHT: Final = 2
INFO_WEIGHT: Final = 20
#: "additional rate limit weight per 60 items returned" (unquantified: one per 60 here)
ITEMS_PER_EXTRA_WEIGHT: Final = 60
#: rows one candleSnapshot page asks for at most (the 500-element pagination rule)
PAGE_ROWS: Final = 500
#: "Only the most recent 5000 candles are available"
HISTORY_CANDLES: Final = 5000
#: the server closes a connection it has sent nothing on for this long (§F.5)
IDLE_CLOSE_S: Final = 60.0
#: our heartbeat period (well inside the 60 s)
PING_EVERY_S: Final = 30.0
#: WebSocket messages per minute per IP the venue accepts (§F.6)
MESSAGES_PER_MINUTE: Final = 2000


def klines_weights() -> tuple[tuple[int, int], ...]:
    """``limit < 61`` weighs 21, ``< 121`` 22, ... up to a 500-row page (29)."""
    return tuple((ITEMS_PER_EXTRA_WEIGHT * k + 1, INFO_WEIGHT + k) for k in range(1, 10))


HYPERLIQUID_PERP: Final = VenueSpec(
    id="hyperliquid-perp",
    ws_base="wss://api.hyperliquid.xyz/ws",
    ws_testnet_base="wss://api.hyperliquid-testnet.xyz/ws",
    rest_base="https://api.hyperliquid.xyz",
    rest_testnet_base="https://api.hyperliquid-testnet.xyz",
    intervals=HL_INTERVALS,
    max_streams_per_connection=100,
    max_streams_per_subscribe=1,
    control_messages_per_second=5,
    connection_lifetime_s=None,  # none documented
    max_connections_per_ip=10,  # [!] "10 websocket connections" (was 100 before 2025-11)
    connect_limits=(RestWindow(60.0, 30),),  # "30 new websocket connections per minute"
    ip_message_limits=(RestWindow(60.0, MESSAGES_PER_MINUTE),),  # across all connections
    server_ping_interval_s=None,  # the client pings ({"method":"ping"})
    update_cadence_ms=1000,  # measured 0.9-1.8 pushes a second
    close_frame_max_delay_ms=2_000,  # the next candle's first push
    closed_flag=False,
    pushes_when_quiet=False,  # not documented (the probe watched a busy coin only)
    rest_max_limit=PAGE_ROWS,
    rest_klines_weights=klines_weights(),
    rest_limits=(RestWindow(60.0, 1200),),
    rest_history_candles=HISTORY_CANDLES,
)

HL_VENUES: Final = {HYPERLIQUID_PERP.id: HYPERLIQUID_PERP}
