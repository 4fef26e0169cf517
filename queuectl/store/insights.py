"""The read-only insights interface: statistics over a window, all-time totals, job search.

Split from the Store interface (base.py) by who uses it: `queuectl stats`, the
dashboard and /metrics read through it; workers never do. A backend keeps
these numbers in aggregates maintained in the very transaction that records a
run's outcome, so reading them costs the same with 10 jobs as with 1,000,000,
and the totals never go backwards, even when jobs are purged.

The value types and the arithmetic (percentiles, success rate, zero-filled
minutes) live here, shared by every backend: a backend only returns rows of
counts by minute, by worker and by (result, duration bucket), and `build_stats`
and `summarize` do the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol, runtime_checkable

from queuectl.domain import Job, JobState
from queuectl.store.base import Store
from queuectl.store.run_stats import STATS_RETENTION_MINUTES
from queuectl.timeutil import EPOCH, format_timestamp

# Per-minute figures are kept this long; `stats --since` cannot reach further back.
STATS_RETENTION = timedelta(minutes=STATS_RETENTION_MINUTES)


class DurationHistogram(NamedTuple):
    """Run durations in buckets: `counts[i]` runs took at most `bounds[i]` seconds (and more
    than the bound before); the last count is for runs longer than every bound."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]  # len(bounds) + 1, not cumulative
    sum_seconds: float

    @property
    def total(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, runs at most that long), ending with (inf, every run): Prometheus' form."""
        running = 0
        out = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out

    def quantile(self, q: float, maximum: float | None = None) -> float | None:
        """The q-quantile, interpolated linearly inside its bucket (as Prometheus'
        histogram_quantile does); never above `maximum`, the largest duration seen."""
        total = self.total
        if total == 0:
            return None
        rank = q * total
        running = 0
        lower = 0.0
        for index, count in enumerate(self.counts):
            if count and running + count >= rank:
                if index == len(self.bounds):  # above every bound: only the maximum is known
                    return maximum if maximum is not None else lower
                upper = self.bounds[index]
                value = lower + (upper - lower) * max(rank - running, 0) / count
                return min(value, maximum) if maximum is not None else value
            running += count
            if index < len(self.bounds):
                lower = self.bounds[index]
        return maximum


# How a finished run ended, as the backends count it.
COMPLETED = "completed"  # succeeded: its job is completed
RETRIED = "retried"  # failed, and its job was scheduled to run again
DEAD = "dead"  # failed, and its job went to the DLQ


class BucketRow(NamedTuple):
    """Runs with one result whose duration fell in one bucket (a backend's raw figures)."""

    result: str  # COMPLETED, RETRIED or DEAD
    bucket: int  # index into the bounds; len(bounds) = above every bound
    n: int
    duration_sum: float  # seconds
    duration_max: float  # seconds


def bucket_rows_from_micros(rows: Iterable[Sequence[Any]]) -> list[BucketRow]:
    """Both stores keep durations in microseconds: (result, bucket, n, sum, max, ...)."""
    return [BucketRow(row[0], row[1], row[2], row[3] / 1e6, row[4] / 1e6) for row in rows]


class RunTotals(NamedTuple):
    """Finished runs by result, with their durations. All-time totals never decrease
    (purging keeps them); the same type describes the runs of a window."""

    completed: int  # runs that completed their job
    failed: int  # failed runs (exit != 0, signal, timeout, interrupted, worker lost)
    retries: int  # failed runs after which the job was scheduled to run again
    dead_lettered: int  # failed runs that moved their job to the DLQ
    durations: DurationHistogram  # every finished run, successful or not
    duration_max: float | None  # seconds; None before the first run

    @property
    def success_rate(self) -> float | None:
        """Share of the finished runs that succeeded."""
        finished = self.completed + self.failed
        return self.completed / finished if finished else None


def summarize(rows: Iterable[BucketRow], bounds: Sequence[float]) -> RunTotals:
    """Fold a backend's (result, bucket) rows into RunTotals."""
    by_result = {COMPLETED: 0, RETRIED: 0, DEAD: 0}
    counts = [0] * (len(bounds) + 1)
    total_seconds = 0.0
    longest: float | None = None
    for row in rows:
        if row.n <= 0:
            continue
        by_result[row.result] = by_result.get(row.result, 0) + row.n
        counts[min(max(row.bucket, 0), len(bounds))] += row.n
        total_seconds += row.duration_sum
        longest = row.duration_max if longest is None else max(longest, row.duration_max)
    return RunTotals(
        completed=by_result[COMPLETED],
        failed=by_result[RETRIED] + by_result[DEAD],
        retries=by_result[RETRIED],
        dead_lettered=by_result[DEAD],
        durations=DurationHistogram(tuple(bounds), tuple(counts), total_seconds),
        duration_max=longest,
    )


class MinuteCounts(NamedTuple):
    minute: datetime
    completed: int
    failed: int


class WorkerCounts(NamedTuple):
    worker_id: str
    completed: int
    failed: int


class QueueStats(NamedTuple):
    """The queue now (counts, DLQ, oldest waiting job) and its runs over a window."""

    since: datetime
    until: datetime
    counts: dict[JobState, int]
    oldest_pending_age: float | None  # seconds; None when no job waits to run
    runs: RunTotals  # the runs that ended in the window
    per_minute: list[MinuteCounts]  # every minute of the window, oldest first
    per_worker: list[WorkerCounts]  # most completed first

    @property
    def dlq_size(self) -> int:
        return self.counts[JobState.DEAD]

    def duration_summary(self) -> dict[str, float | None]:
        """p50, p95 (estimated from the buckets), max and mean in seconds; None without runs."""
        durations, longest = self.runs.durations, self.runs.duration_max
        total = durations.total
        return {
            "p50": durations.quantile(0.5, longest),
            "p95": durations.quantile(0.95, longest),
            "max": longest,
            "mean": durations.sum_seconds / total if total else None,
        }

    def to_json(self) -> dict[str, Any]:
        jobs: dict[str, int] = {state.value: self.counts[state] for state in JobState}
        jobs["total"] = sum(self.counts.values())
        return {
            "since": format_timestamp(self.since),
            "until": format_timestamp(self.until),
            "window_seconds": _number((self.until - self.since).total_seconds()),
            "jobs": jobs,
            "dlq_size": self.dlq_size,
            "oldest_pending_age": self.oldest_pending_age,
            "runs": {
                "completed": self.runs.completed,
                "failed": self.runs.failed,
                "retries": self.runs.retries,
                "dead_lettered": self.runs.dead_lettered,
                "success_rate": self.runs.success_rate,
            },
            "duration": self.duration_summary(),
            "per_minute": [
                {"minute": format_timestamp(m.minute), "completed": m.completed, "failed": m.failed}
                for m in self.per_minute
            ],
            "workers": [
                {"worker_id": w.worker_id, "completed": w.completed, "failed": w.failed}
                for w in self.per_worker
            ],
        }


class JobPage(NamedTuple):
    """One page of a job search, newest first."""

    jobs: list[Job]
    total: int  # jobs matching in all (a lower bound when total_exact is False)
    total_exact: bool
    offset: int
    limit: int


@runtime_checkable
class Insights(Protocol):
    """Read-only figures for people and monitoring. Methods raise queuectl.errors types only."""

    def stats(self, window_seconds: float) -> QueueStats:
        """Counts now, and the runs that finished in the last `window_seconds` (to the minute).

        At most STATS_RETENTION back. Never scans the jobs or runs.
        """
        ...

    def run_totals(self) -> RunTotals:
        """All-time counters for /metrics: they never decrease."""
        ...

    def oldest_pending_age(self) -> float | None:
        """Seconds the longest-waiting runnable job (pending, or failed and due for its
        retry) has waited since it became runnable; None when nothing waits."""
        ...

    def search_jobs(
        self,
        state: JobState | None = None,
        text: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> JobPage:
        """Jobs newest first, optionally in one state and whose id or command contains
        `text` (ASCII case-insensitive). Without `text` the total comes from the
        maintained counts; with it, counting stops at SEARCH_COUNT_LIMIT matches."""
        ...


class InsightsStore(Store, Insights, Protocol):
    """A store that also offers insights: what the dashboard needs."""


# A search counts its matches up to here, so a common word stays cheap on 1,000,000 jobs.
SEARCH_COUNT_LIMIT = 10_000


def with_insights(store: Store) -> InsightsStore:
    """The store, if its backend implements Insights; else OperationFailed saying so."""
    if isinstance(store, Insights):
        return store
    from queuectl.errors import OperationFailed

    raise OperationFailed(
        f"statistics are not available for this database backend yet ({type(store).__name__})"
    )


def check_window(window_seconds: float) -> None:
    """InvalidInput unless 0 < window <= STATS_RETENTION."""
    if not 0 < window_seconds <= STATS_RETENTION.total_seconds():
        from queuectl.errors import InvalidInput

        raise InvalidInput(
            f"the window must be more than 0 and at most {STATS_RETENTION.days}d "
            "(per-minute figures are kept that long)"
        )


def parse_window(text: str) -> float:
    """'90s', '15m', '1h', '7d' (or bare seconds) into seconds; InvalidInput otherwise."""
    from queuectl.timeutil import parse_duration

    seconds = parse_duration(text)
    check_window(seconds)
    return seconds


def minute_start(minute: int) -> datetime:
    return EPOCH + timedelta(minutes=minute)


def build_stats(
    *,
    since: datetime,
    until: datetime,
    counts: dict[JobState, int],
    oldest_pending_age: float | None,
    bounds: Sequence[float],
    minute_rows: Iterable[tuple[int, int, int]],
    worker_rows: Iterable[tuple[str, int, int]],
    bucket_rows: Iterable[BucketRow],
) -> QueueStats:
    """Fold a backend's figures for the window into QueueStats.

    `minute_rows` are (minute since the epoch, completed, failed), `worker_rows`
    (worker id, completed, failed), `bucket_rows` the window's (result, bucket) sums.
    Minutes without runs are filled with zeros.
    """
    first, last = _minute_of(since), _minute_of(until)
    per_minute = {minute: (0, 0) for minute in range(first, last + 1)}
    for minute, completed, failed in minute_rows:
        if minute in per_minute:
            per_minute[minute] = (completed, failed)
    return QueueStats(
        since=since,
        until=until,
        counts=counts,
        oldest_pending_age=oldest_pending_age,
        runs=summarize(bucket_rows, bounds),
        per_minute=[MinuteCounts(minute_start(m), c, f) for m, (c, f) in per_minute.items()],
        per_worker=sorted(
            (WorkerCounts(w, c, f) for w, c, f in worker_rows),
            key=lambda w: (-w.completed, -w.failed, w.worker_id),
        ),
    )


def _minute_of(moment: datetime) -> int:
    return int((moment - EPOCH).total_seconds() // 60)


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
