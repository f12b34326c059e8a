"""Hyperliquid's candle pushes (§F.3, §F.4): what differs from the one pusher every venue runs
(:mod:`candlekeeper.sim.push`, which also says how the timing works).

* **Timing**: a venue without a closed flag. The current candle of every subscribed stream,
  every ``cadence_s`` of wall time (1 s; the probe measured 0.9-1.8 pushes a second), whether
  or not it changed; a client learns that the candle opening at ``T0`` closed only when a push
  with a later ``T`` arrives, and (the default, ``stale_last_push=True``) the last push of a
  candle may predate its close. The truth (``Simulator.closed_candles``) and REST (once the
  candle closed) always have the final candle; a client must confirm the inferred close over
  REST. Hyperliquid's push order around a close is undocumented (§F.4 [!]); the stale last push
  is the worst case a client must survive.
* **Rendering**: ``{"channel":"candle","data":{"t","T","s","i","o","c","h","l","v","n"}}``
  with the coin as subscribed and ``n`` the truth's trade count (:func:`trades`).
"""

from __future__ import annotations

from collections.abc import Sequence

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.sim.framing import text_frame
from candlekeeper.sim.market import Market
from candlekeeper.sim.options import VenueOptions
from candlekeeper.sim.push import KlinePusher, Render, Timing, Wire
from candlekeeper.sim.venues.hyperliquid.session import push_payload
from candlekeeper.venues.hyperliquid.stream import parse_stream


def trades(c: Candle) -> int:
    """``n`` of a push or row: the truth's trade count (Hyperliquid publishes it), else a
    count derived from the volume's leading digits (deterministic, for a replayed series that
    has none)."""
    if c.trades is not None:
        return c.trades
    digits = c.volume_str.replace(".", "").lstrip("0")
    return int(digits[:4] or "0")


def _parse(name: str) -> tuple[str, str, Render] | None:
    parsed = parse_stream(name)
    if parsed is None:
        return None
    coin, interval = parsed

    def render(candles: Sequence[Candle], event_time: int) -> bytes:
        c = candles[0]
        return push_payload(coin, c, trades(c))

    return coin.upper(), interval, render


WIRE = Wire(_parse, text_frame)


def make_pusher(market: Market, clock: ScaledClock, opts: VenueOptions,
                seed: int) -> KlinePusher:
    return KlinePusher(market, clock, WIRE,
                       Timing(opts.update_interval_s, None, opts.stale_last_push), seed=seed)
