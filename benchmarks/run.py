"""candlekeeper's throughput/latency benchmark: one command, one table.

    make bench                      # or: .venv/bin/python benchmarks/run.py [--help]

Measures in one run (see ``benchmarks/README.md`` for what each row means):

A. decode + dispatch with no socket: real Binance kline frames through the JSON parsers alone,
   ``BinanceStreamCodec.decode``, and ``BinanceStreamCodec.decode`` + the feed's stream sink with an
   ``on_update`` subscriber;
B. saturation over a real socket: the simulator (``candlekeeper.sim``, in its own process) pushes
   kline frames as fast as the socket drains to (1) a bare "picows + JSON parser" loop and (2) a
   real ``CandleFeed``; msgs/s, client CPU seconds per 100k messages, the ratio, peak RSS;
C. fixed rates (1k, 10k, 50k msgs/s by default): p50/p99/max latency from the send time
   carried in the frame to the ``on_update`` handler (and to a bare loop for comparison).
"""

from __future__ import annotations

from bench_suite import main  # benchmarks/ is sys.path[0] when this file is run

if __name__ == "__main__":
    main()
