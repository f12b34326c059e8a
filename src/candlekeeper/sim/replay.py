"""Loaders for real candle series the simulator can replay (protocols.md §D).

Supported inputs:

* freqtrade JSON, both layouts: ``[[ts, o, h, l, c, v], ...]`` and pandas' "columns" orient
  ``{"date": {"0": ts, ...}, "open": {...}, ...}``;
* OHLCV CSV with a header ``open_time_ms,open,high,low,close,volume`` (the DERIVED files);
* kline-archive CSV, the 12-column layout of an exchange's public candle archive (protocols.md
  §B.5): optional header, open time in ms or µs (some archives switched to µs on 2025-01-01).

Numbers are kept as the file wrote them (``Decimal("16726.0")`` stays ``"16726.0"``): JSON
numbers are decoded straight into ``Decimal`` by msgspec, CSV cells are parsed from their text.
The symbol and interval are inferred from the file name and the timestamps when not given.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path

import msgspec

from candlekeeper.core.intervals import INTERVAL_MS, MONTH_NAME, is_aligned
from candlekeeper.errors import ConfigError
from candlekeeper.sim.profiles import DEFAULT_PROFILES


class ReplayRow(msgspec.Struct, frozen=True):
    """One source candle. Fields the source lacks (OHLCV-only files) are ``None`` and get
    synthesised by the market."""

    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal | None = None
    trades: int | None = None
    taker_buy_base_volume: Decimal | None = None
    taker_buy_quote_volume: Decimal | None = None


class ReplaySeries(msgspec.Struct, frozen=True):
    """A contiguous-or-gappy, strictly ascending candle series of one symbol and interval."""

    symbol: str
    interval: str
    rows: tuple[ReplayRow, ...]
    source: str = ""

    @property
    def first_open(self) -> int:
        return self.rows[0].open_time

    @property
    def last_open(self) -> int:
        return self.rows[-1].open_time


_INTERVAL_BY_MS = {ms: name for name, ms in INTERVAL_MS.items() if name != MONTH_NAME}
_INTERVAL_TOKEN = re.compile(r"(?<![0-9A-Za-z])(1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w)"
                             r"(?![0-9A-Za-z])")
_KNOWN_BASES = {s[:-4] for s in DEFAULT_PROFILES if s.endswith("USDT")}


def load_replay(path: str | Path, *, symbol: str | None = None,
                interval: str | None = None) -> ReplaySeries:
    """Load any supported file, choosing the parser by extension and content."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read replay file {p}: {exc}") from exc
    if p.suffix.lower() == ".json" or data.lstrip()[:1] in (b"[", b"{"):
        rows = _parse_freqtrade_json(data, p)
    else:
        rows = _parse_csv(data.decode("utf-8", "replace"), p)
    return _series(rows, p, symbol, interval)


def load_freqtrade_json(path: str | Path, *, symbol: str | None = None,
                        interval: str | None = None) -> ReplaySeries:
    p = Path(path)
    return _series(_parse_freqtrade_json(p.read_bytes(), p), p, symbol, interval)


def load_csv(path: str | Path, *, symbol: str | None = None,
             interval: str | None = None) -> ReplaySeries:
    """OHLCV CSV (6 columns, header) or kline-archive CSV (12 columns)."""
    p = Path(path)
    return _series(_parse_csv(p.read_text("utf-8", "replace"), p), p, symbol, interval)


def parse_archive_csv_rows(text: str, *, symbol: str, interval: str | None = None,
                           source: str = "<text>") -> ReplaySeries:
    """Parse kline-archive CSV rows given as text (lines starting with ``#`` are skipped)."""
    return _series(_parse_csv(text, Path(source)), Path(source), symbol, interval)


# -- parsers ----------------------------------------------------------------------------------

_FtRows = list[tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]]
_FtColumns = dict[str, dict[str, Decimal]]


def _parse_freqtrade_json(data: bytes, p: Path) -> list[ReplayRow]:
    try:
        obj = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"replay file {p}: invalid JSON: {exc}") from exc
    try:
        if isinstance(obj, list):
            table = msgspec.json.decode(data, type=_FtRows)
            return [ReplayRow(int(r[0]), *r[1:]) for r in table]
        cols = msgspec.json.decode(data, type=_FtColumns)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"replay file {p}: not a freqtrade candle file: {exc}") from exc
    missing = {"date", "open", "high", "low", "close", "volume"} - cols.keys()
    if missing:
        raise ConfigError(f"replay file {p}: missing columns {sorted(missing)}")
    dates = cols["date"]
    out = []
    for idx, ts in dates.items():
        try:
            out.append(ReplayRow(int(ts), cols["open"][idx], cols["high"][idx], cols["low"][idx],
                                 cols["close"][idx], cols["volume"][idx]))
        except KeyError as exc:
            raise ConfigError(f"replay file {p}: row {idx} lacks column {exc}") from None
    return out


def _dec(cell: str, p: Path, line: int) -> Decimal:
    try:
        value = Decimal(cell.strip())
    except InvalidOperation:
        raise ConfigError(f"replay file {p} line {line}: not a number: {cell!r}") from None
    if not value.is_finite():
        raise ConfigError(f"replay file {p} line {line}: not a finite number: {cell!r}")
    return value


def _ms(cell: str, p: Path, line: int) -> int:
    try:
        ts = int(cell.strip())
    except ValueError:
        raise ConfigError(f"replay file {p} line {line}: bad timestamp {cell!r}") from None
    return ts // 1000 if ts >= 10**14 else ts  # µs (some archives since 2025) -> ms


def _parse_csv(text: str, p: Path) -> list[ReplayRow]:
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines())
             if ln.strip() and not ln.lstrip().startswith("#")]
    out: list[ReplayRow] = []
    for line, cells in _rows(lines):
        if not cells[0].strip().lstrip("-").isdigit():
            continue  # a header
        if len(cells) == 12:
            out.append(ReplayRow(
                _ms(cells[0], p, line), _dec(cells[1], p, line), _dec(cells[2], p, line),
                _dec(cells[3], p, line), _dec(cells[4], p, line), _dec(cells[5], p, line),
                _dec(cells[7], p, line), int(cells[8]), _dec(cells[9], p, line),
                _dec(cells[10], p, line)))
        elif len(cells) == 6:
            o, h, lo, c, v = (_dec(cell, p, line) for cell in cells[1:])
            out.append(ReplayRow(_ms(cells[0], p, line), o, h, lo, c, v))
        else:
            raise ConfigError(f"replay file {p} line {line}: expected 6 (OHLCV) or 12 (archive) "
                              f"columns, got {len(cells)}")
    return out


def _rows(lines: list[tuple[int, str]]) -> Iterable[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO("\n".join(ln for _, ln in lines)))
    for (line, _), cells in zip(lines, reader, strict=True):
        yield line, cells


# -- validation and inference -----------------------------------------------------------------

def _series(rows: list[ReplayRow], p: Path, symbol: str | None,
            interval: str | None) -> ReplaySeries:
    if not rows:
        raise ConfigError(f"replay file {p}: no candles")
    rows.sort(key=lambda r: r.open_time)
    interval = interval or _infer_interval(rows, p)
    if interval not in INTERVAL_MS or interval == MONTH_NAME:
        raise ConfigError(f"replay file {p}: unsupported interval {interval!r}")
    prev = None
    for r in rows:
        if r.open_time == prev:
            raise ConfigError(f"replay file {p}: duplicate open time {r.open_time}")
        if not is_aligned(r.open_time, interval):
            raise ConfigError(f"replay file {p}: open time {r.open_time} is not on a "
                              f"{interval} boundary")
        if not (r.low <= min(r.open, r.close) and r.high >= max(r.open, r.close)):
            raise ConfigError(f"replay file {p}: candle at {r.open_time} has inconsistent "
                              "OHLC (low/high do not bound open/close)")
        prev = r.open_time
    return ReplaySeries(symbol or infer_symbol(p.name), interval, tuple(rows), str(p))


def _infer_interval(rows: list[ReplayRow], p: Path) -> str:
    token = _INTERVAL_TOKEN.search(p.name)
    if token:
        return token.group(1)
    if len(rows) < 2:
        raise ConfigError(f"replay file {p}: one candle; pass the interval explicitly")
    gaps = sorted(b.open_time - a.open_time for a, b in itertools.pairwise(rows))
    name = _INTERVAL_BY_MS.get(gaps[0])
    if name is None:
        raise ConfigError(f"replay file {p}: cannot infer the interval from a {gaps[0]} ms "
                          "spacing; pass it explicitly")
    return name


def infer_symbol(filename: str) -> str:
    """``freqtrade_XRP_USDT_USDT-5m-futures.json`` -> ``XRPUSDT``,
    ``DERIVED_btc_5m_...csv`` -> ``BTCUSDT``, ``BTCUSDT-1m-2023-01.csv`` -> ``BTCUSDT``."""
    tokens = [t.upper() for t in re.split(r"[-_.\s]+", filename) if t]
    for i, tok in enumerate(tokens):
        if tok.endswith("USDT") and len(tok) > 4 and tok.isalnum():
            return tok
        if tok in _KNOWN_BASES:
            return tok + "USDT"
        if (i + 1 < len(tokens) and tokens[i + 1] == "USDT" and tok.isalpha() and len(tok) <= 10
                and tok not in {"DERIVED", "FREQTRADE", "CANDLES"}):
            return tok + "USDT"
    raise ConfigError(f"cannot infer the symbol from {filename!r}; pass it explicitly")
