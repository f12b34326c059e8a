"""The derived-interval part of ``candlekeeper backfill`` and ``candlekeeper gaps``.

A derived interval (``3h``, ``1d+08:00``) is not served by the venue: the commands act on its
base over REST like on any native stream, then build (``backfill``, ``gaps --repair``) or audit
(``gaps``) the derived series from the stored base (``backfill/derive.py``). Kept apart from
``cli.py`` so each stays small; the output lines follow the native streams' wording.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Console

from candlekeeper.backfill.derive import DerivedAudit, DeriveResult, audit_derived, build_derived
from candlekeeper.backfill.runner import Backfiller
from candlekeeper.core.derived import DerivedInterval
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import CandlekeeperError

__all__ = ["Derived", "audit_all", "build_all", "fmt_time", "print_audits", "print_built"]

#: derived stream key -> (its interval, its base stream key), as ``StreamPlan.derived``
Derived = dict[StreamKey, tuple[DerivedInterval, StreamKey]]


def print_audit_head(console: Console, name: str, empty: bool, stored: int, holes: int,
                     missing: int, start: int, end: int) -> bool:
    """A stream's audit line, native or derived; True when its holes are to be listed."""
    if empty and not holes:
        console.print(f"{name}: nothing stored")
    elif not holes:
        console.print(f"{name}: {stored} candles, no gaps ({fmt_time(start)}..{fmt_time(end)})")
    else:
        console.print(f"{name}: {stored} candles, {holes} gap(s), {missing} missing:")
        return True
    return False


def fmt_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _name(key: StreamKey, spec: DerivedInterval) -> str:
    return f"{key.venue} {key.symbol} {spec.name} (from {spec.base})"


async def build_all(eng: Backfiller, derived: Derived, start: int,
                    end: int | None) -> list[DeriveResult]:
    """Build every derived stream's missing complete buckets in ``[start, end)`` from its
    stored base (after the base was filled), up to the base's forming candle."""
    out: list[DeriveResult] = []
    for key, (spec, base) in derived.items():
        try:
            closed = eng.fetcher(base.venue).closed_end(spec.base, end)
            out.append(await build_derived(eng.sink, spec, base, start, closed))
        except CandlekeeperError as exc:
            out.append(DeriveResult(key, spec, error=str(exc)))
    return out


def print_built(console: Console, results: Sequence[DeriveResult]) -> bool:
    """One line per derived stream; True when one failed."""
    failed = False
    for r in results:
        if r.error:
            failed = True
            console.print(f"[red]{r.name}: FAILED: {r.error}[/red]")
            continue
        line = f"{r.name}: {r.built} built from the stored {r.spec.base}"
        if r.incomplete:
            line += (f"; {r.incomplete} bucket(s) not built, their {r.spec.base} base is "
                     f"incomplete ({r.empty} with none stored; first at "
                     f"{fmt_time(r.first_incomplete or 0)})")
        console.print(line)
    return failed


async def audit_all(eng: Backfiller, derived: Derived, start: int | None,
                    end: int | None) -> list[DerivedAudit]:
    return [await audit_derived(eng.sink, spec, key, start, end,
                                eng.fetcher(key.venue).closed_end(spec.base))
            for key, (spec, _) in derived.items()]


def print_audits(console: Console, audits: Sequence[DerivedAudit]) -> None:
    """The derived streams' audit, like the native one, each hole saying whether its base
    explains it (an incomplete base) or it can be rebuilt from storage as is."""
    for a in audits:
        if print_audit_head(console, _name(a.key, a.spec), a.empty, a.stored, len(a.holes),
                            a.missing, a.start, a.end):
            for h in a.holes[:20]:
                why = (f"{h.base_incomplete} with a hole in the {a.spec.base} base"
                       if h.base_incomplete else f"the {a.spec.base} base is complete: "
                       "--repair rebuilds them")
                console.print(f"    {fmt_time(h.start)} .. {fmt_time(h.end)}  "
                              f"({h.candles} candles; {why})")
            if len(a.holes) > 20:
                console.print(f"    ... and {len(a.holes) - 20} more")
