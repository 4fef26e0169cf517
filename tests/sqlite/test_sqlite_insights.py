"""Insights on SQLite: exact windows with an injected clock, retention, counters that never
go backwards, the migration's backfill, and query plans that never scan the jobs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from queuectl.domain import JobState
from queuectl.store.run_stats import STATS_RETENTION_MINUTES
from queuectl.store.sqlite import SqliteStore
from queuectl.store.sqlite_insights import _OLDEST_WAITING_SQL
from queuectl.store.sqlite_schema import MIGRATIONS
from tests.helpers import CLOCK_START, SUCCESS, Clock, fail, new_job, worker_info


@pytest.fixture(autouse=True)
def worker_w(store: SqliteStore) -> None:
    """The worker that `run` claims as, registered before the test begins."""
    store.register_worker(worker_info("w"))


def run(store: SqliteStore, clock: Clock, seconds: float, *, succeed: bool = True) -> str:
    """Claim the next job, let `seconds` pass on the store's clock, record the outcome."""
    claim = store.claim("w")
    assert claim is not None
    clock.now += seconds
    assert store.finish(claim, SUCCESS if succeed else fail()).recorded
    return claim.job.id


def test_the_window_counts_only_runs_that_ended_inside_it(store: SqliteStore, clock: Clock) -> None:
    store.enqueue([new_job(f"j{i}") for i in range(4)])
    run(store, clock, 0.002)  # ends in minute 0
    clock.now += 600
    run(store, clock, 0.3)  # minute 10
    run(store, clock, 4.0, succeed=False)  # minute 10
    clock.now = CLOCK_START + 30 * 60 + 5
    stats = store.stats(25 * 60)  # from minute 5 to minute 30
    assert (stats.runs.completed, stats.runs.failed) == (1, 1)
    assert len(stats.per_minute) == 26
    busy = [
        (m.minute.minute, m.completed, m.failed)
        for m in stats.per_minute
        if m.completed or m.failed
    ]
    assert busy == [(10, 1, 1)]
    assert stats.duration_summary()["max"] == pytest.approx(4.0)
    everything = store.stats(3600)
    assert (everything.runs.completed, everything.runs.failed) == (2, 1)
    assert everything.runs.durations.counts[1] == 1  # 2 ms: the (1 ms, 2.5 ms] bucket
    assert store.run_totals().completed == 2


def test_duration_buckets_and_percentiles(store: SqliteStore, clock: Clock) -> None:
    store.enqueue([new_job(f"j{i}") for i in range(20)])
    for _ in range(19):
        run(store, clock, 0.020)  # (10 ms, 25 ms]
    run(store, clock, 90.0)  # (60 s, 120 s]
    stats = store.stats(3600)
    summary = stats.duration_summary()
    assert 0.010 < summary["p50"] <= 0.025  # type: ignore[operator]
    assert 0.010 < summary["p95"] <= 0.025  # type: ignore[operator]
    assert summary["max"] == pytest.approx(90.0)
    assert summary["mean"] == pytest.approx((19 * 0.020 + 90) / 20)
    counts = store.run_totals().durations.counts
    assert counts[4] == 19 and counts[15] == 1 and sum(counts) == 20


def test_minutes_past_the_retention_are_dropped_and_totals_stay(
    store: SqliteStore, clock: Clock, db_path: Path
) -> None:
    store.enqueue([new_job("old"), new_job("new")])
    run(store, clock, 1)
    clock.now += (STATS_RETENTION_MINUTES + 5) * 60
    run(store, clock, 1)
    with sqlite3.connect(db_path) as conn:
        minutes = [row[0] for row in conn.execute("SELECT DISTINCT minute FROM run_minutes")]
    assert len(minutes) == 1  # the old minute went when the new one was created
    assert store.run_totals().completed == 2
    assert store.stats(7 * 86400).runs.completed == 1


def test_counters_never_go_backwards_when_jobs_and_runs_are_purged(
    store: SqliteStore, clock: Clock, db_path: Path
) -> None:
    store.set_config("backoff_max", "0.001")
    store.enqueue([new_job("a"), new_job("b", max_retries=1)])
    run(store, clock, 0.5)
    run(store, clock, 0.5, succeed=False)
    before = store.run_totals()
    window_before = store.stats(3600).runs
    with sqlite3.connect(db_path) as conn:  # what a purge does to the jobs and their runs
        conn.execute("DELETE FROM runs")
        conn.execute("DELETE FROM jobs")
    after = store.run_totals()
    assert after == before
    assert (after.completed, after.failed, after.dead_lettered) == (1, 1, 1)
    assert store.stats(3600).runs == window_before
    assert store.counts()[JobState.COMPLETED] == 0  # the gauges do follow the purge


def test_migration_counts_the_runs_recorded_before_it(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    MIGRATIONS[0][2](conn)
    now_us = int(CLOCK_START * 1_000_000)
    conn.execute(
        "INSERT INTO jobs (id, command, state, attempts, max_retries, run_at, cwd, created_at,"
        " updated_at, runs_total) VALUES ('done', 'true', 'completed', 1, 3, 0, '/', 0, 0, 1),"
        " ('gone', 'false', 'dead', 2, 2, 0, '/', 0, 0, 2)"
    )
    conn.executemany(
        "INSERT INTO runs (job_id, n, worker_id, started_at, finished_at, exit_code, error)"
        " VALUES (?, ?, 'w-old', ?, ?, ?, ?)",
        [
            ("done", 1, now_us, now_us + 3000, 0, None),
            ("gone", 1, now_us, now_us + 10, 1, "exited with code 1"),
            ("gone", 2, now_us, now_us + 10, 1, "exited with code 1"),
        ],
    )
    conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0)")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("COMMIT")
    conn.close()

    store = SqliteStore(path, clock=lambda: CLOCK_START + 120)
    try:
        totals = store.run_totals()
        assert (totals.completed, totals.retries, totals.dead_lettered) == (1, 1, 1)
        assert totals.durations.total == 3
        # Runs finished long ago (by the real clock) are outside the kept minutes.
        assert store.stats(3600).runs.completed in (0, 1)
    finally:
        store.close()


def _plan(conn: sqlite3.Connection, sql: str, params: tuple[object, ...] = ()) -> str:
    return " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


def test_no_figure_scans_the_jobs_or_runs(store: SqliteStore, db_path: Path) -> None:
    store.enqueue([new_job(f"j{i}", priority=i % 3) for i in range(50)])
    with sqlite3.connect(db_path) as conn:
        plans = [
            _plan(conn, _OLDEST_WAITING_SQL),
            _plan(
                conn,
                "SELECT minute, result, sum(n) FROM run_minutes WHERE minute >= ? "
                "GROUP BY minute, result",
                (0,),
            ),
            _plan(conn, "SELECT state, n FROM job_counts"),
            _plan(conn, "SELECT id FROM jobs WHERE state = ? ORDER BY seq DESC LIMIT 5", ("dead",)),
        ]
    for plan in plans:
        # The one SCAN allowed is the first row of the runnable index (ORDER BY ... LIMIT 1).
        scans = plan.replace("SCAN jobs USING INDEX jobs_runnable", "")
        assert "SCAN jobs" not in scans and "SCAN runs" not in scans, plan
    assert "SEARCH run_minutes USING PRIMARY KEY (minute>?)" in plans[1]
    assert "SEARCH jobs USING INDEX jobs_runnable (priority=?)" in plans[0]
    assert "TEMP B-TREE" not in plans[0] + plans[3]  # no sort of the jobs
    assert "jobs_state_seq" in plans[3]


def test_oldest_waiting_job_across_priorities(store: SqliteStore, clock: Clock) -> None:
    store.enqueue([new_job("p5", priority=5)])
    clock.now += 10
    store.enqueue([new_job("p9", priority=9), new_job("soon", priority=1, delay=100)])
    clock.now += 5
    assert store.oldest_pending_age() == pytest.approx(15)  # p5, enqueued first
    run(store, clock, 1)  # p9 runs (highest priority)
    run(store, clock, 1)  # then p5
    assert store.oldest_pending_age() is None  # only "soon", not due yet
    clock.now += 100
    assert store.oldest_pending_age() == pytest.approx(7)  # due at +110, now +117
