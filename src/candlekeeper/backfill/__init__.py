"""History: the rate-limited HTTP client, the pure planner, the kline fetcher and the public
archive's filler.

``KlineFetcher`` is what the feed (gap repair, warm-up, late-close confirmation) and the
``backfill``/``gaps`` commands call; ``RestClient`` is the one per-venue client whose
``WeightBudget`` every REST caller shares.
"""

from candlekeeper.backfill.archive import ArchiveFiller, ArchiveStats
from candlekeeper.backfill.fetcher import FetchStats, KlineFetcher
from candlekeeper.backfill.http import RestClient, WeightBudget
from candlekeeper.backfill.planner import (
    count_open_times,
    missing_ranges,
    optimal_limit,
    pages,
    plan_cost,
)

__all__ = [
    "ArchiveFiller",
    "ArchiveStats",
    "FetchStats",
    "KlineFetcher",
    "RestClient",
    "WeightBudget",
    "count_open_times",
    "missing_ranges",
    "optimal_limit",
    "pages",
    "plan_cost",
]
