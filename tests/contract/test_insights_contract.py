"""The insights contract (statistics, totals, job search), against the `store` fixture only.

Every backend implements queuectl.store.insights.Insights and runs this file
unchanged; a backend without it fails here rather than being skipped.
"""

from __future__ import annotations

import pytest

from queuectl.domain import JobState
from queuectl.errors import InvalidInput
from queuectl.store import Store
from queuectl.store.insights import InsightsStore, with_insights
from tests.helpers import SUCCESS, fail, new_job, wait_until, worker_info


@pytest.fixture
def insights(store: Store) -> InsightsStore:
    found = with_insights(store)  # every backend implements it: OperationFailed otherwise
    found.register_worker(worker_info("w-1"))
    found.register_worker(worker_info("w-2"))
    return found


def run_one(store: InsightsStore, worker: str, *, succeed: bool) -> str:
    claim = wait_until(lambda: store.claim(worker), timeout=5, what="a claim")
    assert store.finish(claim, SUCCESS if succeed else fail()).recorded
    return claim.job.id


def test_an_empty_queue(insights: InsightsStore) -> None:
    stats = insights.stats(3600)
    assert sum(stats.counts.values()) == 0
    assert stats.runs.completed == stats.runs.failed == 0
    assert stats.runs.success_rate is None
    assert stats.duration_summary() == {"p50": None, "p95": None, "max": None, "mean": None}
    assert stats.oldest_pending_age is None
    assert stats.per_worker == []
    assert 60 <= len(stats.per_minute) <= 61
    assert all(m.completed == m.failed == 0 for m in stats.per_minute)
    totals = insights.run_totals()
    assert (totals.completed, totals.failed, totals.durations.total) == (0, 0, 0)


def test_runs_are_counted_by_result_worker_and_minute(insights: InsightsStore) -> None:
    insights.set_config("backoff_max", "0.05")
    insights.enqueue([new_job("ok-1"), new_job("ok-2"), new_job("flaky", max_retries=2)])
    insights.enqueue([new_job("doomed", max_retries=1)])
    assert run_one(insights, "w-1", succeed=True) == "ok-1"
    assert run_one(insights, "w-2", succeed=True) == "ok-2"
    assert run_one(insights, "w-1", succeed=False) == "flaky"  # retried
    assert run_one(insights, "w-2", succeed=False) == "doomed"  # its one run: into the DLQ
    assert run_one(insights, "w-1", succeed=False) == "flaky"  # second run: dead too

    stats = insights.stats(600)
    assert (stats.runs.completed, stats.runs.failed) == (2, 3)
    assert (stats.runs.retries, stats.runs.dead_lettered) == (1, 2)
    assert stats.runs.success_rate == pytest.approx(2 / 5)
    assert stats.counts[JobState.COMPLETED] == 2
    assert stats.dlq_size == 2
    assert sum(m.completed for m in stats.per_minute) == 2
    assert sum(m.failed for m in stats.per_minute) == 3
    workers = {w.worker_id: (w.completed, w.failed) for w in stats.per_worker}
    assert workers == {"w-1": (1, 2), "w-2": (1, 1)}
    summary = stats.duration_summary()
    assert summary["max"] is not None and 0 <= summary["max"] < 5
    assert summary["p50"] is not None and 0 <= summary["p50"] <= summary["max"]
    assert stats.runs.durations.total == 5

    totals = insights.run_totals()
    assert (totals.completed, totals.failed, totals.retries, totals.dead_lettered) == (2, 3, 1, 2)
    assert totals.durations.total == 5
    cumulative = totals.durations.cumulative()
    assert cumulative[-1] == (float("inf"), 5)
    assert [count for _, count in cumulative] == sorted(count for _, count in cumulative)


def test_json_shape(insights: InsightsStore) -> None:
    insights.enqueue([new_job("a")])
    run_one(insights, "w-1", succeed=True)
    document = insights.stats(3600).to_json()
    assert set(document) == {
        "since",
        "until",
        "window_seconds",
        "jobs",
        "dlq_size",
        "oldest_pending_age",
        "runs",
        "duration",
        "per_minute",
        "workers",
    }
    assert document["window_seconds"] == 3600
    assert document["jobs"]["completed"] == 1 and document["jobs"]["total"] == 1
    assert document["runs"]["success_rate"] == 1.0
    assert document["workers"] == [{"worker_id": "w-1", "completed": 1, "failed": 0}]


def test_the_window_is_checked(insights: InsightsStore) -> None:
    for bad in (0, -5, 8 * 86400):
        with pytest.raises(InvalidInput):
            insights.stats(bad)


def test_oldest_pending_age_is_the_longest_wait_of_a_runnable_job(
    insights: InsightsStore,
) -> None:
    insights.enqueue([new_job("later", delay=3600)])
    assert insights.oldest_pending_age() is None  # only a job scheduled for later
    insights.enqueue([new_job("low", priority=-5)])
    insights.enqueue([new_job("high", priority=9)])
    age = insights.oldest_pending_age()
    assert age is not None and 0 <= age < 5
    low = insights.get_job("low")
    high = insights.get_job("high")
    assert low is not None and high is not None
    # The low-priority job, enqueued first, has waited longest.
    expected = (insights.now() - low.run_at).total_seconds()
    assert age == pytest.approx(expected, abs=1.0)
    assert insights.stats(60).oldest_pending_age is not None


def test_search_pages_newest_first_with_totals(insights: InsightsStore) -> None:
    insights.enqueue([new_job(f"job-{i:02d}", command=f"echo {i}") for i in range(12)])
    page = insights.search_jobs(limit=5)
    assert [job.id for job in page.jobs] == [f"job-{i:02d}" for i in (11, 10, 9, 8, 7)]
    assert (page.total, page.total_exact, page.offset, page.limit) == (12, True, 0, 5)
    page = insights.search_jobs(offset=10, limit=5)
    assert [job.id for job in page.jobs] == ["job-01", "job-00"]
    run_one(insights, "w-1", succeed=True)  # job-00 completes
    page = insights.search_jobs(state=JobState.COMPLETED)
    assert [job.id for job in page.jobs] == ["job-00"] and page.total == 1
    assert insights.search_jobs(state=JobState.PENDING, limit=1).total == 11


def test_search_matches_id_or_command_as_plain_text(insights: InsightsStore) -> None:
    insights.enqueue(
        [
            new_job("alpha", command="backup --all"),
            new_job("beta", command="echo 100%_done"),
            new_job("gamma_1", command="echo 100 done"),
            new_job("Delta", command="<script>alert(1)</script>"),
        ]
    )

    def found(text: str, state: JobState | None = None) -> list[str]:
        page = insights.search_jobs(state=state, text=text)
        assert page.total == len(page.jobs) and page.total_exact
        return sorted(job.id for job in page.jobs)

    assert found("BACKUP") == ["alpha"]  # ASCII case-insensitive
    assert found("lph") == ["alpha"]  # inside an id
    assert found("100%") == ["beta"]  # % is a character, not a wildcard
    assert found("a_1") == ["gamma_1"]  # so is _
    assert found("<script>") == ["Delta"]
    assert found("echo", JobState.PENDING) == ["beta", "gamma_1"]
    assert found("echo", JobState.DEAD) == []
    assert found("nothing like it") == []
