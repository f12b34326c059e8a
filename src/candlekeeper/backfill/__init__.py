"""REST history: the rate-limited HTTP client, the pure planner and the kline fetcher.

``KlineFetcher`` is what the feed (gap repair, warm-up, late-close confirmation) and the
``backfill``/``gaps`` commands call; ``RestClient`` is the one per-venue client whose
``WeightBudget`` every REST caller shares.
"""

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
