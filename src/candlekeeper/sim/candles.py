"""Pure candle arithmetic shared by the walk and the replay: aggregation, the forming candle's
partial state, and the wire formatting of decimals.

The forming candle (the ``x:false`` frames) is derived from the *final* candle: within the candle
trades, volumes and quote volumes grow in proportion to the elapsed fraction, floored to the
field's step, and the price visits open -> first extreme -> second extreme -> close along
straight lines at fractions ``a < b`` of the candle's trades (fixed per candle): it stands where
the last trade so far put it, so the candle changes only when a trade happens, as on a real
venue, and a quiet symbol's candle stays put between its trades. Everything is monotone in time
(the high never falls, trade ids and volumes never shrink) and at the end equals the final candle
exactly, so a closing frame is simply the final candle.
"""

from __future__ import annotations

import itertools
import re
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Final

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import close_time

_ZERO: Final = Decimal(0)
_EXP_RE: Final = re.compile(rb'"(-?)(\d+(?:\.\d+)?)E([-+]\d+)"')


def dec(units: int, places: int, pad: int | None = None) -> Decimal:
    """``units * 10**-places`` written with exactly ``places`` decimals, or ``pad`` decimals
    when the venue pads its numbers (e.g. to 8)."""
    if pad is not None and pad >= places:
        return Decimal(units * 10 ** (pad - places)).scaleb(-pad)
    return Decimal(units).scaleb(-places)


def units_text(units: int, places: int, pad: int | None = None) -> str:
    """``format(dec(units, places, pad), "f")`` without a ``Decimal``: the exact text of
    ``units * 10**-places`` (``units`` >= 0), e.g. ``units_text(5, 3) == "0.005"``."""
    if pad is not None and pad >= places:
        units *= 10 ** (pad - places)
        places = pad
    if places <= 0:
        return str(units * 10 ** -places)
    digits = str(units).rjust(places + 1, "0")
    return digits[:-places] + "." + digits[-places:]


def pad_to(value: Decimal, places: int | None) -> Decimal:
    """``value`` with exactly ``places`` decimals, for a venue that pads its numbers."""
    if places is None:
        return value
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def _plain(match: re.Match[bytes]) -> bytes:
    sign, digits, exp = match.group(1), match.group(2), int(match.group(3))
    text = format(Decimal(digits.decode()).scaleb(exp), "f").encode()
    return b'"' + sign + text + b'"'


def plain_decimals(payload: bytes) -> bytes:
    """msgspec writes ``Decimal("0.00000000")`` as ``"0E-8"``; the exchange writes
    ``"0.00000000"``. Rewrite exponent notation inside JSON strings to plain notation. The
    check is one substring search, so the common case costs nothing."""
    if b"E-" not in payload and b"E+" not in payload:
        return payload
    return _EXP_RE.sub(_plain, payload)


def _step_exp(*values: Decimal) -> int:
    """Exponent of the coarsest step that writes all ``values`` exactly (<= 0)."""
    exp = 0
    for v in values:
        e = v.normalize().as_tuple().exponent
        if isinstance(e, int) and e < exp:
            exp = e
    return exp


def _floor(value: Decimal, exp: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(exp), rounding=ROUND_FLOOR)


def aggregate(parts: list[Candle], interval: str, open_time: int, closed: bool) -> Candle:
    """A candle of ``interval`` made of consecutive finer candles (the parts must be in order)."""
    first, last = parts[0], parts[-1]
    high, low = first.high, first.low
    v = q = bv = bq = _ZERO
    n = 0
    for p in parts:
        if p.high > high:
            high = p.high
        if p.low < low:
            low = p.low
        v += p.volume
        q += p.quote_volume or _ZERO
        bv += p.taker_buy_base_volume or _ZERO
        bq += p.taker_buy_quote_volume or _ZERO
        n += p.trades or 0
    return Candle.of(first.venue, first.symbol, interval, open_time,
                     close_time(open_time, interval), first.open, high, low, last.close, v, q, n,
                     bv, bq, first.first_trade_id, last.last_trade_id, closed)


def partial(final: Candle, phase: float, a: float, b: float, high_first: bool,
            pad: int | None) -> Candle | None:
    """The candle as it stood ``phase`` (0..1) of the way through, or ``None`` before its first
    trade (the exchange pushes nothing for a candle without trades)."""
    n = final.trades or 0
    k = int(n * phase)
    if k >= n:
        return msgspec.structs.replace(final, closed=False)
    if k < 1:
        return None
    # the price moves with trades only: where the k-th trade of n falls on the path, so the
    # candle changes exactly when its trade count does (a quiet symbol pushes rarely)
    phase = k / n
    o, h, lo, c = final.open, final.high, final.low, final.close
    x1, x2 = (h, lo) if high_first else (lo, h)
    pts = ((0.0, o), (a, x1), (b, x2), (1.0, c))
    hi_now, lo_now = o, o
    price = o
    for (t0, p0), (t1, p1) in itertools.pairwise(pts):
        if phase >= t1:
            hi_now, lo_now = max(hi_now, p1), min(lo_now, p1)
            continue
        w = Decimal(round((phase - t0) / (t1 - t0) * 10_000)) / 10_000
        price = (p0 + (p1 - p0) * w).quantize(Decimal(1).scaleb(_step_exp(o, h, lo, c)))
        break
    price = _like(price, o, pad)
    hi_now, lo_now = max(hi_now, price), min(lo_now, price)
    v = final.volume
    v_step = _step_exp(v)
    v_now = max(_floor(v * Decimal(k) / Decimal(n), v_step), min(Decimal(1).scaleb(v_step), v))
    share = v_now / v if v else _ZERO

    def part(x: Decimal | None) -> Decimal | None:
        return None if x is None else _like(_floor(x * share, _step_exp(x)), x, pad)

    first = final.first_trade_id
    return Candle.of(final.venue, final.symbol, final.interval, final.open_time, final.close_time,
                  o, hi_now, lo_now, price, _like(v_now, v, pad), part(final.quote_volume), k,
                  part(final.taker_buy_base_volume), part(final.taker_buy_quote_volume), first,
                  None if first is None else first + k - 1, False)


def _like(x: Decimal, ref: Decimal, pad: int | None) -> Decimal:
    """``x`` written with the venue's padding, or with as many decimals as ``ref``."""
    if pad is not None:
        return pad_to(x, pad)
    exp = ref.as_tuple().exponent
    return pad_to(x, max(0, -exp) if isinstance(exp, int) else 0)


def empty(venue: str, symbol: str, interval: str, open_time: int, price: Decimal,
          zero: Decimal) -> Candle:
    """A candle without trades (REST shows the forming candle even before its first trade):
    all prices at the previous close, volumes zero."""
    return Candle.of(venue, symbol, interval, open_time, close_time(open_time, interval), price,
                  price, price, price, zero, zero, 0, zero, zero, -1, -1, False)
