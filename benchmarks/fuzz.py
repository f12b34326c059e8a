"""Fuzz every registered venue's stream codec: ``decode`` must never raise.

    .venv/bin/python benchmarks/fuzz.py [--frames 100000] [--seed 1] [--venue ID ...]

Seeds are each venue's real samples (``../shared/protocol-samples``, listed by the venue
folder's ``samples.py``); each frame is a seed with one to four byte- and JSON-level mutations
(``candlekeeper.testing.fuzz``). Prints one row per venue: frames, what they decoded into,
exceptions (must be 0) and frames per second. Exit status 1 if anything raised, with the first
offending frames printed so they can be turned into regression tests.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module
from pathlib import Path

from candlekeeper.testing.fuzz import run_fuzz
from candlekeeper.venues.contract import Samples
from candlekeeper.venues.registry import VENUES, package_of, stream_codec

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "protocol-samples"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--venue", action="append", choices=VENUES)
    args = parser.parse_args()
    if not SAMPLES.is_dir():
        print(f"protocol samples not found at {SAMPLES}", file=sys.stderr)
        return 2
    rows = []
    failed = False
    for venue in args.venue or VENUES:
        module = import_module(f"candlekeeper.venues.{package_of(venue)}.samples")
        samples: Samples = module.samples(venue, SAMPLES)
        result = run_fuzz(stream_codec(venue).decode, [w.frame for w in samples.ws],
                          args.frames, seed=args.seed)
        kinds = ", ".join(f"{k} {n}" for k, n in result.kinds.most_common())
        rows.append((venue, result.frames, len(result.exceptions),
                     f"{result.frames / result.seconds:,.0f}", kinds))
        for i, what, frame in result.exceptions[:5]:
            failed = True
            print(f"{venue} frame {i} (seed {args.seed}): {what}\n  {frame!r}", file=sys.stderr)
    print(f"{'venue':<14} {'frames':>9} {'raised':>7} {'frames/s':>10}  decoded into")
    for venue, frames, raised, rate, kinds in rows:
        print(f"{venue:<14} {frames:>9,} {raised:>7} {rate:>10}  {kinds}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
