"""Derived streams inside a :class:`~candlekeeper.feed.CandleFeed`: which intervals are native
and which are built from a finer base (the plan), and the stream object that builds them.

Why a plan apart from the feed: the service must know the same thing before it builds a feed
(which base streams to resume from storage, and how many of their stored candles a derived
stream needs to complete the bucket it stopped in), and the config check must reject an
interval that is neither native nor derivable with the same words. One function decides it.

The base of a derived stream is an ordinary native stream of the feed, subscribed even when
nobody asked for it: its closes are emitted and stored like any other (storing them is what
lets a derived stream resume after a restart from storage alone).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from candlekeeper.core.buffers import RingBuffer
from candlekeeper.core.bus import EventBus
from candlekeeper.core.candle import Candle, CorrectedCandle
from candlekeeper.core.derived import (
    DEFAULT_BASE,
    DerivedInterval,
    DerivedSeries,
    aggregate,
    interval_width,
    parse_anchor,
    parse_derived,
)
from candlekeeper.core.events import CandleClosed, CandleCorrected
from candlekeeper.core.intervals import DAY, INTERVAL_MS, MONTH_NAME
from candlekeeper.core.ratelog import RateLimitedLog
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError
from candlekeeper.observability.metrics import StreamMetrics

__all__ = ["DerivedStream", "StreamPlan", "plan_streams", "resolve_interval"]

log = logging.getLogger(__name__)


def resolve_interval(venue: str, native: Sequence[str], text: str, *,
                     derive_from: str = DEFAULT_BASE,
                     anchor: str | None = None) -> DerivedInterval | None:
    """None when ``text`` is served natively, else the derived interval it names. A native
    interval is derived only when asked explicitly (``5m@1m``) or when the feed's ``anchor``
    moves a day-or-longer bar off UTC (the venue's own is better otherwise)."""
    name, at, _ = text.partition("@")
    if interval_width(name) < DAY:
        anchor = None  # the feed's anchor is for day-or-longer bars only
    offset = parse_anchor(anchor)
    if not at and name in native and (offset == 0 or name == MONTH_NAME
                                      or INTERVAL_MS[name] < DAY):
        return None
    try:
        spec = parse_derived(text, base=derive_from, anchor=anchor)
    except ConfigError as exc:
        raise ConfigError(f"{venue} has no interval {text!r} and {exc}; allowed: "
                          f"{', '.join(native)}, or one derived from them (e.g. 2m, 10m, 3h, "
                          "1d+08:00; docs/derived-intervals.md)") from None
    if spec.base not in native:
        raise ConfigError(f"cannot derive {text!r} for {venue}: it has no base interval "
                          f"{spec.base!r}; its intervals: {', '.join(native)}")
    return spec


@dataclass(frozen=True)
class StreamPlan:
    """What a feed subscribes (``native``, asked streams plus the bases derived ones need) and
    what it builds (``derived``: derived key -> (interval, base key))."""

    native: list[StreamKey]
    derived: dict[StreamKey, tuple[DerivedInterval, StreamKey]] = field(default_factory=dict)

    @property
    def keys(self) -> list[StreamKey]:
        """Every stream of the feed, native first."""
        return [*self.native, *self.derived]

    def preload_need(self, key: StreamKey) -> int:
        """Stored candles of ``key`` a restart needs at least: a whole bucket of its widest
        derived stream (the one it stopped in may have begun that long ago)."""
        return max((spec.parts for spec, base in self.derived.values() if base == key),
                   default=0)


def plan_streams(venue: str, native: Sequence[str], keys: Sequence[StreamKey], *,
                 derive_from: str = DEFAULT_BASE, anchor: str | None = None) -> StreamPlan:
    """Split ``keys`` (interval names as configured) into native and derived streams."""
    out: dict[StreamKey, None] = {}
    derived: dict[StreamKey, tuple[DerivedInterval, StreamKey]] = {}
    bases: dict[StreamKey, None] = {}
    for key in keys:
        spec = resolve_interval(venue, native, key.interval, derive_from=derive_from,
                                anchor=anchor)
        if spec is None:
            out[key] = None
            continue
        dkey = StreamKey(key.venue, key.symbol, spec.name)
        base = StreamKey(key.venue, key.symbol, spec.base)
        if dkey in derived and derived[dkey][0] != spec:
            raise ConfigError(f"{dkey}: asked twice with different bases")
        derived[dkey] = (spec, base)
        bases[base] = None
    clash = sorted(str(k) for k in derived if k in out)
    if clash:
        raise ConfigError(f"{', '.join(clash)}: asked both native and derived (one series per "
                          "name; drop one of them)")
    out.update((b, None) for b in bases if b not in out)
    return StreamPlan(list(out), derived)


class DerivedStream:
    """One derived stream: fed by its base stream's closes (``offer``) and warm-up history
    (``history``); keeps its own ring buffer, metrics and ``CandleClosed`` emission."""

    __slots__ = ("_closed_subs", "_corrected_subs", "_count_error", "_ratelog", "base",
                 "base_buffer", "buffer", "key", "metrics", "now_ms", "series", "spec")

    def __init__(self, key: StreamKey, spec: DerivedInterval, base: StreamKey,
                 buffer: RingBuffer, metrics: StreamMetrics, bus: EventBus,
                 now_ms: Callable[[], int], *, floor: int = -1,
                 count_error: Callable[[str], None] | None = None,
                 base_buffer: RingBuffer | None = None) -> None:
        self.key = key
        self.spec = spec
        self.base = base
        self.buffer = buffer
        self.metrics = metrics
        self.now_ms = now_ms
        self._closed_subs = bus.subscribers(CandleClosed)
        self._corrected_subs = bus.subscribers(CandleCorrected)
        #: the base's ring buffer: a corrected base close rebuilds its derived candle from it
        self.base_buffer = base_buffer
        self._ratelog = RateLimitedLog(log)
        self._count_error = count_error
        self.series = DerivedSeries(spec, self._emit, floor=floor, on_hole=self._hole)

    @property
    def holes(self) -> int:
        return self.series.holes

    def offer(self, candle: Candle) -> None:
        """A closed base candle, as the base stream emits it (once, in order)."""
        self.series.offer(candle)

    def corrected(self, candle: Candle) -> None:
        """A base close emitted before was corrected (``CandleCorrected``). A bucket still
        being built takes the new values; a derived candle already emitted is rebuilt from the
        base's buffer and, if its values changed, corrected in turn (same event, same rules)."""
        series, t = self.series, candle.open_time
        b = self.spec.bucket(t)
        for parts in (series.cur_parts if series.cur == b else {}, series.early.get(b, {})):
            if t in parts:
                parts[t] = candle
                return
        previous = self.buffer.find(b)
        if previous is None or self.base_buffer is None:
            return
        found = [self.base_buffer.find(x) for x in range(b, b + self.spec.width_ms,
                                                         self.spec.base_ms)]
        parts_in = [c for c in found if c is not None]
        if len(parts_in) < len(found):
            self._ratelog.warning(f"correct:{self.key}", "%s: cannot correct the derived candle "
                                  "at %d: its %s candles are no longer all in memory", self.key,
                                  b, self.spec.base)
            return
        fixed = aggregate(parts_in, self.spec, b)
        if fixed.same_values(previous, trade_ids=False):
            return
        replacement = CorrectedCandle.replacing(fixed)
        self.buffer.replace(replacement)
        self.metrics.corrections += 1
        event = CandleCorrected(previous, replacement)
        for sub in self._corrected_subs:
            sub.offer(event)

    def history(self, candles: Sequence[Candle],
                handlers: Sequence[Callable[[list[Candle]], object]]) -> None:
        """Older base candles (warm-up or stored): the derived candles they complete go to the
        buffer and the history handlers (storage), never to ``on_closed``."""
        done = self.series.history(candles)
        if not done:
            return
        self.buffer.extend(done)
        for handler in handlers:
            try:
                handler(done)
            except Exception as exc:  # a consumer's bug must not cost the warm-up
                self._ratelog.error("history", "history handler raised %r", exc)

    def seed(self, stored: Sequence[Candle],
             handlers: Sequence[Callable[[list[Candle]], object]]) -> None:
        """At start: the base's stored candles. A resumed derived stream continues the bucket
        after its last stored candle with them (and emits any bucket they complete that was not
        stored: the process died in between); a new one takes them as history."""
        if not stored:
            return
        if self.series.floor >= 0:
            for candle in stored:
                self.series.offer(candle)
        else:
            self.history(stored, handlers)

    def _emit(self, candle: Candle) -> None:
        self.metrics.on_closed(candle, self.now_ms())
        self.buffer.append(candle)
        for sub in self._closed_subs:
            sub.offer(candle)

    def _hole(self, open_time: int, have: int) -> None:
        if self._count_error is not None:
            self._count_error("derived_hole")
        self._ratelog.error(f"hole:{self.key}", "%s: no derived candle at %d: %d of its %d %s "
                            "candles exist (the base series has a hole there)", self.key,
                            open_time, have, self.spec.parts, self.spec.base)


def resume_points(plan: StreamPlan, resume: Mapping[StreamKey, int]) -> dict[StreamKey, int]:
    """``resume`` plus a resume point for a base stored nowhere whose derived stream is: the
    base then fills from the bucket after the derived stream's last candle, in order."""
    out = dict(resume)
    for dkey, (spec, base) in plan.derived.items():
        if dkey in resume and base not in out:
            out[base] = resume[dkey] + spec.width_ms - spec.base_ms
    return out
