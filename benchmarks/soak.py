"""Soak: the chaos test, longer. An accelerated venue day of random faults of every kind against
the real service (child process, ``kill -9``-ed and restarted midway) and a library consumer;
prints what was applied and whether storage and the consumer still equal the simulator's truth.

    .venv/bin/python benchmarks/soak.py                       # a day in 10 minutes, 300 faults
    .venv/bin/python benchmarks/soak.py --day-wall-s 1800 --faults 1000 --seed 3

Exit code 0 when the guarantee held, 1 otherwise. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from candlekeeper.testing.chaos import ChaosOptions, check, run_chaos, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--day-wall-s", type=float, default=600.0,
                    help="wall seconds one venue day lasts (default 600)")
    ap.add_argument("--faults", type=int, default=300)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--kill-at", type=float, default=None,
                    help="wall seconds into the day to kill -9 the service (default: 40%%)")
    args = ap.parse_args(argv)
    opts = ChaosOptions(day_wall_s=args.day_wall_s, faults=args.faults, seed=args.seed,
                        kill_at_s=args.kill_at if args.kill_at is not None
                        else args.day_wall_s * 0.4)
    print(f"soak: one venue day in {opts.day_wall_s:g} s (speed x{opts.speed:g}), "
          f"{opts.faults} faults, seed {opts.seed}, {len(opts.stream_symbols)} symbols x "
          f"{','.join(opts.intervals)}", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ck-soak-") as tmp:
        result = asyncio.run(run_chaos(Path(tmp), opts))
    problems = check(result)
    print(summary(result))
    print(f"duration {time.monotonic() - started:.0f} s; "
          f"{'GUARANTEE HELD' if not problems else f'{len(problems)} VIOLATIONS'}")
    for line in problems[:50]:
        print("  " + line)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
