"""OKX's real samples in ``../shared/protocol-samples`` and what they must decode to.

The sources print frames as JSON (the docs, indented), as Node objects (an issue thread) or as
Python literals (hummingbot mocks); the helpers below turn each into the JSON the exchange sent.
Expected values are copied by hand from the files. A swap venue decodes the swap frames, a spot
venue the spot ones; both read the control frames (acks, errors, the notice, ``pong``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.venues.checks import snippet
from candlekeeper.venues.contract import (
    Ack,
    ErrorReply,
    Malformed,
    Pong,
    RestSample,
    Samples,
    ServerShutdown,
    WsSample,
)

WS_DOCS = "okx_ws_candle_docs.txt"
WS_CAPTURES = "okx_ws_candle_captures.txt"
REST_CANDLES = "okx_rest_candles_fixtures.txt"


def _section(text: str, number: int) -> str:
    """The text of ``## <number>)`` up to the next ``## `` heading."""
    start = text.index(f"## {number})")
    nxt = re.compile(r"\n## \d+\)").search(text, start + 1)
    return text[start: nxt.start() if nxt else len(text)]


def _object_after(text: str, marker: str, start: int = 0) -> str:
    """The balanced ``{...}`` that begins at the first ``{`` after ``marker``."""
    i = text.index("{", text.index(marker, start))
    depth = 0
    for j, ch in enumerate(text[i:], i):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 0:
            return text[i: j + 1]
    raise ValueError(f"unbalanced object after {marker!r}")


def _json(text: str) -> str:
    """A printed object (Python literal with trailing commas, Node's quoting) as compact JSON."""
    text = re.sub(r",(\s*[\]}])", r"\1", text)
    text = re.sub(r"([{,]\s*)([A-Za-z_]\w*)\s*:", r'\1"\2":', text)
    return json.dumps(json.loads(text), separators=(",", ":"))


def _swap_ws(directory: Path) -> list[WsSample]:
    text = (directory / WS_CAPTURES).read_text()
    line = next(x for x in _section(text, 1).splitlines() if x.startswith("// {"))
    frame = line.removeprefix("// ")
    push = Candle.of("okx-swap", "BTCUSDT", "1m", 1774964340000, 1774964399999, "66898.7",
                     "66902.1", "66884.6", "66894.5", "13.3007", "889750.68514000", closed=False,
                     source="ws")
    return [WsSample(f"{WS_CAPTURES} 1) BTC-USDT-SWAP candle1m push (volCcy is the base "
                     "volume)", frame, (push,))]


def _spot_ws(directory: Path) -> list[WsSample]:
    text = (directory / WS_CAPTURES).read_text()
    mock = _object_after(_section(text, 5), "data = ").replace("self.ex_trading_pair",
                                                              '"BTC-USDT"')
    closed = Candle.of("okx-spot", "BTCUSDT", "1h", 1705420800000, 1705424399999, "43253.6",
                       "43440.2", "43000", "43250.9", "942.87870026", "40743115.773175484",
                       closed=True, source="ws")
    out = [WsSample(f"{WS_CAPTURES} 5) hummingbot candle1H mock, confirm 1", _json(mock),
                    (closed,))]
    docs = (directory / WS_DOCS).read_text()
    chinese = _json(_object_after(docs, "### 推送示例"))
    # candle1D opens at 00:00 UTC+8: not a channel we subscribe (we use candle1Dutc)
    out.append(WsSample(f"{WS_DOCS} 1) Chinese push on candle1D (UTC+8 bar: refused)", chinese,
                        (Malformed("unroutable candle channel 'candle1D' 'BTC-USDT'",
                                   snippet(chinese.encode())),)))
    return out


def _control_ws(directory: Path) -> list[WsSample]:
    docs = (directory / WS_DOCS).read_text()
    arg_1d = {"channel": "candle1D", "instId": "BTC-USDT"}
    out = [WsSample(f"{WS_DOCS} 1) successful response", _json(_object_after(
        docs, "### Successful Response Example")), (Ack(1512, arg_1d),))]
    failure = _object_after(docs, "### Failure Response Example")
    failure_msg = json.loads(failure)["msg"]
    out.append(WsSample(f"{WS_DOCS} 1) failure response", json.dumps(json.loads(failure)),
                        (ErrorReply(1512, 60012,
                                    f"invalid request: {failure_msg} (code 60012)"),)))
    out.append(WsSample(f"{WS_DOCS} 2) subscribe response (tickers)", _json(_object_after(
        _section(docs, 2), "### Response Example")),
        (Ack(1512, {"channel": "tickers", "instId": "BTC-USDT"}),)))
    notice = _section(docs, 3)
    out.append(WsSample(f"{WS_DOCS} 3) 64008 notice", _json(notice[notice.index("    {"):]),
                        (ServerShutdown(0),)))
    out.append(WsSample(f"{WS_DOCS} 4) keepalive answer", "pong", (Pong(),)))
    caps = (directory / WS_CAPTURES).read_text()
    for line in _section(caps, 2).splitlines():
        if ': {"event":"subscribe"' in line:
            frame = line[line.index("{"):]
            out.append(WsSample(f"{WS_CAPTURES} 2) 2022 ack without id or connId", frame,
                                (Ack(None, json.loads(frame)["arg"]),)))
    node = _section(caps, 3)
    obj = json.loads(_node_object(node))
    obj.pop("wsKey")  # added by the library, not on the wire
    msg = obj["msg"]
    out.append(WsSample(f"{WS_CAPTURES} 3) 60018 on the public URL", json.dumps(obj),
                        (ErrorReply(None, 60018, "wrong URL or channel (candles are on "
                                    f"/ws/v5/business): {msg} (code 60018)"),)))
    return out


def _node_object(text: str) -> str:
    """Node's printout ``{ event: 'error', msg: "…it's…", … }`` as JSON."""
    body = text[text.index("{"): text.rindex("}") + 1]
    items = re.findall(r"(\w+):\s*('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")", body)
    return json.dumps({k: v[1:-1] for k, v in items})


def _rest_body(section: str) -> bytes:
    return _json(_object_after(section, "{" if "data = " not in section
                               else "data = ")).encode()


def _rest(venue: str, directory: Path) -> list[RestSample]:
    text = (directory / REST_CANDLES).read_text()
    if venue == "okx-swap":
        nt = Candle.of(venue, "BTCUSDT", "1m", 1747093980000, 1747094039999, "102806",
                       "102820.5", "102783.1", "102806.1", "71.6404", "7364701.57952", closed=True,
                       source="rest")
        hb = Candle.of(venue, "BTCUSDT", "1h", 1718647200000, 1718650799999, "66602", "67320",
                       "66543.3", "67087", "13459.959", "900743428.1363", closed=True,
                       source="rest")
        return [RestSample(f"{REST_CANDLES} 1) nautilus 1m", _rest_body(_section(text, 1)),
                           "BTC-USDT-SWAP", "1m", nt, 2),
                RestSample(f"{REST_CANDLES} 2) hummingbot 1H history-candles",
                           _rest_body(_section(text, 2)), "BTC/USDT:USDT", "1h", hb, 4)]
    spot = Candle.of(venue, "BTCUSDT", "1h", 1705420800000, 1705424399999, "43253.6",
                     "43440.2", "43000", "43250.9", "942.87870026", "40743115.773175484",
                     closed=True, source="rest")
    return [RestSample(f"{REST_CANDLES} 3) hummingbot spot 1H", _rest_body(_section(text, 3)),
                       "BTC-USDT", "1h", spot, 4)]


def _rows_as_push(venue: str, directory: Path) -> list[WsSample]:
    """The real REST rows as the WebSocket carries them: the same nine strings per row (§E.3,
    §E.7), several rows in one ``data`` array, newest first as REST lists them. Not captured
    frames, but real values in a real frame shape: every row must decode, oldest first."""
    out: list[WsSample] = []
    for sample in _rest(venue, directory):
        rows = json.loads(sample.body)["data"]
        channel = "candle1m" if sample.interval == "1m" else "candle1H"
        inst = "BTC-USDT-SWAP" if venue == "okx-swap" else "BTC-USDT"
        frame = json.dumps({"arg": {"channel": channel, "instId": inst}, "data": rows},
                           separators=(",", ":"))
        expect = tuple(
            Candle.of(venue, "BTCUSDT", sample.interval, int(r[0]),
                      int(r[0]) + (60_000 if sample.interval == "1m" else 3_600_000) - 1,
                      r[1], r[2], r[3], r[4], r[6] if venue == "okx-swap" else r[5], r[7],
                      closed=r[8] == "1", source="ws")
            for r in reversed(rows))
        assert expect[0].same_values(msgspec.structs.replace(sample.first, source="ws"))
        out.append(WsSample(f"{sample.source} rows as one push", frame, expect))
    return out


def samples(venue: str, directory: Path) -> Samples:
    ws = _swap_ws(directory) if venue == "okx-swap" else _spot_ws(directory)
    ws += _rows_as_push(venue, directory)
    return Samples(ws=tuple(ws + _control_ws(directory)), rest=tuple(_rest(venue, directory)))
