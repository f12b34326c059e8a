"""Binance's kline pushes (protocols.md §A.4, §B.2, §E): what differs from the one pusher
every venue runs (:mod:`candlekeeper.sim.push`, which also says how the timing works).

* **Timing**: a venue with a closed flag. The forming candle every ``cadence_s`` of wall time
  (usdm 250 ms, spot 2000 ms) when it changed and once it has had a trade; the ``x:true`` frame
  exactly once per candle, ``close_delay_s`` (wall, 0.2–2 s by default, fixed per candle by the
  seed) after the candle's close in venue time.
* **Rendering**: ``{"e":"kline","E":..,"s":..,"k":{..}}`` with the push's event time ``E`` (the
  closing frame's is at least the candle's close + 1 ms); on a combined (``/stream``)
  connection wrapped as ``{"stream":"<name>","data":..}``. Built for a whole universe: 7,500
  streams at speed 1 (``benchmarks/sim_universe.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.sim.market import Market
from candlekeeper.sim.push import KlinePusher, Render, Timing, Topic, Wire
from candlekeeper.sim.venues.binance.frames import combined, kline_payload, text_frame
from candlekeeper.sim.venues.binance.session import is_kline_stream

#: a stream's state, by the name this module's tests know it
StreamState = Topic


def _kline(candles: Sequence[Candle], event_time: int) -> bytes:
    return kline_payload(candles[0], event_time)


def _parse(name: str) -> tuple[str, str, Render] | None:
    parsed = is_kline_stream(name)
    return None if parsed is None else (parsed[0], parsed[1], _kline)


WIRE = Wire(_parse, text_frame, wrap=combined)


class Pusher(KlinePusher):
    """The generic pusher with Binance's wire and timing (nothing overridden)."""

    def __init__(self, market: Market, clock: ScaledClock, *, cadence_s: float,
                 close_delay_s: tuple[float, float] = (0.2, 2.0), seed: int = 1) -> None:
        super().__init__(market, clock, WIRE, Timing(cadence_s, close_delay_s), seed=seed)
