"""Resource hygiene: one worker runs thousands of `true` jobs; its memory (VmRSS) and open
files (/proc/PID/fd) stay flat from start to end, no zombie accumulates, no job process
outlives its job, and nothing is left in $QUEUECTL_HOME/run once it stops.

3,000 jobs by default (about 20 s on a loaded 2-core machine), 10,000 with
QUEUECTL_SOAK=1. The "start" figures are taken after a warm-up of 300 jobs, when
imports, caches and SQLite's page cache have settled.
"""

from __future__ import annotations

import threading
import time

from queuectl.domain import JobState
from queuectl.store.sqlite import SqliteStore
from tests.e2e.worker_helpers import Queue, processes_of_home
from tests.reliability.helpers import (
    SOAK,
    children,
    job_processes,
    log_problems,
    open_fds,
    report,
    vm_rss_kib,
)

JOBS = 10_000 if SOAK else 3_000
WARM_UP = 300
RSS_GROWTH = 1.20
FD_GROWTH = 2


def test_a_worker_running_thousands_of_jobs_stays_flat(queue: Queue) -> None:
    [pid] = queue.start(1)
    store = SqliteStore(queue.db_path)
    try:

        def completed(n: int) -> bool:
            return store.counts()[JobState.COMPLETED] >= n

        queue.enqueue_many([{"command": "true"} for _ in range(WARM_UP)])
        queue.wait(lambda: completed(WARM_UP), 60, "the warm-up jobs")
        rss_before, fds_before = vm_rss_kib(pid), open_fds(pid)

        samples = {"max_zombies": 0, "max_children": 0, "samples": 0}
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                kids = children(pid)
                samples["max_children"] = max(samples["max_children"], len(kids))
                zombies = sum(kid.state == "Z" for kid in kids)
                samples["max_zombies"] = max(samples["max_zombies"], zombies)
                samples["samples"] += 1

        sampler = threading.Thread(target=sample)
        sampler.start()
        began = time.monotonic()
        try:
            for start in range(0, JOBS, 5000):
                count = min(5000, JOBS - start)
                queue.enqueue_many([{"command": "true"} for _ in range(count)])
            queue.wait(lambda: completed(WARM_UP + JOBS), 300, f"{JOBS} jobs to complete")
        finally:
            done.set()
            sampler.join()
        seconds = time.monotonic() - began
        counts = store.counts()
        # Idle now: nothing of any job may remain.
        queue.wait(lambda: children(pid) == [], 5, "the worker to have no children")
        rss_after, fds_after = vm_rss_kib(pid), open_fds(pid)
    finally:
        store.close()

    assert counts[JobState.FAILED] == counts[JobState.DEAD] == 0, counts
    assert job_processes(queue.home) == [], "job processes outlived their jobs"
    assert samples["max_zombies"] <= 1, samples  # one that just exited, about to be reaped
    assert samples["max_children"] <= 2, samples
    assert rss_after <= rss_before * RSS_GROWTH, (rss_before, rss_after)
    assert len(fds_after) <= len(fds_before) + FD_GROWTH, (fds_before, fds_after)

    queue.cli("worker", "stop", "--timeout", "20", timeout=40)
    assert processes_of_home(queue.home) == []
    assert list((queue.home / "run").iterdir()) == [], "temporary files left in run/"
    assert [
        p.name for p in (queue.home / "logs").iterdir() if not p.name.startswith("worker-")
    ] == []
    assert log_problems(queue.home) == []
    report(
        "hygiene",
        {
            "jobs_measured": JOBS,
            "warm_up_jobs": WARM_UP,
            "seconds": round(seconds, 1),
            "jobs_per_second": round(JOBS / seconds),
            "vm_rss_kib_before": rss_before,
            "vm_rss_kib_after": rss_after,
            "open_fds_before": len(fds_before),
            "open_fds_after": len(fds_after),
            "fds_after": sorted(fds_after.values()),
            "max_zombie_children_seen": samples["max_zombies"],
            "max_children_seen": samples["max_children"],
            "child_samples": samples["samples"],
        },
    )
