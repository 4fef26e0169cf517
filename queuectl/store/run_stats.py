"""What every backend counts about finished runs: the duration buckets and how long
per-minute figures are kept. Shared by the schemas and the Insights implementations."""

from __future__ import annotations

# Upper bounds of the duration buckets in microseconds, plus one bucket above them:
# percentiles for `stats`, the histogram for /metrics. Stored bucket numbers refer to
# them, so changing them needs a migration in every backend.
DURATION_BOUNDS_US = (
    *(1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000),
    *(1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000, 120_000_000),
    *(300_000_000, 600_000_000, 1_800_000_000, 3_600_000_000, 7_200_000_000, 21_600_000_000),
)
DURATION_BOUNDS_SECONDS = tuple(bound / 1_000_000 for bound in DURATION_BOUNDS_US)

# Per-minute rows older than this are dropped: `stats --since` reaches back this far.
STATS_RETENTION_MINUTES = 7 * 24 * 60
