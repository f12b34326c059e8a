"""BingX's real samples in ``../shared/protocol-samples`` and what they must decode to.

The sources print frames in several notations (JSON, Node's object notation, a minified JS
literal in the docs bundle, a markdown doc): the helpers below turn each into the JSON the
exchange sent, and every frame is gzip'd, as BingX sends every server frame. Expected values are
copied by hand from the files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from candlekeeper.core.candle import Candle
from candlekeeper.venues.bingx.stream import gzip_frame
from candlekeeper.venues.contract import (
    Ack,
    ErrorReply,
    Message,
    RestSample,
    Samples,
    WsSample,
)

VENUE = "bingx-swap"
JKORF_WS = "bingx_swap_ws_kline_jkorf_fixture.txt"
OTHER_WS = "bingx_swap_ws_kline_other_captures.txt"
DOCS_V3 = "bingx_docs_v3_swap_modules_extract.txt"
DOC_2023 = "bingx_swap_ws_kline_doc_2023-04.md"
REST_V3 = "bingx_swap_rest_klines_v3_jkorf_fixture.txt"
REST_V2_DOC = "bingx_swap_rest_klines_v2_doc_2023-04.md"


def js_to_json(text: str) -> str:
    """JS object notation as printed by Node / minified bundles -> JSON: quote the keys, use
    double quotes, expand ``175999746e4`` and drop ``//`` comments."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"([{,]\s*)([A-Za-z_]\w*)\s*:", r'\1"\2":', text)
    text = re.sub(r"(?<![\w.\"])(\d+)e(\d+)\b", lambda m: str(int(m[1]) * 10 ** int(m[2])), text)
    return text.replace("'", '"')


def js_object(text: str, key: str) -> dict[str, Any]:
    """The object literal that follows ``key:`` in a minified JS bundle."""
    start = text.index(key + ":{") + len(key) + 1
    depth = 0
    for i, ch in enumerate(text[start:], start):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 0:
            result: dict[str, Any] = json.loads(js_to_json(text[start:i + 1]))
            return result
    raise ValueError(f"unbalanced object after {key!r}")


def _candle(interval: str, open_time: int, close_time: int, o: str, h: str, low: str,
            c: str, v: str) -> Candle:
    return Candle.of(VENUE, _SYMBOLS[interval], interval, open_time, close_time, o, h, low, c,
                     v, closed=False, source="ws")


_SYMBOLS = {"1m": "BTCUSDT"}


def _push(source: str, obj: object, *expect: Message) -> WsSample:
    return WsSample(source, gzip_frame(json.dumps(obj)), expect)


def _ws(directory: Path) -> list[WsSample]:
    out: list[WsSample] = []
    jk = (directory / JKORF_WS).read_text().splitlines()
    eth = Candle.of(VENUE, "ETHUSDT", "1m", 1714650540000, 1714650599999, "2991.50", "2991.55",
                    "2989.04", "2989.57", "215.89", closed=False, source="ws")
    out.append(WsSample(f"{JKORF_WS} push", gzip_frame(jk[3]), (eth,)))
    out.append(WsSample(f"{JKORF_WS} push as a text frame", jk[3], (eth,)))
    out.append(WsSample(f"{JKORF_WS} ack", gzip_frame(jk[1].removeprefix("< ")),
                        (Ack("|1|", None),)))

    text = (directory / OTHER_WS).read_text()
    block = text[text.index("onMessage {") + len("onMessage "): text.index("[ [")]
    out.append(_push(f"{OTHER_WS} 1) ccxt PR 20516", json.loads(js_to_json(block)), _candle(
        "1m", 1703300820000, 1703300879999, "43557.5", "43563.0", "43553.0", "43561.3",
        "13.8908")))
    section = text.split("## 2)")[1].split("#  and parse_ws_ohlcv")[0]
    body = "\n".join(line.lstrip("#") for line in section.splitlines()[1:])
    out.append(_push(f"{OTHER_WS} 2) ccxt source comment", json.loads(body[body.index("{"):]),
                     _candle("1m", 1690907580000, 1690907639999, "28915.4", "28915.4",
                             "28896.1", "28909.0", "27.6919")))
    demo = _candle("1m", 1759997460000, 1759997519999, "121684.1", "121697.7", "121638.7",
                   "121697.7", "5.8244")
    out.append(_push(f"{OTHER_WS} 3) docs-v3 demo", js_object(text, "dataUpdateDemo"), demo))
    ack_block = text.split("## 4)")[1].split("## 5)")[0]
    ack = json.loads(js_to_json("\n".join(
        line.lstrip("#") for line in ack_block.splitlines()[1:])))
    out.append(_push(f"{OTHER_WS} 4) ack", ack,
                     Ack("2aed93b1-6e1e-4038-aeba-f5eeaec2ca48", None)))
    errors = text.split("## 5)")[1]
    first = json.loads(js_to_json(errors[errors.index("{"): errors.index("}") + 1]))
    rest = errors[errors.index("}") + 1:]
    second = json.loads(js_to_json("\n".join(
        line.lstrip("#") for line in rest[rest.index("{"): rest.rindex("}") + 1].splitlines())))
    out.append(_push(f"{OTHER_WS} 5) error", first,
                     ErrorReply(None, 100400, "invalid parameter (code 100400)")))
    out.append(_push(f"{OTHER_WS} 5) error with id", second, ErrorReply(
        "9cd37d32-da98-440b-bd04-37e7dbcf51ad", 100500, "internal system error (code 100500)")))

    docs = (directory / DOCS_V3).read_text()
    out.append(_push(f"{DOCS_V3} dataUpdateDemo", js_object(docs, "dataUpdateDemo"), demo))
    out.append(_push(f"{DOCS_V3} responseBody", js_object(docs, "responseBody"),
                     Ack("e745cd6d-d0f6-4a70-8d5a-043e4c741b40", None)))

    doc = (directory / DOC_2023).read_text()
    block = doc[doc.index("{", doc.index("# Response")): doc.rindex("}") + 1]
    block = re.sub(r'"\s*\n(\s*)"dataType"', r'",\n\1"dataType"', js_to_json(block))
    out.append(_push(f"{DOC_2023} (the outdated shape: data an object, T the last ms)",
                     json.loads(block),
                     _candle("1m", 1649832720000, 1649832779999, "54577.41", "54711.73",
                             "54418.27", "54564.31", "1607.0727000000002")))
    return out


def _rest(directory: Path) -> list[RestSample]:
    lines = (directory / REST_V3).read_text().splitlines()
    v3 = Candle.of(VENUE, "KNCUSDT", "1h", 1702717200000, 1702720799999, "0.7034", "0.7081",
                   "0.7033", "0.7065", "635494.00", closed=True, source="rest")
    out = [RestSample(REST_V3, "\n".join(lines[3:]).encode(), "KNC-USDT", "1h", v3, 1)]
    text = (directory / REST_V2_DOC).read_text()
    decoder = json.JSONDecoder()
    array = decoder.raw_decode(text, text.index('{\n  "code"'))[0]
    v2 = Candle.of(VENUE, "BTCUSDT", "5m", 1666583700000, 1666583999999, "19396.8", "19397.5",
                   "19385.7", "19394.4", "110.05", closed=True, source="rest")
    out.append(RestSample(f"{REST_V2_DOC} array", json.dumps(array).encode(), "BTCUSDT", "5m",
                          v2, 2))
    return out


def samples(venue: str, directory: Path) -> Samples:
    return Samples(ws=tuple(_ws(directory)), rest=tuple(_rest(directory)))
