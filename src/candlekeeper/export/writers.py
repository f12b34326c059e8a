"""Export file formats: CSV, JSON Lines and Parquet, each written in batches as pages arrive.

Choices (also in docs/export-replay.md):

* **Decimals are the exact text stored** in every format — ``"7.6170"`` stays ``"7.6170"``,
  trailing zeros included. In Parquet they are ``string`` columns, not ``decimal128``: a
  decimal128 column has one scale for the whole file, while exchanges' scales differ per symbol
  and change over time (a tick size change), and the schema must be fixed before the first row
  of a streamed export is known. A common scale would re-write every value (``7.617`` as
  ``7.617000000000000000``) and one too small would round. Text is exact and lossless; cast
  where a number is wanted (``CAST(close AS DECIMAL(38, 18))`` in DuckDB,
  ``pc.cast(col, pa.decimal128(38, 18))`` in pyarrow).
* **Times**: Unix milliseconds (integers) in CSV and JSONL; ``timestamp[ms, tz=UTC]`` in
  Parquet.
* **The gap audit** travels with the data: Parquet key-value metadata ``candlekeeper`` (JSON);
  for CSV and JSONL a sidecar file ``<output>.meta.json`` with the same JSON — a comment line
  or an odd first record would trip up ``pandas.read_csv``, DuckDB, ``jq`` and spreadsheets.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.errors import CandlekeeperError, ConfigError

__all__ = [
    "COLUMNS",
    "FORMATS",
    "META_KEY",
    "ROW_GROUP_ROWS",
    "ExportError",
    "Writer",
    "make_writer",
    "sidecar_path",
]

#: the exported columns, in ``Candle``'s field order (decimal ``*_str`` fields without suffix)
COLUMNS = ("venue", "symbol", "interval", "open_time", "close_time", "open", "high", "low",
           "close", "volume", "quote_volume", "trades", "taker_buy_base_volume",
           "taker_buy_quote_volume", "first_trade_id", "last_trade_id", "closed", "event_time",
           "source")
FORMATS = ("csv", "jsonl", "parquet")
#: Parquet key-value metadata key holding the export's JSON metadata (the gap audit)
META_KEY = "candlekeeper"
ROW_GROUP_ROWS = 65_536
_CLOSED = COLUMNS.index("closed")


class ExportError(CandlekeeperError):
    """A stored value the output format cannot hold (a database edited around candlekeeper)."""


class Writer(Protocol):
    """One output file: ``write`` pages of candles, then ``finish`` with the metadata."""

    def write(self, candles: Sequence[Candle]) -> None: ...

    def finish(self, meta: dict[str, Any]) -> None: ...


def sidecar_path(output: Path) -> Path:
    return output.with_name(output.name + ".meta.json")


def _write_sidecar(path: Path | None, meta: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


class CsvWriter:
    """A header line, then one line per candle; empty cells for absent fields, ``true`` /
    ``false`` for ``closed``."""

    def __init__(self, out: IO[str], meta_path: Path | None) -> None:
        self._out = out
        self._csv = csv.writer(out, lineterminator="\n")
        self._csv.writerow(COLUMNS)
        self._meta_path = meta_path

    def write(self, candles: Sequence[Candle]) -> None:
        rows = []
        for c in candles:
            row = list(msgspec.structs.astuple(c))[:len(COLUMNS)]
            row[_CLOSED] = "true" if c.closed else "false"
            rows.append(row)
        self._csv.writerows(rows)

    def finish(self, meta: dict[str, Any]) -> None:
        self._out.flush()
        _write_sidecar(self._meta_path, meta)


class JsonlWriter:
    """One JSON object per line, keys = :data:`COLUMNS`, decimals as strings, absent = null."""

    def __init__(self, out: IO[bytes], meta_path: Path | None) -> None:
        self._out = out
        self._encoder = msgspec.json.Encoder()
        self._meta_path = meta_path

    def write(self, candles: Sequence[Candle]) -> None:
        objs = [dict(zip(COLUMNS, msgspec.structs.astuple(c), strict=False)) for c in candles]
        self._out.write(self._encoder.encode_lines(objs))

    def finish(self, meta: dict[str, Any]) -> None:
        self._out.flush()
        _write_sidecar(self._meta_path, meta)


class ParquetWriter:
    """Row groups of :data:`ROW_GROUP_ROWS`; the metadata goes into the footer at ``finish``
    (Parquet keeps key-value metadata at the end of the file, so the audit computed while
    streaming fits there)."""

    def __init__(self, path: Path) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError("Parquet needs pyarrow: pip install 'candlekeeper[export]'") \
                from None
        self._pa = pa
        ts = pa.timestamp("ms", tz="UTC")
        text, i64 = pa.string(), pa.int64()
        types = {"open_time": ts, "close_time": ts, "event_time": ts, "trades": i64,
                 "first_trade_id": i64, "last_trade_id": i64, "closed": pa.bool_()}
        required = {"venue", "symbol", "interval", "open_time", "close_time", "open", "high",
                    "low", "close", "volume", "closed", "source"}
        self.schema = pa.schema([pa.field(c, types.get(c, text), nullable=c not in required)
                                 for c in COLUMNS])
        self._writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")
        #: pages already made Arrow batches (the candles' Python objects are freed at once)
        self._batches: list[Any] = []
        self._pending = 0

    def write(self, candles: Sequence[Candle]) -> None:
        if not candles:
            return
        pa = self._pa
        rows = [msgspec.structs.astuple(c) for c in candles]
        try:
            arrays = [pa.array([r[i] for r in rows], type=field.type)
                      for i, field in enumerate(self.schema)]
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            first = candles[0]
            raise ExportError(f"{first.venue} {first.symbol} {first.interval}: a stored row "
                              f"with open time in {first.open_time}..{candles[-1].open_time} "
                              f"does not fit its Parquet column: {exc}") from None
        self._batches.append(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        self._pending += len(candles)
        while self._pending >= ROW_GROUP_ROWS:
            self._flush(ROW_GROUP_ROWS)

    def _flush(self, n: int) -> None:
        table = self._pa.Table.from_batches(self._batches, schema=self.schema)
        self._writer.write_table(table.slice(0, n), row_group_size=n)
        self._batches = table.slice(n).to_batches()
        self._pending -= n

    def finish(self, meta: dict[str, Any]) -> None:
        if self._pending:
            self._flush(self._pending)
        self._writer.add_key_value_metadata({META_KEY: json.dumps(meta)})
        self._writer.close()


def make_writer(fmt: str, output: Path | None, stdout_text: IO[str], stdout_bytes: IO[bytes],
                meta_path: Path | None) -> tuple[Writer, list[IO[Any]]]:
    """The writer for ``fmt`` into ``output`` (None: standard output). Returns it with the
    files to close after ``finish``."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        if output is None:
            raise ConfigError("Parquet cannot go to standard output: give -o FILE")
        return ParquetWriter(output), []
    meta = meta_path if meta_path is not None or output is None else sidecar_path(output)
    if fmt == "csv":
        text = stdout_text if output is None else output.open("w", encoding="utf-8", newline="")
        return CsvWriter(text, meta), [] if output is None else [text]
    binary = stdout_bytes if output is None else output.open("wb")
    return JsonlWriter(binary, meta), [] if output is None else [binary]
