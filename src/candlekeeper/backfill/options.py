"""How a process spends a venue's REST budget: the library's and the service config's
``rest:`` section (one definition, like ``transport:`` and ``gap_fill:``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from candlekeeper.config_checks import check_dir_path
from candlekeeper.core.options import Options

__all__ = ["DEFAULT_HEADROOM", "RestOptions"]

#: the default of ``rest.headroom`` (see there)
DEFAULT_HEADROOM = 0.95


class RestOptions(Options):
    """Options of every :class:`RestClient` a feed, the service or ``backfill`` creates."""

    #: share each venue's REST weight budget with the other candlekeeper processes of this
    #: host that use the same venue endpoint (``--shard K/N`` instances, a ``backfill`` next to
    #: the service): the venue counts per IP, not per process (``backfill/ledger.py``)
    shared_budget: bool = True
    #: the share of the venue's published weight limit this host spends. The budget never
    #: grants more than that in *any* sliding window (``WeightBudget``), whatever the venue's
    #: own window alignment, so the margin only has to cover the network: a request granted
    #: just before a window's edge and counted just after it. 5 % of a minute is 3 s of
    #: such jitter; 0.9 (the figure before) made a universe warm-up 11 % slower than the budget
    headroom: float = Field(default=DEFAULT_HEADROOM, gt=0, le=1)
    #: the folder of those shared ledgers (created 0700; it must be this user's alone).
    #: None: ``$XDG_RUNTIME_DIR/candlekeeper``, else ``<tmp>/candlekeeper-<uid>``. Processes
    #: share a budget only if they use the same folder.
    ledger_dir: Path | None = None

    @field_validator("ledger_dir")
    @classmethod
    def _dir(cls, value: Path | None) -> Path | None:
        return None if value is None else check_dir_path(value, what="rest.ledger_dir")
