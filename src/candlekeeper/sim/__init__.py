"""A local exchange over real sockets speaking every registered venue's protocols, for tests,
the demo and benchmarks.

``Simulator`` is the entry point; each venue's :class:`Personality` lives in
``sim/venues/<package>/``; ``Market`` is a venue's pure, clock-driven market state; the replay
loaders turn real candle files into series it can serve verbatim; ``Fault`` / ``FaultPlan``
describe what should go wrong (docs/simulator.md).
"""

from candlekeeper.sim.faults import Fault, FaultPlan, FaultRecord, parse_fault_spec
from candlekeeper.sim.market import Market
from candlekeeper.sim.options import VenueOptions
from candlekeeper.sim.personality import Behaviour, Personality
from candlekeeper.sim.profiles import DEFAULT_SYMBOLS, SymbolProfile, profile_for
from candlekeeper.sim.replay import (
    ReplayRow,
    ReplaySeries,
    load_csv,
    load_freqtrade_json,
    load_replay,
    parse_archive_csv_rows,
)
from candlekeeper.sim.server import FirehoseResult, VenueStats
from candlekeeper.sim.simulator import Simulator

__all__ = [
    "DEFAULT_SYMBOLS",
    "Behaviour",
    "Fault",
    "FaultPlan",
    "FaultRecord",
    "FirehoseResult",
    "Market",
    "Personality",
    "ReplayRow",
    "ReplaySeries",
    "Simulator",
    "SymbolProfile",
    "VenueOptions",
    "VenueStats",
    "load_csv",
    "load_freqtrade_json",
    "load_replay",
    "parse_archive_csv_rows",
    "parse_fault_spec",
    "profile_for",
]
