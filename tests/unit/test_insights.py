"""The arithmetic of insights: percentiles from buckets, totals by result, zero-filled minutes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from queuectl.domain import JobState
from queuectl.errors import InvalidInput
from queuectl.store.insights import (
    COMPLETED,
    DEAD,
    RETRIED,
    BucketRow,
    DurationHistogram,
    build_stats,
    parse_window,
    summarize,
)

BOUNDS = (0.01, 0.1, 1.0)
NOW = datetime(2026, 11, 28, 12, 30, 15, tzinfo=timezone.utc)


def histogram(*counts: int, total: float = 0.0) -> DurationHistogram:
    return DurationHistogram(BOUNDS, counts, total)


def test_quantiles_interpolate_inside_the_bucket() -> None:
    h = histogram(0, 10, 0, 0)  # ten runs between 10 ms and 100 ms
    assert h.quantile(0.5) == pytest.approx(0.055)
    assert h.quantile(0.95) == pytest.approx(0.0955)
    assert h.quantile(0.5, maximum=0.03) == 0.03  # never above the largest seen


def test_quantiles_across_buckets_and_above_every_bound() -> None:
    h = histogram(90, 0, 5, 5)
    assert h.quantile(0.5) == pytest.approx(0.01 * 50 / 90)
    assert h.quantile(0.95, maximum=7.5) == pytest.approx(0.1 + 0.9 * 5 / 5)
    assert h.quantile(0.99, maximum=7.5) == 7.5  # in the open bucket: the maximum
    assert histogram(0, 0, 0, 0).quantile(0.5) is None


def test_cumulative_counts_end_with_infinity() -> None:
    assert histogram(1, 2, 0, 3).cumulative() == [
        (0.01, 1),
        (0.1, 3),
        (1.0, 3),
        (float("inf"), 6),
    ]


def test_summarize_by_result() -> None:
    totals = summarize(
        [
            BucketRow(COMPLETED, 0, 5, 0.02, 0.008),
            BucketRow(COMPLETED, 2, 1, 0.5, 0.5),
            BucketRow(RETRIED, 1, 2, 0.1, 0.06),
            BucketRow(DEAD, 3, 1, 9.0, 9.0),
        ],
        BOUNDS,
    )
    assert (totals.completed, totals.failed, totals.retries, totals.dead_lettered) == (6, 3, 2, 1)
    assert totals.durations.counts == (5, 2, 1, 1)
    assert totals.durations.sum_seconds == pytest.approx(9.62)
    assert totals.duration_max == 9.0
    assert totals.success_rate == pytest.approx(6 / 9)


def test_build_stats_fills_every_minute_of_the_window() -> None:
    since = NOW - timedelta(minutes=5)
    first = int(since.timestamp() // 60)
    stats = build_stats(
        since=since,
        until=NOW,
        counts=dict.fromkeys(JobState, 1),
        oldest_pending_age=3.5,
        bounds=BOUNDS,
        minute_rows=[(first, 4, 0), (first + 2, 0, 2)],
        worker_rows=[("w-b", 1, 0), ("w-a", 3, 1)],
        bucket_rows=[BucketRow(COMPLETED, 0, 4, 0.01, 0.005)],
    )
    assert len(stats.per_minute) == 6
    assert stats.per_minute[0].minute == datetime(2026, 11, 28, 12, 25, tzinfo=timezone.utc)
    assert [(m.completed, m.failed) for m in stats.per_minute] == [
        (4, 0),
        (0, 0),
        (0, 2),
        (0, 0),
        (0, 0),
        (0, 0),
    ]
    assert [(w.worker_id, w.completed, w.failed) for w in stats.per_worker] == [
        ("w-a", 3, 1),
        ("w-b", 1, 0),
    ]
    document = stats.to_json()
    assert document["jobs"]["total"] == 5
    assert document["window_seconds"] == 300
    assert document["per_minute"][0]["minute"] == "2026-11-28T12:25:00.000000Z"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("15m", 900), ("1h", 3600), ("7d", 604800)]
)
def test_windows(text: str, seconds: float) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["0", "8d", "1y", "-1h", ""])
def test_bad_windows(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_window(text)
