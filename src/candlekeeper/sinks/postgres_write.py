"""Telling a PostgreSQL *data* error from an *outage*, and isolating the rows behind a data error.

Policy (``docs/storage.md``): a batch that fails because of the data of some rows — SQLSTATE
class 22 (data exception: a value out of range, bad text) or 23 (integrity constraint: a CHECK
or unique index someone added), or a value the client cannot even encode — is redone inside
one transaction, halving the failing part under savepoints until each bad row stands alone.
Those rows are rejected; the others are stored. One bad row in 10,000 costs about 30 extra
statements, not 10,000. Every other failure (connection lost, server shutting down, disk full,
permission denied, timeout) is an outage: it propagates, nothing is rejected, the writer keeps
the batch and retries it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.sinks.contract import Rejection
from candlekeeper.sinks.sqlite_schema import candle_to_row

__all__ = ["is_data_error", "isolate", "prevalidate", "reason_of", "rounds"]

_MAX_TIME = 2**63 - 1
_astuple = msgspec.structs.astuple


def is_data_error(exc: BaseException) -> bool:
    """The server refused the rows' data (SQLSTATE class 22 or 23), or the client could not
    encode a value (asyncpg raises a ``ValueError``/``TypeError``/``OverflowError`` subclass)."""
    if isinstance(exc, asyncpg.PostgresError):
        return (exc.sqlstate or "")[:2] in ("22", "23")
    return isinstance(exc, TypeError | ValueError | OverflowError)


def reason_of(exc: BaseException) -> str:
    """The server's message (without its DETAIL, which repeats the whole row) or the client's."""
    message = getattr(exc, "message", None) or str(exc)
    state = getattr(exc, "sqlstate", None)
    return f"{message} (SQLSTATE {state})" if state else f"{type(exc).__name__}: {message}"


def prevalidate(candles: Sequence[Candle]) -> tuple[list[Candle], list[Rejection]]:
    """Split off candles that are malformed on their own (wrong types, not decimal text, times
    out of range) with the SQLite row validators, which say precisely what is wrong."""
    good: list[Candle] = []
    bad: list[Rejection] = []
    for c in candles:
        try:
            candle_to_row(c, 0)
            if not 0 <= c.open_time <= _MAX_TIME or not 0 <= c.close_time <= _MAX_TIME:
                raise ValueError("open/close time out of range")
        except (TypeError, ValueError, AttributeError) as exc:
            bad.append(Rejection.of(c, exc))
        else:
            good.append(c)
    return good, bad


def rounds(candles: Sequence[Candle]) -> list[list[tuple[Any, ...]]]:
    """Rows split so that no round repeats a key; round n holds each key's n-th candle (one
    ``INSERT … ON CONFLICT`` cannot touch a row twice)."""
    seen: dict[tuple[str, str, str, int], int] = {}
    out: list[list[tuple[Any, ...]]] = [[]]
    for c in candles:
        k = (c.venue, c.symbol, c.interval, c.open_time)
        i = seen.get(k, -1) + 1
        seen[k] = i
        if i == len(out):
            out.append([])
        out[i].append(_astuple(c))
    return out


async def isolate(conn: Any, candles: Sequence[Candle],
                  upsert: Callable[[Any, Sequence[Candle]], Awaitable[int]],
                  rejected: list[Rejection]) -> int:
    """Upsert ``candles`` in one transaction, rejecting (appending to ``rejected``) exactly the
    rows whose data the server refuses; returns the rows changed. Order is kept: the halves run
    left then right, so a key repeated in the batch is still applied in order. A failure that is
    not a data error propagates (the transaction is rolled back; nothing is rejected)."""
    found: list[Rejection] = []
    async with conn.transaction():
        changed = await _bisect(conn, candles, upsert, found)
    rejected.extend(found)
    return changed


async def _bisect(conn: Any, candles: Sequence[Candle],
                  upsert: Callable[[Any, Sequence[Candle]], Awaitable[int]],
                  found: list[Rejection]) -> int:
    try:
        async with conn.transaction():  # a savepoint
            return await upsert(conn, candles)
    except Exception as exc:
        if not is_data_error(exc):
            raise
        if len(candles) == 1:
            found.append(Rejection.of(candles[0], reason_of(exc)))
            return 0
    mid = len(candles) // 2
    return (await _bisect(conn, candles[:mid], upsert, found)
            + await _bisect(conn, candles[mid:], upsert, found))
