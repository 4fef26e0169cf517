"""13. `stats` and the dashboard's queries on a big, realistic history (SQLite).

The database is built in SQL: mostly completed jobs, 1 % dead, 1,000 pending,
one run per finished job inserted into `runs`, so the statistics triggers fill
run_minutes and run_totals exactly as workers would (finish times spread over
the last 24 hours, 8 workers, varied commands to search). Each figure is the
median of `requests` calls per run (a quarter as many text searches, which
scan the jobs), the library calls in this process, the
`stats` commands as whole processes run as installed (section 4's way).
`status` and a bare python, which the measurement of issue 7 printed beside
them, are sections 5 and 4.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from collections.abc import Callable

from _backends import QUEUECTL, Backend, Database
from _util import Plan, Row, number, progress, summary

from queuectl.domain import JobState
from queuectl.store.insights import InsightsStore, with_insights

PENDING = 1_000
_DAY = 86_400 * 1_000_000  # microseconds
_JOBS = """
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < :jobs)
INSERT INTO jobs (id, command, state, attempts, max_retries, priority, run_at, timeout,
                  cwd, env, created_at, updated_at, exit_code, last_error, worker_id, runs_total)
SELECT printf('job-%07d', i), 'echo report-' || i || ' --verbose',
       CASE WHEN i > :jobs - :pending THEN 'pending'
            WHEN i % 100 = 0 THEN 'dead' ELSE 'completed' END,
       CASE WHEN i > :jobs - :pending THEN 0 ELSE 1 END,
       CASE WHEN i % 100 = 0 THEN 0 ELSE 3 END,
       i % 3, :start + i * :step, 0, '/tmp', '{}',
       :start + i * :step, :start + i * :step,
       CASE WHEN i > :jobs - :pending THEN NULL WHEN i % 100 = 0 THEN 1 ELSE 0 END,
       CASE WHEN i % 100 = 0 AND i <= :jobs - :pending THEN 'exited with code 1' END,
       CASE WHEN i > :jobs - :pending THEN NULL ELSE 'w-' || (i % 8) END,
       CASE WHEN i > :jobs - :pending THEN 0 ELSE 1 END
FROM c
"""
_RUNS = """
INSERT INTO runs (job_id, n, worker_id, started_at, finished_at, exit_code, error,
                  output, output_total)
SELECT id, 1, worker_id, updated_at - abs(random() % 2000000), updated_at, exit_code,
       last_error, CAST('output of ' || id AS BLOB), 16
FROM jobs WHERE state IN ('completed', 'dead')
"""
# Pending jobs have no count trigger (SQLite schema 3): the inserting statement counts.
_COUNT_PENDING = "UPDATE job_counts SET n = n + ? WHERE state = 'pending'"


def build_history(db: Database, jobs: int) -> None:
    """`jobs` jobs finished over the last day, the last PENDING of them still pending."""
    if db.location.path is None:
        raise RuntimeError("the history is built in SQLite's SQL")
    store = db.store()  # creates the schema
    store.close()
    now = int(time.time() * 1_000_000)
    pending = min(jobs, PENDING)
    conn = sqlite3.connect(db.location.path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # a fixture: no need to survive a crash
        conn.execute("BEGIN IMMEDIATE")
        values = {"jobs": jobs, "pending": pending, "start": now - _DAY, "step": _DAY // jobs}
        conn.execute(_JOBS, values)
        conn.execute(_RUNS)
        conn.execute(_COUNT_PENDING, (pending,))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def median_seconds(action: Callable[[], object], count: int) -> float:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _calls(store: InsightsStore, db: Database) -> list[tuple[str, Callable[[], object]]]:
    """(label, call) of each figure; the stats commands as processes."""

    def process(*args: str) -> Callable[[], object]:
        return lambda: db.process_seconds([QUEUECTL, *args])

    return [
        ("store.stats(1 hour)", lambda: store.stats(3600)),
        ("store.stats(7 days)", lambda: store.stats(7 * 86_400)),
        ("store.run_totals()", store.run_totals),
        ("store.oldest_pending_age()", store.oldest_pending_age),
        ("store.search_jobs(limit=50)", lambda: store.search_jobs(limit=50)),
        ("search_jobs(state=dead)", lambda: store.search_jobs(JobState.DEAD, limit=50)),
        ("search_jobs(text='report-99999')", lambda: store.search_jobs(text="report-99999")),
        ("search_jobs(text='no such text')", lambda: store.search_jobs(text="no such text")),
        ("`queuectl stats` process", process("stats")),
        ("`queuectl stats --json` process", process("stats", "--json")),
        ("`queuectl stats --since 7d` process", process("stats", "--since", "7d")),
    ]


def measure(plan: Plan, backend: Backend) -> list[Row]:
    figures: dict[str, list[float]] = {}
    with backend.fresh() as db:
        progress(f"13. stats {backend.name}: building {number(plan.stats_jobs)} jobs")
        build_history(db, plan.stats_jobs)
        store = with_insights(db.store())
        try:
            for run in range(plan.runs):
                progress(f"13. stats {backend.name} run {run + 1}/{plan.runs}")
                for label, call in _calls(store, db):
                    # A text search scans the jobs: fewer of them.
                    count = max(3, plan.requests // 4) if "text=" in label else plan.requests
                    figures.setdefault(label, []).append(1000 * median_seconds(call, count))
        finally:
            store.close()
    jobs = number(plan.stats_jobs)
    return [
        Row("13", f"13. {label}, {jobs} jobs", summary(values, "ms", 2))
        for label, values in figures.items()
    ]
