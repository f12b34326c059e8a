"""Bybit's kline pushes (§D.3, §D.4): what differs from the one pusher every venue runs
(:mod:`candlekeeper.sim.push`, which also says how the timing works).

* **Timing**: a venue with a closed flag. The forming candle (``confirm: false``) every
  ``cadence_s`` of wall time (1 s: the docs say "1-60s") when it changed and once it has had a
  trade; the closing frame (``confirm: true``) exactly once per candle, ``close_delay_s``
  (wall, fixed per candle by the seed) after the candle's close in venue time.
* **Rendering**: ``{"topic":..,"data":[..],"ts":..,"type":"snapshot"}``. On every other close
  (candles whose index since the epoch is even: :func:`pairs_next`) the closing frame also
  carries the next candle as it stands, in the same ``data`` array: "Bybit can ship the closing
  bar and the newly opened one together" (§D.3 [!]). A client that reads only ``data[0]``
  loses nothing it cannot get from the next push, but one that stops at the first candle
  misses the array's point.
"""

from __future__ import annotations

from collections.abc import Sequence

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.core.intervals import INTERVAL_MS
from candlekeeper.sim.framing import text_frame
from candlekeeper.sim.market import Market
from candlekeeper.sim.options import VenueOptions
from candlekeeper.sim.push import KlinePusher, Render, Timing, Wire
from candlekeeper.sim.venues.bybit.session import push_payload
from candlekeeper.venues.bybit.stream import parse_topic


def pairs_next(final: Candle) -> bool:
    """Does the closing frame of ``final`` also carry the next candle? Every other candle, so
    both shapes occur on every stream, predictably."""
    return (final.open_time // INTERVAL_MS[final.interval]) % 2 == 0


def _parse(name: str) -> tuple[str, str, Render] | None:
    parsed = parse_topic(name)
    if parsed is None:
        return None

    def render(candles: Sequence[Candle], ts: int) -> bytes:
        return push_payload(name, candles, ts)

    return parsed[0], parsed[1], render


WIRE = Wire(_parse, text_frame, pairs_next=pairs_next)


def make_pusher(market: Market, clock: ScaledClock, opts: VenueOptions,
                seed: int) -> KlinePusher:
    return KlinePusher(market, clock, WIRE, Timing(opts.update_interval_s, opts.close_delay_s),
                       seed=seed)
