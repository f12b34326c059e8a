"""How a process spends a venue's REST budget: the library's and the service config's
``rest:`` section (one definition, like ``transport:`` and ``gap_fill:``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from candlekeeper.config_checks import check_dir_path
from candlekeeper.core.options import Options

__all__ = ["RestOptions"]


class RestOptions(Options):
    """Options of every :class:`RestClient` a feed, the service or ``backfill`` creates."""

    #: share each venue's REST weight budget with the other candlekeeper processes of this
    #: host that use the same venue endpoint (``--shard K/N`` instances, a ``backfill`` next to
    #: the service): the venue counts per IP, not per process (``backfill/ledger.py``)
    shared_budget: bool = True
    #: the folder of those shared ledgers (created 0700; it must be this user's alone).
    #: None: ``$XDG_RUNTIME_DIR/candlekeeper``, else ``<tmp>/candlekeeper-<uid>``. Processes
    #: share a budget only if they use the same folder.
    ledger_dir: Path | None = None

    @field_validator("ledger_dir")
    @classmethod
    def _dir(cls, value: Path | None) -> Path | None:
        return None if value is None else check_dir_path(value, what="rest.ledger_dir")
