"""The Binance archive codec against the real archive rows in ../shared/protocol-samples: both
documented format changes (a header row in USDⓈ-M files from 2023, µs timestamps in spot files
from 2025), the file layout, checksum files and malformed rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from candlekeeper.backfill.archive_plan import daily, monthly
from candlekeeper.core.candle import Candle
from candlekeeper.errors import DecodeError
from candlekeeper.venues.binance.archive import FORMATS, BinanceArchive, encode_rows
from candlekeeper.venues.binance.endpoints import BINANCE_SPOT, BINANCE_USDM
from candlekeeper.venues.contract import ArchivePeriod

SPOT = BinanceArchive(BINANCE_SPOT)
USDM = BinanceArchive(BINANCE_USDM)
SAMPLE = "binance_vision_csv_rows.txt"


def sample_lines(samples: Path) -> list[str]:
    return [ln for ln in (samples / SAMPLE).read_text().splitlines()
            if ln and not ln.startswith("#")]


def test_the_real_rows_parse_in_every_documented_variant(samples: Path) -> None:
    lines = sample_lines(samples)
    # spot 1h, µs (the README's example row)
    (row,) = SPOT.decode_rows(lines[0] + "\n", "BTCUSDT", "1h")
    assert (row.open_time, row.close_time) == (1735689600000, 1735693199999)
    assert (row.open_str, row.volume_str, row.trades) == ("4.15070000", "539.23000000", 13)
    # spot 1m 2023, ms, no header
    (row,) = SPOT.decode_rows(lines[2], "BTCUSDT", "1m")
    assert row == Candle("binance-spot", "BTCUSDT", "1m", 1672531200000, 1672531259999,
                         "16541.77000000", "16544.76000000", "16538.45000000",
                         "16543.67000000", "83.08143000", "1374268.84886160", 2687,
                         "40.18369000", "664706.01106360", None, None, True, None, "archive")
    # spot 1m 2025, µs
    (row,) = SPOT.decode_rows(lines[3], "BTCUSDT", "1m")
    assert (row.open_time, row.close_time, row.close_str, row.taker_buy_quote_volume_str) == (
        1735689600000, 1735689659999, "93610.93000000", "369757.32652890")
    # USDⓈ-M 1m 2023 with its header row
    rows = USDM.decode_rows("\n".join(lines[4:6]) + "\n", "BTCUSDT", "1m")
    assert [(c.open_time, c.open_str, c.quote_volume_str, c.trades, c.source) for c in rows] == [
        (1672531200000, "16537.50", "2820697.45580", 946, "archive")]
    # spot 1s (quoted in a comment line of the sample file)
    quoted = [ln.removeprefix("# ") for ln in (samples / SAMPLE).read_text().splitlines()
              if ln.startswith("# 1672531200000,")]
    (row,) = SPOT.decode_rows(quoted[0], "BTCUSDT", "1s")
    assert (row.open_time, row.close_time) == (1672531200000, 1672531200999)


@pytest.mark.parametrize("codec", [SPOT, USDM], ids=["spot", "usdm"])
@pytest.mark.parametrize("period", [monthly(1672531200000), daily(1735689600000)],
                         ids=["2023-01", "2025-01-01"])
def test_written_files_follow_the_date_and_read_back_exactly(codec: BinanceArchive,
                                                              period: object) -> None:
    assert isinstance(period, ArchivePeriod)
    t = period.start
    candles = [Candle(codec.spec.id, "BTCUSDT", "1m", t + i * 60_000, t + i * 60_000 + 59_999,
                      "1.10", "1.20", "1.00", "1.15", "7.000", "8.05000", i, "3.5", "4.025",
                      None, None, True, None, "archive") for i in range(3)]
    fmt = FORMATS[codec.spec.id]
    text = encode_rows(candles, fmt, period)
    first = text.splitlines()[0]
    assert first.startswith("open_time,") == (codec is USDM)  # header: USDⓈ-M from 2023
    micros = codec is SPOT and period.start >= 1735689600000
    assert (len(text.splitlines()[-1].split(",")[0]) == 16) == micros
    assert codec.decode_rows(text, "BTCUSDT", "1m") == candles


def test_paths_round_trip_and_name_only_the_venues_market() -> None:
    period = monthly(1704067200000)
    path = USDM.file_path("btc-usdt", "1m", period)
    assert path == "/data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip"
    assert USDM.parse_path(path) == ("BTCUSDT", "1m", period, False)
    assert USDM.parse_path(path + ".CHECKSUM") == ("BTCUSDT", "1m", period, True)
    assert SPOT.parse_path(path) is None  # another market's folder
    day = SPOT.file_path("BTCUSDT", "1s", daily(1704067200000))
    assert day == "/data/spot/daily/klines/BTCUSDT/1s/BTCUSDT-1s-2024-01-01.zip"
    assert SPOT.parse_path(day) == ("BTCUSDT", "1s", daily(1704067200000), False)
    assert USDM.parse_path(day.replace("spot", "futures/um")) is None  # no 1s on USDⓈ-M
    assert SPOT.parse_path(day.replace("2024-01-01", "2024-02-30")) is None
    assert "1w" not in SPOT.intervals and "1M" not in SPOT.intervals and "1d" in SPOT.intervals


def test_checksum_files() -> None:
    digest = "9bb01a1b3784a30598bf5cd35d055352670ac780acb688566feb825510dc7e4d"
    assert SPOT.decode_checksum(f"{digest}  BTCUSDT-1m-2025-01.zip\n".encode()) == digest
    assert SPOT.decode_checksum(digest.upper().encode()) == digest
    for bad in (b"", b"<html>404</html>", b"abc  x.zip", digest[:-1].encode()):
        assert SPOT.decode_checksum(bad) is None


@pytest.mark.parametrize(("text", "why"), [
    ("1672531200000,1,1,1,1,1,1672531259999,1,1,1,1\n", "11 columns"),
    ("1672531200000,1,1,1,1,1,1672531259998,1,1,1,1,0\n", "close time"),
    ("1672531200000,1,1,1,1,1,1672531259999,1,x,1,1,0\n", "trade count"),
    ("1672531200000,1,1,1,1,1,1672531259999,1,1_000,1,1,0\n", "trade count"),
    ("\uff11672531200000,1,1,1,1,1,1672531259999,1,1,1,1,0\n", "bad open time"),
    ("1672531200000,1,1,1,1,1,1672531259999,1,1,1,1,0\nopen_time,a,b,c,d,e,f,g,h,i,j,k\n",
     "bad open time"),
])
def test_rows_that_are_not_the_documented_shape_are_refused(text: str, why: str) -> None:
    with pytest.raises(DecodeError, match=why):
        SPOT.decode_rows(text, "BTCUSDT", "1m")
