"""BingX's kline pushes (protocols.md §C.3): what differs from the one pusher every venue runs
(:mod:`candlekeeper.sim.push`, which also says how the timing works).

* **Timing**: a venue without a closed flag. The current candle of every subscribed topic,
  every ``cadence_s`` of wall time (1 s), whether or not it changed; a client learns that the
  candle opening at ``T0`` closed only when a push with a later ``T`` arrives, and (the
  default, ``stale_last_push=True``) the last push of a candle may predate its close. The truth
  (``Simulator.closed_candles``) and REST (once the candle closed) always have the final candle;
  a client must confirm the inferred close over REST.
* **Rendering**: ``{"code":0,"dataType":..,"s":..,"data":[{"c","o","h","l","v","T"}]}`` with
  ``T`` = the candle's open time and **no closed flag**, gzip'd into a binary frame (once per
  topic and tick, shared by every subscriber).
"""

from __future__ import annotations

from collections.abc import Sequence

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.sim.framing import GzipFraming
from candlekeeper.sim.market import Market
from candlekeeper.sim.options import VenueOptions
from candlekeeper.sim.push import KlinePusher, Render, Timing, Wire
from candlekeeper.sim.venues.bingx.session import native_symbol, parse_data_type, push_payload


def _parse(name: str) -> tuple[str, str, Render] | None:
    parsed = parse_data_type(name)
    if parsed is None:
        return None
    native = native_symbol(parsed[0])

    def render(candles: Sequence[Candle], event_time: int) -> bytes:
        return push_payload(name, native, candles[0])

    return parsed[0], parsed[1], render


WIRE = Wire(_parse, GzipFraming().frame)


def make_pusher(market: Market, clock: ScaledClock, opts: VenueOptions,
                seed: int) -> KlinePusher:
    return KlinePusher(market, clock, WIRE,
                       Timing(opts.update_interval_s, None, opts.stale_last_push), seed=seed)
