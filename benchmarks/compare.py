"""Compare candlekeeper's CPU per message between two source trees, in one run.

    git worktree add /tmp/ck-base <commit>
    .venv/bin/python benchmarks/compare.py --base /tmp/ck-base/src [--repeat 5]

One simulator process pushes kline frames as fast as a socket drains (the firehose of
``make bench``); client processes take turns — the bare "picows + JSON parser" loop, a
``CandleFeed`` with the *base* tree's code, a ``CandleFeed`` with this checkout's (*head*) —
interleaved ``--repeat`` times, so machine drift hits all three alike. Prints the median CPU
seconds per 100k messages of each and head/base: what a change's commit message quotes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import msgspec

from bench_client import ClientSpec
from bench_common import Measured
from bench_server import Command
from bench_suite import over_socket, server_process

HEAD = Path(__file__).resolve().parents[1] / "src"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, required=True, help="src/ of the tree to compare with")
    p.add_argument("--head", type=Path, default=HEAD, help="src/ of the new tree (this one)")
    p.add_argument("--messages", type=int, default=300_000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    runs: dict[str, list[Measured]] = {"bare": [], "base": [], "head": []}
    trees = {"bare": args.head, "base": args.base, "head": args.head}
    saved = os.environ.get("PYTHONPATH")
    try:
        with server_process() as server:
            for rep in range(args.repeat):
                for name in runs:
                    print(f"run {rep + 1}/{args.repeat}: {name} ...", file=sys.stderr)
                    os.environ["PYTHONPATH"] = str(trees[name].resolve())
                    spec = msgspec.convert(
                        {"mode": "bare" if name == "bare" else "feed",
                         "expected": args.messages, "label": name, "url": server.ws,
                         "stream": server.stream, "timeout_s": 60.0}, ClientSpec)
                    m, _ = over_socket(server, Command(mode="firehose", count=args.messages),
                                       spec)
                    runs[name].append(m)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    cpu = {k: statistics.median(m.cpu_per_100k for m in v) for k, v in runs.items()}
    rate = {k: statistics.median(m.rate for m in v) for k, v in runs.items()}
    print(f"median of {args.repeat} interleaved runs, {args.messages:,} frames each")
    print(f"{'client':<8}{'msgs/s':>12}{'CPU s/100k':>12}{'x bare':>8}   all CPU s/100k")
    for k in runs:
        every = " ".join(f"{m.cpu_per_100k:.3f}" for m in runs[k])
        print(f"{k:<8}{rate[k]:>12,.0f}{cpu[k]:>12.3f}{cpu[k] / cpu['bare']:>7.2f}x   {every}")
    print(f"head / base CPU per message: {cpu['head'] / cpu['base']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
