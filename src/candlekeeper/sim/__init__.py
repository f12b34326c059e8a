"""A local Binance USDⓈ-M + spot and BingX perpetual-swap exchange over real sockets, for tests,
the demo and benchmarks.

``Simulator`` is the entry point; ``Market`` is its pure, clock-driven market state; the replay
loaders turn real candle files into series it can serve verbatim; ``Fault`` / ``FaultPlan``
describe what should go wrong (docs/simulator.md).
"""

from candlekeeper.sim.faults import Fault, FaultPlan, FaultRecord, parse_fault_spec
from candlekeeper.sim.market import Market
from candlekeeper.sim.profiles import DEFAULT_SYMBOLS, SymbolProfile, profile_for
from candlekeeper.sim.replay import (
    ReplayRow,
    ReplaySeries,
    load_csv,
    load_freqtrade_json,
    load_replay,
    parse_binance_csv_rows,
)
from candlekeeper.sim.server import FirehoseResult, VenueOptions, VenueStats
from candlekeeper.sim.simulator import Simulator

__all__ = [
    "DEFAULT_SYMBOLS",
    "Fault",
    "FaultPlan",
    "FaultRecord",
    "FirehoseResult",
    "Market",
    "ReplayRow",
    "ReplaySeries",
    "Simulator",
    "SymbolProfile",
    "VenueOptions",
    "VenueStats",
    "load_csv",
    "load_freqtrade_json",
    "load_replay",
    "parse_binance_csv_rows",
    "parse_fault_spec",
    "profile_for",
]
