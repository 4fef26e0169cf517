"""6. One worker's memory (VmRSS) and open files before and after many `true` jobs.

Read from /proc when the worker is fresh and idle, after a warm-up batch, and
after all the jobs, so growth at start-up can be told from a leak.
"""

from __future__ import annotations

import time

from _backends import Backend, Database
from _util import Plan, Row, med, number, open_fds, progress, rss_kib, wait_until, write_jobs

from queuectl.domain import JobState

SETTLE_SECONDS = 0.5
DRAIN_TIMEOUT = 900.0


def _run_batch(db: Database, jobs: int, done_before: int) -> None:
    db.cli("enqueue", "--file", str(write_jobs(db.home / "jobs.jsonl", jobs)))
    store = db.store()
    try:
        wait_until(
            lambda: store.counts()[JobState.COMPLETED] >= done_before + jobs,
            DRAIN_TIMEOUT,
            f"{jobs} jobs on one worker",
        )
    finally:
        store.close()
    time.sleep(SETTLE_SECONDS)


def snapshots(db: Database, warmup: int, jobs: int) -> list[tuple[int, int]]:
    """(RSS KiB, open fds) of one worker: fresh, after `warmup` jobs, after `jobs` in all."""
    (pid,) = db.start_workers(1)
    time.sleep(SETTLE_SECONDS)
    seen = [(rss_kib(pid), open_fds(pid))]
    _run_batch(db, warmup, 0)
    seen.append((rss_kib(pid), open_fds(pid)))
    _run_batch(db, jobs - warmup, warmup)
    seen.append((rss_kib(pid), open_fds(pid)))
    db.stop_workers()
    return seen


def _change(before: float, after: float) -> str:
    return f"{100 * (after - before) / before:+.1f}%"


def measure(plan: Plan, backend: Backend) -> list[Row]:
    runs = []
    for run in range(plan.runs):
        progress(f"6. worker memory {backend.name} run {run + 1}/{plan.runs}")
        with backend.fresh() as db:
            runs.append(snapshots(db, plan.memory_warmup, plan.memory_jobs))
    fresh, warm, done = ([med([r[i][k] for r in runs]) for k in (0, 1)] for i in range(3))
    after = f"after {number(plan.memory_jobs)} jobs"
    return [
        Row(
            "6",
            f"6. worker RSS: fresh -> {after}",
            f"{fresh[0] / 1024:.1f} -> {done[0] / 1024:.1f} MiB ({_change(fresh[0], done[0])})",
            "within 10%",
        ),
        Row(
            "6",
            f"6. worker RSS: after {number(plan.memory_warmup)} jobs -> {after}",
            f"{warm[0] / 1024:.1f} -> {done[0] / 1024:.1f} MiB ({_change(warm[0], done[0])})",
        ),
        Row(
            "6",
            f"6. worker open fds: fresh -> {after}",
            f"{fresh[1]:g} -> {done[1]:g} ({done[1] - fresh[1]:+g})",
        ),
    ]
