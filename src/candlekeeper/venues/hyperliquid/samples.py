"""Hyperliquid's real samples in ``../shared/protocol-samples`` and what they must decode to.

The JKorf fixture prints its push over several lines (tabs, newlines): it is checked as laid
out and on one line, as sent. The probe report's frames are single lines. The REST body is the
vcrpy cassette's response string (YAML single-quoted, one line). Expected values are copied by
hand from the files. The spot ``@107`` candleSnapshot fixture is not used: ``@107`` names a spot
pair, not a perpetual of this venue.
"""

from __future__ import annotations

import json
from pathlib import Path

from candlekeeper.core.candle import Candle
from candlekeeper.venues.contract import (
    Ack,
    ErrorReply,
    Ignored,
    Message,
    Pong,
    RestSample,
    Samples,
    WsSample,
)

JKORF_WS = "hyperliquid_ws_candle_jkorf_fixture.txt"
PROBE_WS = "hyperliquid_ws_candle_probe_2026-09-24.txt"
CASSETTE = "hyperliquid_rest_candle_snapshot_sdk_cassette_2023-07-17.txt"


def _body(text: str) -> str:
    """The material below a sample file's ``----`` line."""
    return text[text.index("\n----\n") + 6:]


def _ws(venue: str, directory: Path) -> list[WsSample]:
    out: list[WsSample] = []
    jk = _body((directory / JKORF_WS).read_text())
    push = jk[jk.index("{", jk.index("= ")):].strip()
    hype = Candle.of(venue, "HYPE", "1d", 1764806400000, 1764892799999, "34.668", "36.219",
                     "34.251", "34.868", "3495670.8399999999", trades=102895)
    out.append(WsSample(f"{JKORF_WS} push, as laid out in the fixture", push, (hype,)))
    out.append(WsSample(f"{JKORF_WS} push, on one line (as sent)",
                        json.dumps(json.loads(push), separators=(",", ":")).encode(), (hype,)))
    for line in jk.splitlines():
        if line.startswith("< "):
            # no request of this codec named it: the ack carries no id, so none is known
            out.append(WsSample(f"{JKORF_WS} subscriptionResponse", line[2:], (Ack(None),)))

    probe = (directory / PROBE_WS).read_text().splitlines()
    frames = [ln for ln in probe if ln.startswith("{")]

    def frame(start: str) -> str:
        return next(ln for ln in frames if ln.startswith(start))

    btc = Candle.of(venue, "BTC", "1m", 1790232180000, 1790232239999, "84143.0", "84144.0",
                    "84143.0", "84143.0", "14.27847", trades=114)
    out.append(WsSample(f"{PROBE_WS} BTC 1m push", frame('{"channel":"candle"'), (btc,)))
    acks = [ln for ln in frames if ln.startswith('{"channel":"subscriptionResponse"')]
    for i, ack in enumerate(acks):
        out.append(WsSample(f"{PROBE_WS} l2Book ack {i + 1} (not a candle subscription)", ack,
                            (Ignored("subscriptionResponse"),)))
    out.append(WsSample(f"{PROBE_WS} pong", frame('{"channel":"pong"'), (Pong(),)))
    already = frame('{"channel":"error","data":"Already')
    out.append(WsSample(f"{PROBE_WS} Already subscribed (an l2Book subscription)", already,
                        (Ignored("subscriptionResponse"),)))
    parse = frame('{"channel":"error","data":"Error parsing')
    expect: Message = ErrorReply(None, 0, json.loads(parse)["data"][:300])
    out.append(WsSample(f"{PROBE_WS} parse error", parse, (expect,)))

    # The SDK routes WebSocket candles and candleSnapshot rows alike (one shape, §F.3): each
    # real 2023 row, wrapped in the push envelope, is a real-valued push
    for i, row in enumerate(json.loads(_cassette_rows(directory))):
        c = Candle.of(venue, "KPEPE", row["i"], row["t"], row["T"], row["o"], row["h"],
                      row["l"], row["c"], row["v"], trades=row["n"])
        out.append(WsSample(f"{CASSETTE} row {i + 1} in a push envelope",
                            json.dumps({"channel": "candle", "data": row}), (c,)))
    return out


def _cassette_rows(directory: Path) -> str:
    """The cassette's candleSnapshot response: a YAML single-quoted one-line string."""
    text = _body((directory / CASSETTE).read_text())
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("string: '[{"))
    return line.strip().removeprefix("string: '").removesuffix("'").replace("''", "'")


def _rest(venue: str, directory: Path) -> list[RestSample]:
    body = _cassette_rows(directory)
    first = Candle.of(venue, "KPEPE", "1h", 1684699200000, 1684702799999, "0.001601",
                      "0.001616", "0.001601", "0.001604", "520665683.0", trades=709,
                      closed=True, source="rest")
    return [RestSample(f"{CASSETTE} candleSnapshot kPEPE 1h (ascending, both window ends "
                       "included)", body.encode(), "KPEPE", "1h", first, 24)]


def samples(venue: str, directory: Path) -> Samples:
    return Samples(ws=tuple(_ws(venue, directory)), rest=tuple(_rest(venue, directory)))
