"""Binance's real samples in ``../shared/protocol-samples`` and what they must decode to.

The contract suite (``tests/venues/contract``) decodes every one with the venue's codecs and
compares field for field. Expected candles are built here from the raw JSON with the standard
library (an independent reading of the same bytes), except the spot checks, which are written
out by hand from the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from candlekeeper.core.candle import Candle
from candlekeeper.venues.contract import Message, RestSample, Samples, WsSample

USDM_CAPTURE = "binance_usdm_ws_kline_capture_2021-07-22.jsonl"
SPOT_CAPTURE = "binance_spot_ws_kline_capture_2021-10-12.jsonl"
SPOT_REST = "binance_spot_rest_klines_BTCUSDT_1d_TESTNET_recording.json"

#: the first closed candle of the USDⓈ-M capture, copied by hand from the file
SUSHI_CLOSE = Candle.of(
    venue="binance-usdm", symbol="SUSHIUSDT", interval="1m", open_time=1626992700000,
    close_time=1626992759999, open="7.6080", high="7.6180", low="7.6070", close="7.6170",
    volume="3005", quote_volume="22875.8590", trades=113, taker_buy_base_volume="1900",
    taker_buy_quote_volume="14464.6960", first_trade_id=126902874, last_trade_id=126902986,
    closed=True, event_time=1626992760203, source="ws")
#: the first row of the spot REST recording (testnet: its prices are odd), by hand
SPOT_FIRST_ROW = Candle.of(
    venue="binance-spot", symbol="BTCUSDT", interval="1d", open_time=1780444800000,
    close_time=1780531199999, open="67101.71000000", high="76707.80000000",
    low="802.04000000", close="64463.60000000", volume="677.36109000",
    quote_volume="9647588.51567520", trades=52455, taker_buy_base_volume="312.56676000",
    taker_buy_quote_volume="4039250.27751400", closed=True, source="rest")


def _candle(venue: str, obj: dict[str, Any]) -> Candle:
    data = obj["data"] if "stream" in obj else obj
    k = data["k"]
    return Candle(venue, k["s"], k["i"], k["t"], k["T"], k["o"], k["h"], k["l"], k["c"], k["v"],
                  k["q"], k["n"], k["V"], k["Q"], k["f"], k["L"], k["x"], data["E"], "ws")


def _capture(venue: str, path: Path) -> list[WsSample]:
    out = []
    for i, line in enumerate(path.read_text().splitlines()):
        expect: Message = _candle(venue, json.loads(line))
        out.append(WsSample(f"{path.name} line {i + 1}", line, (expect,)))
    return out


def samples(venue: str, directory: Path) -> Samples:
    if venue == "binance-usdm":
        ws = _capture(venue, directory / USDM_CAPTURE)
        sushi = next(s for s in ws if s.expect[0] == SUSHI_CLOSE)
        return Samples(ws=(*ws, WsSample(f"{sushi.source} (by hand)", sushi.frame,
                                         (SUSHI_CLOSE,))), rest=())
    recording = json.loads((directory / SPOT_REST).read_text())
    rows = recording["client"][0]["return"]
    rest = RestSample(SPOT_REST, json.dumps(rows).encode(), "BTCUSDT", "1d", SPOT_FIRST_ROW,
                      len(rows))
    return Samples(ws=tuple(_capture(venue, directory / SPOT_CAPTURE)), rest=(rest,))
