"""Choosing the PostgreSQL layout: a TimescaleDB hypertable when the server can run one, native
monthly partitions otherwise (the policy is in ``docs/storage.md``).

Why this needs care: TimescaleDB's library must be loaded at server start
(``shared_preload_libraries``). When it is installed but not preloaded — the most common
TimescaleDB misconfiguration — ``pg_available_extensions`` lists it, yet ``CREATE EXTENSION``
(and any later call into the library) ends the session with ``FATAL: extension "timescaledb"
must be preloaded``. The connection is then gone, so trying the extension inside the migration
transaction and rolling back to a savepoint cannot work. Hence:

1. read ``shared_preload_libraries`` (visible to superusers and ``pg_read_all_settings``): if it
   does not list ``timescaledb``, the extension is not tried at all;
2. otherwise (listed, or not visible to this role) ``CREATE EXTENSION`` runs on its own, outside
   any transaction, and every statement that calls into TimescaleDB is watched: a server error
   there raises :class:`TimescaleUnusable`, and ``PostgresSink.open`` redoes the migration on a
   fresh connection with native partitions (``auto``) or fails with one clear line
   (``layout="timescaledb"``).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import asyncpg

from candlekeeper.observability.redact import one_line

__all__ = ["NOT_PRELOADED", "TimescaleUnusable", "preload_state", "timescaledb_available",
           "unusable_reason"]

#: what to tell an operator whose server has TimescaleDB installed but not preloaded
NOT_PRELOADED = ("TimescaleDB is installed on the server but not preloaded: add "
                 "shared_preload_libraries = 'timescaledb' to postgresql.conf and restart "
                 "PostgreSQL")


class _Conn(Protocol):
    async def fetchval(self, query: str, *args: Any) -> Any: ...


class TimescaleUnusable(Exception):
    """TimescaleDB cannot be used on this server; ``reason`` says why, in one line.
    ``session_at_risk``: a statement failed, and the server may be ending the session."""

    def __init__(self, reason: str, *, session_at_risk: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.session_at_risk = session_at_risk


def unusable_reason(exc: BaseException) -> str:
    """One line for a failure of a TimescaleDB statement (``CREATE EXTENSION``,
    ``create_hypertable``...)."""
    message = str(getattr(exc, "message", None) or exc)
    if "must be preloaded" in message:
        return NOT_PRELOADED
    return f"TimescaleDB cannot be enabled: {one_line(message)}"


async def timescaledb_available(conn: _Conn) -> bool:
    """The extension is installed on the server (it may still be unusable)."""
    return bool(await conn.fetchval(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"))


async def preload_state(conn: _Conn) -> bool | None:
    """Whether ``shared_preload_libraries`` lists TimescaleDB; None when this role may not read
    the setting (it then takes superuser or ``pg_read_all_settings``).

    Runs outside any transaction: the permission error must not abort one.
    """
    try:
        setting = await conn.fetchval("SELECT current_setting('shared_preload_libraries')")
    except asyncpg.InsufficientPrivilegeError:
        return None
    return "timescaledb" in _libraries(str(setting or ""))


def _libraries(setting: str) -> set[str]:
    """Library names in a ``shared_preload_libraries`` value: ``'timescaledb', pg_stat_statements``
    or ``$libdir/timescaledb.so`` all give ``timescaledb``."""
    names = set()
    for item in setting.split(","):
        name = item.strip().strip('"').strip("'").rsplit("/", 1)[-1]
        names.add(re.sub(r"\.(so|dylib|dll)$", "", name).lower())
    return names
