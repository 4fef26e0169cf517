"""10. Lateness of scheduled jobs on idle workers.

20 jobs are due 1 to 3 s ahead, half with an absolute `run_at`, half with a
`delay`, enqueued in one `enqueue --file` while 2 workers sit idle. Each job's
command writes the clock as it starts; its lateness is that instant minus its
`run_at` (never negative: a job must not start early). The claim's lateness is
the run's `started_at` as the store recorded it. Once with the default
poll_interval, once with a short one.
"""

from __future__ import annotations

import json
import shlex
import statistics
import time
from datetime import datetime, timezone

from _backends import Backend, Database
from _util import Plan, Row, progress, summary, wait_until

POLL_INTERVALS = (1.0, 0.2)
JOBS = 20
WORKERS = 2
SETTLE_SECONDS = 0.5


def _specs(db: Database, base: float) -> list[dict[str, object]]:
    record = f'echo "$QUEUECTL_JOB_ID $(date +%s.%N)" >> {shlex.quote(str(db.home / "starts"))}'
    specs: list[dict[str, object]] = []
    for index in range(JOBS):
        ahead = 1.0 + 2.0 * index / (JOBS - 1)
        spec: dict[str, object] = {"id": f"due-{index:02d}", "command": record}
        if index % 2:
            spec["delay"] = ahead
        else:
            due = datetime.fromtimestamp(base + ahead, timezone.utc)
            spec["run_at"] = due.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        specs.append(spec)
    return specs


def lateness(backend: Backend, poll: float) -> tuple[list[float], list[float]]:
    """Milliseconds after run_at: each job's command start, and each job's claim."""
    with backend.fresh() as db:
        db.configure(poll_interval=poll)
        db.start_workers(WORKERS)
        time.sleep(SETTLE_SECONDS)  # both workers in their idle wait
        batch = db.home / "due.jsonl"
        batch.write_text("".join(json.dumps(s) + "\n" for s in _specs(db, time.time())))
        db.cli("enqueue", "--file", str(batch))
        starts = db.home / "starts"

        def all_started() -> bool:
            return starts.exists() and len(starts.read_text().splitlines()) == JOBS

        wait_until(all_started, 30, f"{JOBS} scheduled jobs")
        started = dict(line.split() for line in starts.read_text().splitlines())
        store = db.store()
        try:
            command_late, claim_late = [], []
            for job_id, stamp in started.items():
                job = store.get_job(job_id)
                assert job is not None
                due = job.run_at.timestamp()
                command_late.append(1000 * (float(stamp) - due))
                claim_late.append(1000 * (store.get_runs(job_id)[0].started_at.timestamp() - due))
        finally:
            store.close()
    return command_late, claim_late


def measure(plan: Plan, backend: Backend) -> list[Row]:
    rows = []
    for poll in POLL_INTERVALS:
        median, worst, earliest, claim = [], [], [], []
        for run in range(plan.runs):
            progress(f"10. schedule {backend.name} poll {poll:g} s run {run + 1}/{plan.runs}")
            command_late, claim_late = lateness(backend, poll)
            median.append(statistics.median(command_late))
            worst.append(max(command_late))
            earliest.append(min(command_late))
            claim.append(statistics.median(claim_late))
        how = f"poll {poll:g} s, {JOBS} jobs"
        rows += [
            Row("10", f"10. command start after run_at, median ({how})", summary(median, "ms", 1)),
            Row("10", f"10. command start after run_at, worst ({how})", summary(worst, "ms", 1)),
            Row(
                "10",
                f"10. command start after run_at, earliest ({how})",
                summary(earliest, "ms", 1),
                ">= 0 (never early)",
            ),
            Row("10", f"10. claim after run_at, median ({how})", summary(claim, "ms", 1)),
        ]
    return rows
