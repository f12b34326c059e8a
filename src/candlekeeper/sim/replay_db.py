"""Stored candles as the simulator's market: ``candlekeeper simulate --replay-db PATH|DSN``.

Another loader beside ``replay.py``'s files: it reads one venue's streams from a database the
service wrote (SQLite or PostgreSQL, through :class:`~candlekeeper.stored.StoredCandles`) into
the same :class:`~candlekeeper.sim.replay.ReplaySeries` the file loaders make, so the replay
path is the one real files take — values served verbatim, REST klines from the series, the
WebSocket pushing it in (accelerated) venue time, coarser intervals aggregated from it.

Per symbol the *finest* stored interval is the series (the market aggregates coarser ones from
it, as it does for a file). The simulator needs random access to the whole series (a REST
request may ask for any time), so it is held in memory: ~200 bytes a candle.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import INTERVAL_MS, MONTH_NAME
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError
from candlekeeper.sim.replay import ReplayRow, ReplaySeries, _series
from candlekeeper.stored import StoredCandles

__all__ = ["DbReplay", "load_replay_db"]


class DbReplay:
    """What a database holds for the simulator: its venue and one series per symbol."""

    def __init__(self, venue: str, series: list[ReplaySeries],
                 intervals: tuple[str, ...]) -> None:
        self.venue = venue
        self.series = series
        #: every stored interval the series can serve (its own and coarser stored ones)
        self.intervals = intervals

    @property
    def symbols(self) -> list[str]:
        return [s.symbol for s in self.series]


def _row(c: Candle) -> ReplayRow:
    def dec(text: str | None) -> Decimal | None:
        return None if text is None else Decimal(text)

    return ReplayRow(c.open_time, Decimal(c.open_str), Decimal(c.high_str), Decimal(c.low_str),
                     Decimal(c.close_str), Decimal(c.volume_str), dec(c.quote_volume_str),
                     c.trades, dec(c.taker_buy_base_volume_str),
                     dec(c.taker_buy_quote_volume_str))


def _pick_venue(keys: Sequence[StreamKey], venue: str | None, shown: str) -> str:
    venues = sorted({k.venue for k in keys})
    if not venues:
        raise ConfigError(f"replay database {shown}: no candles stored")
    if venue is not None:
        if venue not in venues:
            raise ConfigError(f"replay database {shown}: nothing stored for venue {venue!r} "
                              f"(it holds {', '.join(venues)})")
        return venue
    if len(venues) > 1:
        raise ConfigError(f"replay database {shown} holds several venues "
                          f"({', '.join(venues)}): choose one with --venues")
    return venues[0]


async def load_replay_db(target: str | Path | StoredCandles, *, venue: str | None = None,
                         symbols: Sequence[str] | None = None, start: int | None = None,
                         end: int | None = None) -> DbReplay:
    """Load ``venue``'s stored streams (default: the only venue stored) with ``start <=
    open_time < end``, optionally only ``symbols`` (canonical)."""
    source = target if isinstance(target, StoredCandles) else StoredCandles.of(target)
    async with source:
        keys = await source.keys()
        chosen = _pick_venue(keys, venue, source.shown)
        mine = [k for k in keys if k.venue == chosen and k.interval != MONTH_NAME
                and (symbols is None or k.symbol in symbols)]
        by_symbol: dict[str, list[StreamKey]] = {}
        for k in mine:
            by_symbol.setdefault(k.symbol, []).append(k)
        series: list[ReplaySeries] = []
        for _symbol, streams in sorted(by_symbol.items()):
            finest = min(streams, key=lambda k: INTERVAL_MS[k.interval])
            rows = [_row(c) async for page in source.pages(finest, start, end)
                    for c in page if c.closed]
            if rows:
                series.append(_series(rows, Path(f"{source.shown} {finest.symbol} "
                                                 f"{finest.interval}"),
                                      finest.symbol, finest.interval))
        if not series:
            raise ConfigError(f"replay database {source.shown}: no closed candles of {chosen} "
                              "in the range")
        intervals = tuple(sorted({k.interval for k in mine if k.symbol in
                                  {s.symbol for s in series}}, key=INTERVAL_MS.__getitem__))
        return DbReplay(chosen, series, intervals)
