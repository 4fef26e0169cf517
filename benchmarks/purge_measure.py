"""Purge rate, and the longest claim wait it causes, on 100,000 finished jobs with 2 workers.

Run: .venv/bin/python benchmarks/purge_measure.py [--jobs 100000]
Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from queuectl.domain import Outcome, OutcomeKind, WorkerInfo
from queuectl.spec import NewJob
from queuectl.store.sqlite import SqliteStore

QUEUECTL = str(Path(sys.executable).parent / "queuectl")
SUCCESS = Outcome(OutcomeKind.SUCCEEDED, exit_code=0)


def _job(job_id: str) -> NewJob:
    return NewJob(job_id, "true", 3, 0, None, 0.0, 0.0, "/tmp", {})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="queuectl-purge-"))
    env = {**os.environ, "QUEUECTL_HOME": str(home)}
    env.pop("QUEUECTL_DB", None)
    db = home / "queue.db"
    store = SqliteStore(db)
    now = store.now()
    store.register_worker(WorkerInfo("filler", "h", 1, 1, now, now))
    print(f"building {args.jobs} completed jobs ...", flush=True)
    for start in range(0, args.jobs, 10_000):
        store.enqueue([_job(f"old{i}") for i in range(start, min(start + 10_000, args.jobs))])
        claim = store.claim("filler")
        while claim is not None:
            claim = store.finish(claim, SUCCESS, b"", claim_next=True).next_claim
    store.unregister_worker("filler")
    lines = "\n".join(json.dumps({"id": f"new{i}", "command": "true"}) for i in range(20_000))
    subprocess.run(
        [QUEUECTL, "enqueue", "--file", "-"],
        input=lines,
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [QUEUECTL, "worker", "start", "--count", "2"], env=env, check=True, capture_output=True
    )
    waits: list[float] = []
    stop = threading.Event()

    def claimer() -> None:
        mine = SqliteStore(db, durable=False)
        moment = mine.now()
        mine.register_worker(WorkerInfo("probe", "h", 1, 1, moment, moment))
        while not stop.is_set():
            started = time.monotonic()
            claim = mine.claim("probe")
            waits.append(time.monotonic() - started)
            if claim is None:
                break
            mine.finish(claim, SUCCESS, b"")
            time.sleep(0.002)

    try:
        thread = threading.Thread(target=claimer)
        thread.start()
        time.sleep(1.0)
        baseline = len(waits)
        started = time.monotonic()
        result = subprocess.run(
            [QUEUECTL, "purge", "--state", "completed", "--older-than", "0s"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.monotonic() - started
        during = waits[baseline:]
        stop.set()
        thread.join()
    finally:
        subprocess.run(
            [QUEUECTL, "worker", "stop", "--force", "--timeout", "20"], env=env, capture_output=True
        )
    print(result.stdout.strip())
    print(
        f"purge rate: {args.jobs / elapsed:,.0f} jobs/s ({elapsed:.1f} s for {args.jobs} jobs"
        " plus those the workers completed meanwhile)"
    )
    if during:
        during.sort()
        print(
            f"claims during the purge: {len(during)}; wait p50 {statistics.median(during) * 1e3:.1f}"
            f" ms, p99 {during[int(len(during) * 0.99) - 1] * 1e3:.1f} ms,"
            f" max {during[-1] * 1e3:.1f} ms"
        )
    counts = SqliteStore(db).counts()
    print("left:", {state.value: n for state, n in counts.items() if n})
    print(f"database file: {db.stat().st_size / 1e6:.1f} MB after purge and reclaim")


if __name__ == "__main__":
    main()
