"""3. Pick-up latency with idle workers, and what an idle worker costs.

Two workers sit idle; the CPU they use is read from /proc over a few seconds.
Then jobs arrive at a light steady rate through the library's store.enqueue().
Each latency runs from the moment enqueue() returns (the commit is durable) to
the moment the job's command starts, as the command itself sees it: the command
is `date` writing the job id and the time in nanoseconds. The floor row is the
same command started straight with Popen, no queue: the part of the latency
that is just starting /bin/sh and date.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import time
from contextlib import suppress
from pathlib import Path

from _backends import Backend, Database
from _util import Plan, Row, cpu_seconds, med, percentile, progress, summary, wait_until

from queuectl import spec
from queuectl.domain import JobState

IDLE_WORKERS = 2
SETTLE_SECONDS = 1.0
FLOOR_SAMPLES = 30
# After the last enqueue, how long the jobs get to start before they count as never started.
STRAGGLER_SECONDS = 15.0


def _stamp_command(path: Path) -> str:
    """A command that appends "JOB_ID NANOSECONDS" to `path` as it starts."""
    return f'date +"$QUEUECTL_JOB_ID %s%N" >> {shlex.quote(str(path))}'


def idle_cpu_percent(pids: list[int], seconds: float) -> float:
    """Mean CPU use of the processes over `seconds`, in % of one core."""
    before = [cpu_seconds(pid) for pid in pids]
    started = time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - started
    used = [cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True)]
    return 100 * sum(used) / len(used) / elapsed


def pickup_latencies(db: Database, jobs: int, rate: float) -> tuple[list[float], int]:
    """Milliseconds from enqueue()'s return to the command's start; and how many never started."""
    stamps = db.home / "starts"
    defaults = spec.SpecDefaults(max_retries=3, timeout=0, cwd=str(db.home))
    command = _stamp_command(stamps)
    committed: dict[str, int] = {}
    store = db.store()
    try:
        begin = time.perf_counter()
        for index in range(jobs):
            delay = begin + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            job = spec.parse_job_spec({"id": f"pickup-{index}", "command": command}, defaults)
            store.enqueue([job])
            committed[job.id] = time.time_ns()
        with suppress(TimeoutError):  # reported as jobs that never started
            wait_until(
                lambda: store.counts()[JobState.COMPLETED] >= jobs,
                STRAGGLER_SECONDS,
                "pick-up jobs",
            )
    finally:
        store.close()
    lines = stamps.read_text().splitlines() if stamps.exists() else []
    started = dict(line.split() for line in lines)
    latencies = [(int(started[i]) - ns) / 1e6 for i, ns in committed.items() if i in started]
    return latencies, len(committed) - len(latencies)


def spawn_floor() -> float:
    """Median ms from just before Popen to the stamp command's own clock reading."""
    with tempfile.TemporaryDirectory(prefix="queuectl-bench-floor-") as scratch:
        stamps = Path(scratch) / "starts"
        env = dict(os.environ, QUEUECTL_JOB_ID="floor")
        samples = []
        for _ in range(FLOOR_SAMPLES):
            before = time.time_ns()
            subprocess.run(
                ["/bin/sh", "-c", _stamp_command(stamps)],
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                check=True,
            )
            stamped = int(stamps.read_text().splitlines()[-1].split()[1])
            samples.append((stamped - before) / 1e6)
    return med(samples)


def measure(plan: Plan, backend: Backend) -> list[Row]:
    p50, p99, worst, idle, floor, missing = [], [], [], [], [], []
    for run in range(plan.runs):
        progress(f"3. pick-up latency {backend.name} run {run + 1}/{plan.runs}")
        with backend.fresh() as db:
            pids = db.start_workers(IDLE_WORKERS)
            time.sleep(SETTLE_SECONDS)
            idle.append(idle_cpu_percent(pids, plan.idle_seconds))
            latencies, never = pickup_latencies(db, plan.pickup_jobs, plan.pickup_rate)
            db.stop_workers()
        missing.append(never)
        if latencies:
            p50.append(percentile(latencies, 0.50))
            p99.append(percentile(latencies, 0.99))
            worst.append(max(latencies))
        floor.append(spawn_floor())
    how = f"({plan.pickup_jobs} jobs at {plan.pickup_rate:g}/s, {IDLE_WORKERS} idle workers)"
    return [
        Row("3", f"3. pick-up p50 {how}", summary(p50, "ms", 1), "<= 5 ms (PostgreSQL <= 2 ms)"),
        Row("3", f"3. pick-up p99 {how}", summary(p99, "ms", 1), "<= 15 ms"),
        Row("3", f"3. pick-up max {how}", summary(worst, "ms", 1)),
        Row(
            "3",
            f"3. pick-up: jobs never started ({STRAGGLER_SECONDS:g} s grace)",
            f"{sum(missing)} of {plan.pickup_jobs * plan.runs}",
            "0",
        ),
        Row("3", "3. floor: Popen to the command's start, no queue", summary(floor, "ms", 1)),
        Row(
            "3",
            f"3. idle worker CPU, mean of {IDLE_WORKERS} over {plan.idle_seconds:g} s",
            summary(idle, "% of a core", 2),
            "<= 2%",
        ),
    ]
