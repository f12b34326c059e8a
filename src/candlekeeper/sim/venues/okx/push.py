"""OKX's candle pushes (protocols-more-venues.md §E.3, §E.4): what differs from the one pusher
every venue runs (:mod:`candlekeeper.sim.push`, which also says how the timing works).

* **Timing**: a venue with a closed flag. The forming candle at most every ``cadence_s`` of
  wall time (1 s: "the fastest interval 1 second push") when it changed and once it has had a
  trade, with ``confirm`` "0"; then exactly one push with the candle's final values and
  ``confirm`` "1", ``close_delay_s`` (wall, fixed per candle by the seed; OKX documents neither
  how many nor how late, §H) after its close in venue time.
* **Rendering**: one frame per push whose ``data`` array holds one row (the client decodes
  every row of an array); on a swap ``vol`` counts contracts of the symbol's size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.sim.framing import text_frame
from candlekeeper.sim.market import Market
from candlekeeper.sim.options import VenueOptions
from candlekeeper.sim.push import KlinePusher, Render, Timing, Wire
from candlekeeper.sim.venues.okx.session import push_payload
from candlekeeper.venues.okx import schemas


def wire(parse: Callable[[str], tuple[str, str] | None],
         ct_val: Callable[[str], Decimal | None]) -> Wire:
    """OKX's wire for a personality that parses channel names with ``parse`` and sizes a
    symbol's contracts with ``ct_val`` (None on spot)."""

    def parse_rendered(name: str) -> tuple[str, str, Render] | None:
        parsed = parse(name)
        if parsed is None:
            return None
        ch, _, inst = name.partition(":")
        arg, size = schemas.Arg(ch, inst), ct_val(parsed[0])

        def render(candles: Sequence[Candle], event_time: int) -> bytes:
            c = candles[0]
            return push_payload(arg, c, c.closed, size)

        return parsed[0], parsed[1], render

    return Wire(parse_rendered, text_frame)


def make_pusher(market: Market, clock: ScaledClock, opts: VenueOptions, seed: int, *,
                parse: Callable[[str], tuple[str, str] | None],
                ct_val: Callable[[str], Decimal | None]) -> KlinePusher:
    return KlinePusher(market, clock, wire(parse, ct_val),
                       Timing(opts.update_interval_s, opts.close_delay_s), seed=seed)
