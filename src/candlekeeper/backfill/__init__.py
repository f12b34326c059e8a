"""REST history: the HTTP client with the venue's rate-limit budget (backfill comes next)."""
