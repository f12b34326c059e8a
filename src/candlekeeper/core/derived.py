"""Derived intervals: names, bucket alignment and the exact aggregation rules (pure, no I/O).

A strategy may need an interval its venue does not offer (``2m``, ``10m``, ``3h``, daily bars
anchored at UTC+8). Such a series is built from a finer native one (the *base*, ``1m`` by
default) as its closed candles arrive: the base sequence already delivers each base candle
exactly once, in order and gap-free, so a derived candle inherits those guarantees by being
emitted only when every one of its constituents is in.

Names: ``N`` plus ``s``/``m``/``h``/``d``/``w`` (``45m``, ``3h``, ``2d``); a day-or-longer name
may carry its anchor as a UTC offset suffix (``1d+08:00``: days that open at 00:00 UTC+8). A
sub-day width must divide a day evenly so every day starts a bucket; buckets are epoch-aligned
(``3h`` opens at 00:00, 03:00, ... UTC), day-or-longer buckets at the anchor (weeks open on
Monday, as native weeks do). Calendar months are not derivable.

Aggregation per field: open of the first constituent, close of the last, high the max, low the
min (the first one's text where equal), volumes and trade counts summed exactly with
``Decimal`` at the larger scale of the parts (``"12.300" + "1.000" == "13.300"``: the scale an
exchange writes its own aggregate with), trade ids the first/last constituent that has one. A
field some constituent lacks is ``None``: a partial sum would be a wrong number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Final

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import DAY, INTERVAL_MS, MONTH_NAME, SECOND, WEEK, align
from candlekeeper.errors import ConfigError

__all__ = ["DEFAULT_BASE", "DerivedInterval", "DerivedSeries", "aggregate", "interval_width",
           "parse_anchor", "parse_derived", "sum_text"]

DEFAULT_BASE: Final = "1m"
_UNITS: Final = {"s": SECOND, "m": 60 * SECOND, "h": 3600 * SECOND, "d": DAY, "w": WEEK}
_NAME: Final = re.compile(r"(\d{1,6})([smhdw])([+-]\d{2}:\d{2})?")
_ANCHOR: Final = re.compile(r"(?:UTC)?\s*([+-])(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)
_WEEK_OFFSET: Final = 4 * DAY  # 1970-01-01 was a Thursday; weeks open on Monday
_MAX_OFFSET: Final = 14 * 3600 * SECOND
#: enough digits that no sum of exchange decimals is ever rounded
_PRECISION: Final = 200


def parse_anchor(text: str | None) -> int:
    """A UTC offset in ms from ``UTC``, ``UTC+8``, ``UTC+05:30``, ``+08:00``, ``-0330``."""
    if text is None:
        return 0
    raw = str(text).strip()
    if raw.upper() in ("UTC", "Z", "+00:00", "-00:00", ""):
        return 0
    m = _ANCHOR.fullmatch(raw)
    if m is None:
        raise ConfigError(f"bad anchor {text!r}: expected UTC, UTC+8, +08:00 or -05:30")
    hours, minutes = int(m.group(2)), int(m.group(3) or 0)
    offset = (hours * 3600 + minutes * 60) * SECOND * (-1 if m.group(1) == "-" else 1)
    if minutes >= 60 or abs(offset) > _MAX_OFFSET:
        raise ConfigError(f"bad anchor {text!r}: a UTC offset is at most 14:00")
    return offset


def anchor_suffix(offset_ms: int) -> str:
    """``+08:00`` for 8 hours, ``""`` for UTC (the suffix of an anchored interval's name)."""
    if offset_ms == 0:
        return ""
    minutes = abs(offset_ms) // 60_000
    return f"{'-' if offset_ms < 0 else '+'}{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class DerivedInterval:
    """One derived interval: its stream name, width, base and anchor."""

    name: str
    width_ms: int
    base: str
    offset_ms: int = 0
    weekly: bool = False

    @property
    def parts(self) -> int:
        """Base candles per derived candle."""
        return self.width_ms // INTERVAL_MS[self.base]

    @property
    def base_ms(self) -> int:
        return INTERVAL_MS[self.base]

    def bucket(self, ts_ms: int) -> int:
        """Open time of the derived candle containing ``ts_ms``."""
        shift = self.offset_ms - (_WEEK_OFFSET if self.weekly else 0)
        return (ts_ms + shift) // self.width_ms * self.width_ms - shift

    def close_time(self, open_time: int) -> int:
        return open_time + self.width_ms - 1


def interval_width(name: str) -> int:
    """Width in ms of a native or derived interval name (for sorting; 0 when unparsable)."""
    if name in INTERVAL_MS:
        return INTERVAL_MS[name]
    m = _NAME.fullmatch(name.split("@", 1)[0])
    return int(m.group(1)) * _UNITS[m.group(2)] if m else 0


def looks_derived(text: str) -> bool:
    """True when ``text`` has the shape of a derived interval (``N<unit>[anchor][@base]``)."""
    name, _, base = text.partition("@")
    return _NAME.fullmatch(name) is not None and (not base or base in INTERVAL_MS)


def parse_derived(text: str, *, base: str = DEFAULT_BASE,
                  anchor: str | None = None) -> DerivedInterval:
    """Parse and check a derived interval: ``2m``, ``3h``, ``1d+08:00``, ``5m@1m`` (an explicit
    base), with ``base`` / ``anchor`` as the defaults for what the text does not say."""
    name, at, own_base = text.partition("@")
    if at:
        base = own_base
    m = _NAME.fullmatch(name)
    if m is None:
        hint = " (calendar months cannot be derived)" if name.endswith("M") else ""
        raise ConfigError(f"cannot derive {text!r}: expected N followed by s, m, h, d or w, "
                          f"e.g. 2m, 3h, 1d+08:00{hint}")
    count, unit, own_anchor = int(m.group(1)), m.group(2), m.group(3)
    width = count * _UNITS[unit]
    if base not in INTERVAL_MS or base == MONTH_NAME:
        raise ConfigError(f"cannot derive {text!r} from {base!r}: the base must be a native "
                          "fixed-width interval")
    base_ms = INTERVAL_MS[base]
    if width <= base_ms or width % base_ms:
        raise ConfigError(f"cannot derive {text!r} from {base}: it must be a multiple of the "
                          "base, and longer")
    if width < DAY and DAY % width:
        raise ConfigError(f"cannot derive {text!r}: a sub-day interval must divide a day evenly")
    offset = parse_anchor(own_anchor if own_anchor is not None else anchor)
    if offset and width < DAY:
        raise ConfigError(f"cannot derive {text!r} with anchor {anchor or own_anchor!r}: an "
                          "anchor applies to day-or-longer intervals only")
    spec = DerivedInterval(f"{count}{unit}{anchor_suffix(offset)}", width, base, offset,
                           weekly=unit == "w")
    first = spec.bucket(0)
    if align(first, base) != first:
        raise ConfigError(f"cannot derive {text!r} from {base}: its buckets would not open on "
                          f"{base} boundaries (anchor {anchor_suffix(offset) or 'UTC'})")
    return spec


# -- aggregation -------------------------------------------------------------------------------
def sum_text(texts: Sequence[str]) -> str:
    """Exact sum of decimal texts at the larger scale of the parts, never in exponent form."""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        total = Decimal(texts[0])
        for t in texts[1:]:
            total += Decimal(t)
    return format(total, "f")


def _opt_sum(texts: list[str | None]) -> str | None:
    if any(t is None for t in texts):
        return None
    return sum_text([t for t in texts if t is not None])


def _extreme(parts: Sequence[Candle], high: bool) -> str:
    best = parts[0].high_str if high else parts[0].low_str
    best_d = Decimal(best)
    for p in parts[1:]:
        text = p.high_str if high else p.low_str
        d = Decimal(text)
        if (d > best_d) if high else (d < best_d):
            best, best_d = text, d
    return best


def aggregate(parts: Sequence[Candle], spec: DerivedInterval, open_time: int) -> Candle:
    """The derived candle opening at ``open_time`` made of ``parts`` (in open-time order)."""
    first, last = parts[0], parts[-1]
    trades = [p.trades for p in parts]
    first_id = next((p.first_trade_id for p in parts if p.first_trade_id is not None), None)
    last_id = next((p.last_trade_id for p in reversed(parts) if p.last_trade_id is not None),
                   None)
    return Candle(
        first.venue, first.symbol, spec.name, open_time, spec.close_time(open_time),
        first.open_str, _extreme(parts, True), _extreme(parts, False), last.close_str,
        sum_text([p.volume_str for p in parts]),
        _opt_sum([p.quote_volume_str for p in parts]),
        None if any(t is None for t in trades) else sum(t for t in trades if t is not None),
        _opt_sum([p.taker_buy_base_volume_str for p in parts]),
        _opt_sum([p.taker_buy_quote_volume_str for p in parts]),
        first_id, last_id, True, last.event_time, "derived")


# -- the incremental series ----------------------------------------------------------------------
@dataclass(slots=True)
class DerivedSeries:
    """Builds one derived stream from its base's closed candles.

    :meth:`offer` takes the base stream's emitted closes (exactly once, in order) and emits a
    derived candle when its bucket's last constituent is in. A bucket left incomplete when a
    later one starts can never complete (the base sequence skipped an open time the venue's
    own history lacks): it is counted in ``holes``, reported through ``on_hole`` and dropped,
    so the stream never wedges. Before anything was emitted an incomplete first bucket is no
    hole, only the start of the stream: it is kept, since older base candles (warm-up history
    fetched behind the live closes) may still complete it through :meth:`history`.

    ``floor``: open time of the last derived candle already stored (a restart); nothing at or
    before it is produced again.
    """

    spec: DerivedInterval
    emit: Callable[[Candle], None]
    floor: int = -1
    on_hole: Callable[[int, int], None] | None = None
    #: open time of the last derived candle emitted or adopted (-1: none yet)
    last: int = -1
    holes: int = 0
    cur: int | None = None
    cur_parts: dict[int, Candle] = field(default_factory=dict)
    #: incomplete buckets from before the first emission: history may complete them
    early: dict[int, dict[int, Candle]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.last = max(self.last, self.floor)

    def offer(self, base: Candle) -> None:
        """A base close, in order (the base stream's own emission)."""
        b = self.spec.bucket(base.open_time)
        if b <= self.last:
            return
        if b != self.cur:
            self._leave_current()
            self.cur, self.cur_parts = b, {}
        self.cur_parts[base.open_time] = base
        self._complete_current()

    def history(self, rows: Sequence[Candle]) -> list[Candle]:
        """Older base candles (warm-up history or stored ones, ascending): the derived candles
        they complete, oldest first, for the buffer and storage (not emitted: history is not a
        live close). A bucket that already has live constituents is merged with them; the
        newest bucket becomes the current one when no live candle came yet."""
        groups: dict[int, dict[int, Candle]] = {}
        for c in rows:
            b = self.spec.bucket(c.open_time)
            if b > self.floor:
                groups.setdefault(b, {})[c.open_time] = c
        if not groups:
            return []
        newest = max(groups)
        if self.cur is None and self.last < 0 and len(groups[newest]) < self.spec.parts:
            self.cur, self.cur_parts = newest, groups.pop(newest)  # live candles continue it
        out: list[Candle] = []
        oldest = min(groups) if groups else None
        for b in sorted(groups):
            if b == self.cur:
                self.cur_parts.update(groups[b])
                continue
            if b > self.last and self.last >= 0 and b not in self.early:
                continue  # newer than the emitted series and not kept: nothing to merge with
            parts = {**groups[b], **self.early.pop(b, {})}
            if len(parts) == self.spec.parts:
                out.append(self._build(b, parts))
            elif b == oldest:  # history merely starts mid-way: older history may complete it
                self.early[b] = parts
            else:
                self._hole(b, len(parts))
        if out and self.last < 0:
            self.last = out[-1].open_time
        self._complete_current()
        return out

    # -- internals --------------------------------------------------------------------------
    def _build(self, b: int, parts: dict[int, Candle]) -> Candle:
        return aggregate([parts[t] for t in sorted(parts)], self.spec, b)

    def _complete_current(self) -> None:
        b = self.cur
        if b is not None and len(self.cur_parts) == self.spec.parts and b > self.last:
            candle = self._build(b, self.cur_parts)
            self.cur, self.cur_parts = None, {}
            self.last = b
            self.early = {k: v for k, v in self.early.items() if k < b}
            self.emit(candle)

    def _leave_current(self) -> None:
        """A later bucket starts: the current one can no longer complete from live closes."""
        b = self.cur
        if b is None or not self.cur_parts:
            return
        if self.last < 0:
            self.early[b] = self.cur_parts  # the stream's start: history may complete it
        else:
            self._hole(b, len(self.cur_parts))

    def _hole(self, b: int, have: int) -> None:
        self.holes += 1
        if self.on_hole is not None:
            self.on_hole(b, have)
