"""A service consuming candlekeeper's candles from NATS JetStream, exactly once per candle.

    python examples/nats_consumer.py --server nats://127.0.0.1:4222 \\
        --subject 'candles.binance-usdm.*.1m' --durable my-service --state my-service.sqlite

What it shows (see docs/deploying.md, "Consuming candles from NATS"):

* **A durable pull consumer.** The server remembers, under the ``--durable`` name, which messages
  this service acknowledged. Stop it, restart it (or run several copies with the same name to
  share the work) and it continues where it left off; nothing published meanwhile is missed.
* **Process, commit, then ack.** Each candle is applied to the service's own state (here a SQLite
  table) in one transaction that also records its natural key ``(venue, symbol, interval,
  open_time)``; only after the commit is the message acknowledged (``ack_sync``: the server
  confirmed it). A crash between commit and ack makes the server deliver the message again after
  ``--ack-wait``; the key is then found already applied and the message is acked without
  processing it twice. That is what makes "at least once" delivery *exactly once* in effect.
* **The payload is plain JSON** (schema version ``v`` = 1, prices/volumes as exact decimal
  strings, parsed with ``Decimal``), so this file needs only ``nats-py`` and the standard library.
  A message that is not a valid candle is terminated (never redelivered) and counted.

``--crash-after N`` is a drill: exit abruptly after committing the N-th candle but before acking
it, then run again and watch the redelivered candle being recognised as a duplicate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

import nats
import nats.errors
from nats.aio.msg import Msg
from nats.js import api

SCHEMA_VERSION = 1

STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS candles (
    venue TEXT NOT NULL, symbol TEXT NOT NULL, interval TEXT NOT NULL, open_time INTEGER NOT NULL,
    close TEXT NOT NULL, volume TEXT NOT NULL, stream_seq INTEGER NOT NULL,
    PRIMARY KEY (venue, symbol, interval, open_time)
) WITHOUT ROWID
"""


class Processor:
    """The service's own logic and state. ``apply`` is idempotent on the natural key."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(STATE_SCHEMA)
        self.processed = 0
        self.duplicates = 0
        self.malformed = 0

    def apply(self, doc: dict[str, object], stream_seq: int) -> bool:
        """Apply one candle in one transaction; False if this candle was applied before."""
        close = Decimal(str(doc["close"]))  # exact: never float()
        key = (doc["venue"], doc["symbol"], doc["interval"], doc["open_time"])
        with self.db:  # one transaction: the effect and the record of the key commit together
            self.db.execute("BEGIN IMMEDIATE")
            cur = self.db.execute(
                "INSERT INTO candles VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (*key, format(close, "f"), str(doc["volume"]), stream_seq))
            if cur.rowcount == 0:
                self.duplicates += 1
                return False
            # ... the real work of a service goes here, inside the same transaction ...
        self.processed += 1
        print(f"{doc['venue']} {doc['symbol']} {doc['interval']} {doc['open_time']} "
              f"close {close}", flush=True)
        return True


def parse(msg: Msg) -> dict[str, object] | None:
    try:
        doc = json.loads(msg.data)
        if doc.get("v") != SCHEMA_VERSION:
            return None
        for field in ("venue", "symbol", "interval", "open_time", "close", "volume"):
            if field not in doc:
                return None
        Decimal(doc["close"])
        return dict(doc)
    except (ValueError, TypeError, ArithmeticError, AttributeError):
        return None


async def consume(args: argparse.Namespace) -> int:
    proc = Processor(args.state)
    nc = await nats.connect(args.server, name=f"example-{args.durable}",
                            max_reconnect_attempts=-1, reconnect_time_wait=1)
    js = nc.jetstream()
    config = api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT, ack_wait=args.ack_wait,
                                deliver_policy=api.DeliverPolicy.ALL, max_ack_pending=1000)
    sub = await js.pull_subscribe(args.subject, durable=args.durable, stream=args.stream,
                                  config=config)
    idle = 0.0
    try:
        while args.idle_exit is None or idle < args.idle_exit:
            try:
                msgs = await sub.fetch(args.batch, timeout=1.0)
            except TimeoutError:  # nats.errors.TimeoutError, or a bare one from a fetch under load
                idle += 1.0
                continue
            idle = 0.0
            for msg in msgs:
                doc = parse(msg)
                if doc is None:
                    proc.malformed += 1
                    print(f"malformed message on {msg.subject}: terminated", file=sys.stderr)
                    await msg.term()
                    continue
                proc.apply(doc, msg.metadata.sequence.stream)
                if args.crash_after and proc.processed >= args.crash_after:
                    print(f"crash drill: exiting before acking {msg.subject}", file=sys.stderr,
                          flush=True)
                    os._exit(3)  # no ack, no cleanup: like a kill -9
                await msg.ack_sync(timeout=5)
    finally:
        print(f"processed {proc.processed}, duplicates skipped {proc.duplicates}, "
              f"malformed {proc.malformed}", file=sys.stderr, flush=True)
        await nc.close()
        proc.db.close()
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", default="nats://127.0.0.1:4222")
    p.add_argument("--subject", default="candles.>")
    p.add_argument("--stream", default="CANDLES")
    p.add_argument("--durable", default="candle-example", help="consumer name kept by the server")
    p.add_argument("--state", type=Path, default=Path("candle-example.sqlite"),
                   help="this service's own state (SQLite)")
    p.add_argument("--batch", type=int, default=100, help="messages per fetch")
    p.add_argument("--ack-wait", type=float, default=30.0,
                   help="seconds before an unacknowledged message is delivered again")
    p.add_argument("--idle-exit", type=float, default=None,
                   help="exit after this many seconds without a message (default: run forever)")
    p.add_argument("--crash-after", type=int, default=0, help="crash drill (see above)")
    args = p.parse_args()
    try:
        sys.exit(asyncio.run(consume(args)))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
