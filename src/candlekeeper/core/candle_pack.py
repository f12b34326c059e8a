"""Packed rows for the ring buffers: a buffered candle in ~120 bytes instead of ~1,000 as objects.

Why: at a venue's whole universe (500 symbols x 15 intervals x 500 buffered candles = 3.75 M
candles) a ``Candle`` with its own 8 ``str`` and 6 ``int`` objects cost ~1,000 bytes each
(``benchmarks/buffer.py``), most of the service's RSS (issue 12). A buffered candle is read
rarely and whole windows at a time, so the buffer keeps it in a form that costs little and
decodes in bulk:

* the stream's venue, symbol and interval once per buffer (the caller's ``key``);
* open time in one ``array('q')``, the five other integers (:data:`INTS`) row by row in
  another, :data:`NONE` for ``None``;
* ``closed``, ``source`` and the type (``Candle`` or ``CorrectedCandle``) in one flag byte;
* the eight decimal texts joined as ``"o,h,l,c,v,qv,tbb,tbq,"`` (``""`` = ``None``) and packed
  two characters a byte (the alphabet ``0-9 . - ,`` fits in a nibble). Decoding a whole window
  is then a few C calls: ``hexlify`` -> ``translate`` -> ``decode`` -> ``split``.

Exactness is the rule, compactness the optimisation: any candle the packing cannot round-trip
exactly (another stream's key, a text outside the alphabet, an integer outside int64, an unknown
subclass, ...) is not packed at all (:func:`pack` returns ``None``) and the buffer keeps that
candle as the object itself.
"""

from __future__ import annotations

import binascii
from array import array
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from candlekeeper.core.candle import Candle, CorrectedCandle

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: the int64 that stands for ``None`` in the integer columns (a real value equal to it is not
#: packed: the candle stays an object)
NONE: Final = -(1 << 63)
_MAX: Final = 1 << 63
#: integer columns per row besides open time: close_time, trades, first/last trade id, event_time
INTS: Final = 5
#: decimal texts per row (see the module docstring for the order)
TEXTS: Final = 8
CLOSED, REST, CORRECTED = 1, 2, 4


def _tables() -> tuple[bytes, bytes]:
    # text -> hex digits: '0'-'9' stay, '.' 'a', '-' 'b', ',' 'c'; every other byte becomes 'x',
    # which unhexlify refuses (so 'e', ' ' or '+' in a text never slips through)
    enc = bytearray(b"x" * 256)
    for ch in b"0123456789":
        enc[ch] = ch
    dec = bytearray(range(256))
    for text_ch, hex_ch in ((b".", b"a"), (b"-", b"b"), (b",", b"c")):
        enc[text_ch[0]] = hex_ch[0]
        dec[hex_ch[0]] = text_ch[0]
    return bytes(enc), bytes(dec)


_ENC, _DEC = _tables()
#: flag byte -> (closed, source, type), so decoding a row does one lookup, no branches
_FLAGS: Final = tuple(
    (bool(f & CLOSED), "rest" if f & REST else "ws", CorrectedCandle if f & CORRECTED else Candle)
    for f in range(8))


def key_of(candle: Candle) -> tuple[str, str, str] | None:
    """The stream part a buffer stores once, or ``None`` when it is not plain text."""
    key = (candle.venue, candle.symbol, candle.interval)
    return key if all(type(k) is str for k in key) else None


def pack(c: Candle, key: tuple[str, str, str]) -> tuple[bytes, tuple[int, ...], int] | None:
    """``(texts, ints, flags)`` of a candle of stream ``key``, or ``None`` when it cannot be
    packed exactly (the buffer then keeps the object). The checks are written out inline: this
    runs for every buffered candle (3.75 M of them at a universe's warm-up)."""
    kind = type(c)
    if kind is not Candle and kind is not CorrectedCandle:
        return None
    source = c.source
    if (c.venue, c.symbol, c.interval) != key or type(c.closed) is not bool \
            or type(source) is not str or (source != "ws" and source != "rest"):
        return None
    o, h, lo, cl, v = c.open_str, c.high_str, c.low_str, c.close_str, c.volume_str
    qv, tbb, tbq = c.quote_volume_str, c.taker_buy_base_volume_str, c.taker_buy_quote_volume_str
    t, ct, n, first, last, event = (c.open_time, c.close_time, c.trades, c.first_trade_id,
                                    c.last_trade_id, c.event_time)
    if not (type(o) is str and type(h) is str and type(lo) is str and type(cl) is str
            and type(v) is str and (qv is None or type(qv) is str)
            and (tbb is None or type(tbb) is str) and (tbq is None or type(tbq) is str)
            and type(t) is int and NONE < t < _MAX and type(ct) is int and NONE < ct < _MAX
            and (n is None or (type(n) is int and NONE < n < _MAX))
            and (first is None or (type(first) is int and NONE < first < _MAX))
            and (last is None or (type(last) is int and NONE < last < _MAX))
            and (event is None or (type(event) is int and NONE < event < _MAX))):
        return None
    fields = (o, h, lo, cl, v, qv or "", tbb or "", tbq or "", "")
    if "" in fields[:8] and "" in (o, h, lo, cl, v, qv, tbb, tbq):
        return None  # "" stands for None: an empty text cannot be told from it
    line = ",".join(fields)
    if line.count(",") != TEXTS:  # a ',' inside a text would shift the columns
        return None
    try:
        hexed = line.encode("ascii").translate(_ENC)
        packed = binascii.unhexlify(hexed + b"f" if len(hexed) & 1 else hexed)
    except (UnicodeEncodeError, binascii.Error):
        return None
    flags = (CLOSED if c.closed else 0) | (REST if source == "rest" else 0) \
        | (CORRECTED if kind is CorrectedCandle else 0)
    return packed, (ct, NONE if n is None else n, NONE if first is None else first,
                    NONE if last is None else last, NONE if event is None else event), flags


def texts(packed: bytes | bytearray) -> list[str]:
    """The decimal texts of consecutive packed rows, flat: row r's field k is ``[r * 8 + k]``."""
    flat = binascii.hexlify(packed).translate(_DEC, b"f").decode("ascii").split(",")
    flat.pop()  # every row ends with ',': the split leaves one "" after the last
    return flat


def unpack(key: tuple[str, str, str], times: Sequence[int], ints: Sequence[int], flags: bytes,
           flat: list[str]) -> list[Candle]:
    """Candles of consecutive packed rows: ``ints`` has :data:`INTS` per row, ``flat`` comes
    from :func:`texts`."""
    venue, symbol, interval = key
    out: list[Candle] = []
    add = out.append
    nil = NONE
    for (t, ct, n, first, last, event, flag, o, h, lo, c, v, qv, tbb, tbq) in zip(
            times, ints[0::5], ints[1::5], ints[2::5], ints[3::5], ints[4::5], flags,
            flat[0::8], flat[1::8], flat[2::8], flat[3::8], flat[4::8], flat[5::8], flat[6::8],
            flat[7::8], strict=True):
        closed, source, cls = _FLAGS[flag]
        add(cls(venue, symbol, interval, t, ct, o, h, lo, c, v, qv or None,
                None if n == nil else n, tbb or None, tbq or None,
                None if first == nil else first, None if last == nil else last, closed,
                None if event == nil else event, source))
    return out


def packed_frame(times: array[int], ints: array[int], flat: list[str]) -> pd.DataFrame:
    """The DataFrame of :func:`frame` straight from packed columns (no ``Candle``, no dict per
    row, numpy arrays where ``to_dataframe``'s inference gives the same dtype): what
    ``RingBuffer.latest_df`` returns."""
    _pandas()
    import numpy as np

    rows = np.frombuffer(ints, dtype=np.int64).reshape(-1, INTS)

    def integers(k: int) -> Any:
        column = np.ascontiguousarray(rows[:, k])
        if (column == NONE).any():  # let pandas see None, as to_dataframe's lists show it
            return [None if x == NONE else x for x in column.tolist()]
        return column

    def decimals(k: int) -> Any:
        column = flat[k::TEXTS]
        if "" in column:
            return [Decimal(x) if x else None for x in column]
        return np.fromiter(map(Decimal, column), dtype=object, count=len(column))

    return frame({
        "open_time": np.frombuffer(times, dtype=np.int64),
        "open": decimals(0), "high": decimals(1), "low": decimals(2), "close": decimals(3),
        "volume": decimals(4), "close_time": integers(0), "quote_volume": decimals(5),
        "trades": integers(1), "taker_buy_base_volume": decimals(6),
        "taker_buy_quote_volume": decimals(7),
    })


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("pandas is optional: pip install 'candlekeeper[pandas]'") from exc
    return pd


def frame(columns: dict[str, Any]) -> pd.DataFrame:
    """Columns as the DataFrame ``to_dataframe`` has always returned: indexed by open time
    (UTC, named ``time``), Decimals exact in object columns; no columns at all when empty."""
    pd = _pandas()
    if not len(columns["open_time"]):
        return pd.DataFrame([])
    result = pd.DataFrame(columns)
    result.index = pd.to_datetime(result["open_time"], unit="ms", utc=True)
    result.index.name = "time"
    return result
