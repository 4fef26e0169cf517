"""11. What capturing a job's output costs per job.

One worker runs a batch of identical jobs enqueued before it starts (so it never
idles); the time per job runs from the first run's start to the last run's end
as the store recorded them, and the worker's own CPU (utime + stime, its jobs'
excluded) is read from /proc. No switch turns capture off (output always goes
to the worker's file; `output_limit 0` only stores none of it), so the same
shell work is compared with its output captured and sent to /dev/null. The
variants of one run go back to back and are compared pairwise, which the
machine's drifting load disturbs least; the median is over the runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from _backends import Backend
from _util import Plan, Row, cpu_seconds, number, progress, summary, wait_until, write_jobs

from queuectl.domain import JobState

BLOCK = ("0123456789abcdef" * 64)[:-1]  # echo adds the newline: 1024 bytes a line
_SIXTY_FOUR = f"i=0; while [ $i -lt 64 ]; do echo {BLOCK}; i=$((i+1)); done"
# name -> (command, settings)
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "true": ("true", {}),
    "1 KB to /dev/null": (f"echo {BLOCK} > /dev/null", {}),
    "1 KB captured": (f"echo {BLOCK}", {}),
    "1 KB, output_limit 0": (f"echo {BLOCK}", {"output_limit": 0}),
    "64 KB to /dev/null": (f"{_SIXTY_FOUR} > /dev/null", {}),
    "64 KB captured": (_SIXTY_FOUR, {}),
}
# (row, measured, baseline)
COMPARISONS = (
    ("1 KB captured minus 1 KB to /dev/null", "1 KB captured", "1 KB to /dev/null"),
    ("64 KB captured minus 64 KB to /dev/null", "64 KB captured", "64 KB to /dev/null"),
    ("1 KB stored minus output_limit 0", "1 KB captured", "1 KB, output_limit 0"),
)
DRAIN_TIMEOUT = 600.0


@dataclass(frozen=True)
class Batch:
    wall: float  # microseconds per job, first run's start to last run's end
    cpu: float  # microseconds of the worker process's own CPU per job


def run_batch(backend: Backend, command: str, settings: dict[str, object], jobs: int) -> Batch:
    with backend.fresh() as db:
        db.configure(poll_interval=0.2, **settings)
        db.cli("enqueue", "--file", str(write_jobs(db.home / "jobs.jsonl", jobs, command)))
        (pid,) = db.start_workers(1)
        store = db.store()
        try:
            wait_until(
                lambda: store.counts()[JobState.COMPLETED] >= jobs,
                DRAIN_TIMEOUT,
                f"{jobs} jobs of `{command[:20]}`",
            )
            cpu = cpu_seconds(pid)
            runs = [run for job in store.list_jobs() for run in store.get_runs(job.id)]
        finally:
            store.close()
    ends = [run.finished_at for run in runs if run.finished_at is not None]
    span = (max(ends) - min(run.started_at for run in runs)).total_seconds()
    return Batch(1e6 * span / jobs, 1e6 * cpu / jobs)


def _differences(measured: Sequence[Batch], baseline: Sequence[Batch]) -> tuple[list[float], ...]:
    pairs = list(zip(measured, baseline, strict=True))
    return [m.wall - b.wall for m, b in pairs], [m.cpu - b.cpu for m, b in pairs]


def measure(plan: Plan, backend: Backend) -> list[Row]:
    results: dict[str, list[Batch]] = {name: [] for name in VARIANTS}
    for run in range(plan.runs):
        for name, (command, settings) in VARIANTS.items():
            progress(f"11. capture {backend.name} {name} run {run + 1}/{plan.runs}")
            results[name].append(run_batch(backend, command, settings, plan.capture_jobs))
    jobs = number(plan.capture_jobs)
    rows = [
        Row(
            "11",
            f"11. one worker, {jobs} `true` jobs: wall per job",
            summary([b.wall for b in results["true"]], "us"),
        )
    ]
    for label, measured, baseline in COMPARISONS:
        wall, cpu = _differences(results[measured], results[baseline])
        rows += [
            Row("11", f"11. {label}: wall per job", summary(wall, "us")),
            Row("11", f"11. {label}: worker CPU per job", summary(cpu, "us")),
        ]
    return rows
