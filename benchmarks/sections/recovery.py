"""9. Recovery: how soon the job of a SIGKILLed worker is back in the queue.

A worker runs `sleep 60`; a second worker sits idle; the first is SIGKILLed.
The figure runs from the kill to the moment the job leaves `processing`, as
polled through the library, against the contract's bound of lease_seconds
plus one poll_interval; the store's own record (the lost run's finished_at)
is shown beside it. Once with the default poll_interval, once with a short one.
"""

from __future__ import annotations

import json
import os
import signal
import time

from _backends import Backend
from _util import Plan, Row, progress, summary, wait_until

from queuectl.domain import JobState

POLL_INTERVALS = (1.0, 0.2)
JOB_ID = "victim"


def recovery_seconds(backend: Backend, lease: float, poll: float) -> tuple[float, float]:
    """(kill -> job out of processing as observed, kill -> the run's recorded end), seconds."""
    with backend.fresh() as db:
        db.configure(lease_seconds=lease, poll_interval=poll)
        db.cli("enqueue", json.dumps({"id": JOB_ID, "command": "sleep 60", "max_retries": 1}))
        (victim,) = db.start_workers(1)
        store = db.store()
        try:

            def state() -> JobState:
                job = store.get_job(JOB_ID)
                assert job is not None
                return job.state

            wait_until(lambda: state() is JobState.PROCESSING, 30, "the job to start")
            db.start_workers(1)  # the idle worker that takes the job back
            killed_wall = time.time()
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            wait_until(
                lambda: state() is not JobState.PROCESSING, 3 * lease + 30, "the job's recovery"
            )
            observed = time.monotonic() - killed
            lost_run = store.get_runs(JOB_ID)[0]
        finally:
            store.close()
    if lost_run.finished_at is None:
        raise RuntimeError("the lost run has no end recorded")
    return observed, lost_run.finished_at.timestamp() - killed_wall


def measure(plan: Plan, backend: Backend) -> list[Row]:
    lease = plan.recovery_lease
    rows = []
    for poll in POLL_INTERVALS:
        observed, recorded = [], []
        for run in range(plan.runs):
            progress(f"9. recovery {backend.name} poll {poll:g} s run {run + 1}/{plan.runs}")
            seen, stored = recovery_seconds(backend, lease, poll)
            observed.append(seen)
            recorded.append(stored)
        how = f"lease {lease:g} s, poll {poll:g} s"
        rows += [
            Row(
                "9",
                f"9. SIGKILL -> job out of processing ({how})",
                summary(observed, "s", 2),
                f"<= {lease + poll:g} s (lease + one poll)",
            ),
            Row("9", f"9. SIGKILL -> lost run's recorded end ({how})", summary(recorded, "s", 2)),
        ]
    return rows
