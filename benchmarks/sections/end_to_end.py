"""2. End-to-end: N bulk-enqueued `true` jobs drained by W background workers.

The rate runs from the first run's start to the last run's finish as the store
recorded them (worker start-up excluded, as in the ceiling); the wall clock from
`worker start` to the last completion seen is shown too. Each drain is paired
with a ceiling measured just before it, for the same W, so that the ratio
compares like with like on a machine whose load drifts. Every job must end
completed with exactly one run: anything else is a duplicate or a lost job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from _backends import Backend, Database
from _util import Plan, Row, number, progress, summary, wait_until, write_jobs

from queuectl.domain import JobState
from sections.ceiling import WORKER_COUNTS, spawn_rate

DRAIN_TIMEOUT = 600.0


@dataclass(frozen=True)
class Drain:
    rate: float  # jobs/s, first start to last finish (store times)
    wall_rate: float  # jobs/s, `worker start` to the last completion seen
    duplicates: int  # jobs run more than once
    lost: int  # jobs not completed, or with no run


def drain(db: Database, jobs: int, workers: int) -> Drain:
    db.cli("enqueue", "--file", str(write_jobs(db.home / "jobs.jsonl", jobs)))
    store = db.store()
    try:
        started = time.perf_counter()
        db.start_workers(workers)
        wait_until(
            lambda: store.counts()[JobState.COMPLETED] >= jobs,
            DRAIN_TIMEOUT,
            f"{jobs} jobs with {workers} workers",
        )
        wall = time.perf_counter() - started
        db.stop_workers()
        duplicates = lost = 0
        starts, finishes = [], []
        for job in store.list_jobs():
            runs = store.get_runs(job.id)
            if job.state is not JobState.COMPLETED or not runs:
                lost += 1
            if len(runs) > 1:
                duplicates += 1
            starts += [run.started_at for run in runs]
            finishes += [run.finished_at for run in runs if run.finished_at is not None]
        lost += max(0, jobs - sum(store.counts().values()))  # jobs that vanished outright
    finally:
        store.close()
    span = (max(finishes) - min(starts)).total_seconds() if starts and finishes else 0.0
    return Drain(jobs / span if span > 0 else 0.0, jobs / wall, duplicates, lost)


def measure(plan: Plan, backend: Backend) -> list[Row]:
    rows = []
    duplicates = lost = 0
    for workers in WORKER_COUNTS:
        results, ratios = [], []
        for run in range(plan.runs):
            progress(f"2. end-to-end {backend.name} W={workers} run {run + 1}/{plan.runs}")
            ceiling = spawn_rate(workers, plan.ceiling_seconds)
            with backend.fresh() as db:
                result = drain(db, plan.e2e_jobs, workers)
            results.append(result)
            ratios.append(result.rate / ceiling)
        duplicates += sum(r.duplicates for r in results)
        lost += sum(r.lost for r in results)
        title = f"2. W={workers}"
        rows += [
            Row("2", f"{title}: jobs/s, first start to last finish", summary(
                [r.rate for r in results], "/s")),
            Row("2", f"{title}: ratio to a ceiling run just before", summary(ratios, decimals=2),
                ">= 0.85" if workers <= 2 else ""),
            Row("2", f"{title}: jobs/s, wall from `worker start`", summary(
                [r.wall_rate for r in results], "/s")),
        ]  # fmt: skip
    checked = plan.e2e_jobs * plan.runs * len(WORKER_COUNTS)
    rows.append(
        Row("2", f"2. duplicates / lost, {number(checked)} jobs", f"{duplicates} / {lost}", "0 / 0")
    )
    return rows
