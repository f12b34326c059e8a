"""Bybit's real samples in ``../shared/protocol-samples`` and what they must decode to.

The sources print frames as JSON (the docs' code blocks), as ccxt's Python comments, as Node's
object notation and as a Python dict literal: the helpers below turn each into the JSON the
exchange sent. Where a source quotes only a push's ``data`` array or one candle object (ccxt's
``parse_ws_ohlcv`` comment, JKorf's fixture), it is wrapped in the push envelope of the docs'
example with the candle's own last-trade time as ``ts``. Expected values are copied by hand
from the files. Both Bybit venues decode the same frames (they share one wire format).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

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

DOCS_WS = "bybit_linear_ws_kline_docs.txt"
CCXT_WS = "bybit_linear_ws_kline_ccxt_comments.txt"
JKORF_WS = "bybit_linear_ws_kline_jkorf_fixture.txt"
ERRORS_WS = "bybit_ws_subscribe_error_captures.txt"
REST = "bybit_rest_kline_docs_and_fixtures.txt"


def js_to_json(text: str) -> str:
    """JS object notation (Node's print) -> JSON: drop ``//`` comments, quote the keys, drop
    trailing commas, use double quotes."""
    text = re.sub(r"(?m)^\s*//[^\n]*|(?<=[,{\[\s])//[^\n]*", "", text)
    text = re.sub(r"([{,]\s*)([A-Za-z_]\w*)\s*:", r'\1"\2":', text)
    text = re.sub(r",(\s*[}\]])", r"\1", text)  # a trailing comma (a line removed before it)
    return text.replace("'", '"')


def _objects(text: str) -> list[dict[str, Any]]:
    """Every top-level JSON object in ``text``, in order."""
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    i = text.find("{")
    while i >= 0:
        obj, end = decoder.raw_decode(text, i)
        out.append(obj)
        i = text.find("{", end)
    return out


def _section(text: str, title: str) -> str:
    """The lines after the ``### title`` line up to the next heading."""
    start = text.index(f"### {title}\n") + len(title) + 5
    end = text.find("\n#", start)
    return text[start:] if end < 0 else text[start:end]


def _uncomment(block: str) -> str:
    """ccxt's comment lines without their ``#`` markers."""
    return "\n".join(line.strip().removeprefix("#").strip() for line in block.splitlines())


def _push(topic: str, data: list[dict[str, Any]], ts: int) -> str:
    return json.dumps({"topic": topic, "data": data, "ts": ts, "type": "snapshot"})


def _ws(venue: str, directory: Path) -> list[WsSample]:
    out: list[WsSample] = []
    docs = (directory / DOCS_WS).read_text()
    block = docs[docs.index("{", docs.index("## 1)")): docs.index("## 2)")].strip()
    doc_candle = Candle.of(venue, "BTCUSDT", "5m", 1672324800000, 1672325099999, "16649.5",
                           "16677", "16608", "16677", "2.081", "34666.4005",
                           event_time=1672324988882)
    out.append(WsSample(f"{DOCS_WS} 1) kline push, as laid out in the doc", block,
                        (doc_candle,)))
    out.append(WsSample(f"{DOCS_WS} 1) kline push, as bytes", block.encode(), (doc_candle,)))
    out.append(WsSample(f"{DOCS_WS} 1) kline push, on one line (as sent)",
                        json.dumps(json.loads(block), separators=(",", ":")), (doc_candle,)))
    acks: list[tuple[str, Message]] = [
        ("subscribe ack, Private tab", Ack(None)),
        ('subscribe ack, "Public Spot" tab', Ack(10001)),
        ('subscribe ack, "Linear/Inverse" tab', Ack(None)),
        ('subscribe ack, "Option/Spread" tab', Ignored("op None")),
        ('pong, public "Spot" tab', Pong()),
        ('pong, public "Linear/Inverse" tab', Pong()),
        ('pong, public "Option/Spread" tab', Pong()),
        ("pong, private channels", Pong()),
    ]
    for title, expect in acks:
        frame = json.dumps(_objects(_section(docs, title))[0])
        out.append(WsSample(f"{DOCS_WS} 2) {title}", frame, (expect,)))

    raw = (directory / CCXT_WS).read_text()

    def part(start: str, end: str | None) -> str:
        return _uncomment(raw[raw.index(start):raw.index(end) if end else None])

    one = _objects(part("## parse_ws_ohlcv", "## handle_error"))[0]
    ccxt_candle = Candle.of(venue, "BTCUSDT", "1m", 1670363160000, 1670363219999, "16987.5",
                            "16988", "16987.5", "16987.5", "23.511", "399396.344",
                            event_time=1670363219614)
    out.append(WsSample(f"{CCXT_WS} parse_ws_ohlcv object in a push",
                        _push("kline.1.BTCUSDT", [one], one["timestamp"]), (ccxt_candle,)))
    errors = part("## handle_error", "## handle_pong")
    err = json.loads(js_to_json(errors[errors.index("{"):errors.rindex("}") + 1]))
    out.append(WsSample(f"{CCXT_WS} op error", json.dumps(err),
                        (ErrorReply(None, 0, "error:invalid op"),)))
    pongs = part("## handle_pong", "## handle_un_subscribe")
    first = pongs[pongs.index("{"):pongs.index("\n}") + 2]
    out.append(WsSample(f"{CCXT_WS} pong with request", json.dumps(json.loads(js_to_json(
        first))), (Pong(),)))
    out.append(WsSample(f"{CCXT_WS} {{ pong: ms }}", json.dumps(json.loads(js_to_json(
        "{ pong: 1653296711335 }"))), (Pong(),)))
    unsub = part("## handle_un_subscribe", None)
    out.append(WsSample(f"{CCXT_WS} unsubscribe ack", unsub[unsub.index("{"):].strip(),
                        (Ack(3),)))

    jk = (directory / JKORF_WS).read_text()
    array = json.loads(jk[jk.index("["): jk.index("]") + 1])
    jk_candle = Candle.of(venue, "BTCUSDT", "1m", 1658150220000, 1658150279999, "22212",
                          "22214.5", "22212", "22214", "5.456", "121193.36",
                          event_time=1658150224542)
    out.append(WsSample(f"{JKORF_WS} KlineUpdate data array in a push",
                        _push("kline.1.BTCUSDT", array, 1658150224542), (jk_candle,)))
    # a frame carrying several candles (as reported on the hour): every one decodes, oldest
    # first, whatever their order in ``data``
    both = _push("kline.1.BTCUSDT", [one, *array], one["timestamp"])
    out.append(WsSample(f"{CCXT_WS} + {JKORF_WS}: two real candles in one data array", both, (
        Candle.of(venue, "BTCUSDT", "1m", 1658150220000, 1658150279999, "22212", "22214.5",
                  "22212", "22214", "5.456", "121193.36", event_time=1670363219614),
        ccxt_candle)))
    for line in jk.splitlines():
        if line.startswith("< "):
            out.append(WsSample(f"{JKORF_WS} ack", line[2:], (Ack("|1|"),)))

    caps = (directory / ERRORS_WS).read_text()
    node = caps[caps.index("> ws exception:"):caps.index("## 2)")]
    node = "\n".join(line.removeprefix(">").strip() for line in node.splitlines()
                     if "wsKey" not in line and "isWSAPIResponse" not in line)
    node = node[node.index("{"):]
    out.append(WsSample(f"{ERRORS_WS} 1) v5 linear Params Error",
                        json.dumps(json.loads(js_to_json(node))),
                        (ErrorReply("kline.5.XRPUSDT", 0, "Params Error"),)))
    naut = _objects(caps[caps.index("## 2)"):caps.index("## 3)")])[0]
    out.append(WsSample(f"{ERRORS_WS} 2) invalid topic", json.dumps(naut),
                        (ErrorReply(None, 0, "Invalid topic: invalid.topic.BTCUSDT"),)))
    return out


def _rest(venue: str, directory: Path) -> list[RestSample]:
    text = (directory / REST).read_text()
    doc = _objects(text[text.index("## 1)"):text.index("## 2)")])[0]
    first = Candle.of(venue, "BTCUSD", "1h", 1670601600000, 1670605199999, "17086.5", "17088",
                      "16978", "17071.5", "6356", "0.37288112", closed=True, source="rest")
    out = [RestSample(f"{REST} 1) docs, newest first", json.dumps(doc).encode(), "BTCUSD",
                      "1h", first, 3)]
    line = next(ln for ln in text.splitlines() if ln.startswith("return {'retCode'"))
    hb = ast.literal_eval(line.removeprefix("return "))
    first = Candle.of(venue, "BTCUSDT", "1h", 1715162400000, 1715165999999, "62308.69",
                      "62524.28", "62258.76", "62439.82", "421.80928", "26322162.21650143",
                      closed=True,
                      source="rest")
    out.append(RestSample(f"{REST} 2) hummingbot mock", json.dumps(hb).encode(), "BTCUSDT",
                          "1h", first, 5))
    return out


def samples(venue: str, directory: Path) -> Samples:
    return Samples(ws=tuple(_ws(venue, directory)), rest=tuple(_rest(venue, directory)))
