"""The two figures of issue 3's note, measured with real workers through the real CLI.

    .venv/bin/python benchmarks/issue3_measure.py [--jobs 1000] [--workers 4] [--trials 3]

(a) Throughput: N trivial jobs on W idle background workers, from the moment the
    batch is enqueued (one `enqueue --file`) until the last one is completed;
    once with `true`, once with `echo "$QUEUECTL_JOB_ID" >> FILE`. Proof that
    each ran exactly once: every job has exactly one run and attempts 1, and in
    the second variant the file holds every id exactly once.
(b) Recovery: a worker running `sleep 60` is SIGKILLed with lease_seconds 5 and
    another worker idle; the time from the kill until the job leaves
    `processing` (and the recovery time the store recorded).

Not a test: it prints figures and never fails on a timing. Everything runs in
temporary QUEUECTL_HOME directories; every worker is stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from queuectl.domain import JobState
from queuectl.store.sqlite import SqliteStore

QUEUECTL = str(Path(sys.executable).parent / "queuectl")
PIDS = re.compile(r"PIDs: \[([0-9, ]*)\]")


class Home:
    """A temporary QUEUECTL_HOME and the CLI run in it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="queuectl-issue3-"))
        self.env = {**os.environ, "QUEUECTL_HOME": str(self.root / "home")}
        self.env.pop("QUEUECTL_DB", None)
        self.pids: list[int] = []

    def cli(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [QUEUECTL, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"queuectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def start(self, count: int) -> list[int]:
        match = PIDS.search(self.cli("worker", "start", "--count", str(count)))
        assert match, "worker start printed no PIDs"
        pids = [int(p) for p in match.group(1).replace(",", " ").split()]
        self.pids += pids
        return pids

    def store(self) -> SqliteStore:
        return SqliteStore(self.root / "home" / "queue.db", durable=False)

    def close(self) -> None:
        try:
            self.cli("worker", "stop", "--force", "--timeout", "10")
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"  (stop: {exc})", file=sys.stderr)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def state_of(store: SqliteStore, job_id: str) -> JobState:
    job = store.get_job(job_id)
    assert job is not None, job_id
    return job.state


def wait_for(predicate: Any, timeout: float, interval: float = 0.005) -> float:
    """Poll until true; return the monotonic time it was first seen true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(interval)
    raise TimeoutError(f"not reached within {timeout}s")


def throughput(jobs: int, workers: int, append: bool) -> dict[str, Any]:
    home = Home()
    ran = home.root / "ran"
    command = f'echo "$QUEUECTL_JOB_ID" >> {ran}' if append else "true"
    try:
        home.start(workers)
        store = home.store()
        batch = "".join(json.dumps({"command": command}) + "\n" for _ in range(jobs))
        began = time.monotonic()
        ids = json.loads(home.cli("enqueue", "--file", "-", "--json", stdin=batch))
        enqueued = time.monotonic()
        done = wait_for(lambda: store.counts()[JobState.COMPLETED] == jobs, 600)
        runs = Counter(len(store.get_runs(job_id)) for job_id in ids)
        attempts = Counter(job.attempts for job in store.list_jobs())
        workers_used = len({job.worker_id for job in store.list_jobs()})
        store.close()
        result: dict[str, Any] = {
            "seconds": done - began,
            "jobs_per_s": jobs / (done - began),
            "enqueue_s": enqueued - began,
            "runs_per_job": dict(runs),
            "attempts": dict(attempts),
            "workers_used": workers_used,
        }
        if append:
            lines = Counter(ran.read_text().split())
            result["file_lines"] = sum(lines.values())
            result["file_ids_exactly_once"] = set(lines) == set(ids) and set(lines.values()) == {1}
        return result
    finally:
        home.close()


def recovery(lease: float, poll: float) -> dict[str, Any]:
    home = Home()
    try:
        home.cli("config", "set", "lease_seconds", str(lease))
        home.cli("config", "set", "poll_interval", str(poll))
        job_id = home.cli("enqueue", json.dumps({"command": "sleep 60", "max_retries": 1}))
        job_id = job_id.strip()
        [victim] = home.start(1)
        store = home.store()
        wait_for(lambda: state_of(store, job_id) is JobState.PROCESSING, 30)
        home.start(1)  # the idle worker that will take the job back
        killed_wall = time.time()
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        left = wait_for(lambda: state_of(store, job_id) is not JobState.PROCESSING, lease * 3 + 30)
        job = store.get_job(job_id)
        [run] = store.get_runs(job_id)
        store.close()
        assert job is not None and run.finished_at is not None
        return {
            "observed_s": left - killed,
            "recorded_s": run.finished_at.timestamp() - killed_wall,
            "state": job.state.value,
            "error": run.error,
        }
    finally:
        home.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=3, help="recovery trials")
    parser.add_argument("--lease", type=float, default=5.0)
    args = parser.parse_args()

    print(f"queuectl at {QUEUECTL}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}")
    print(f"\n(a) {args.jobs} jobs on {args.workers} background workers (default settings)")
    print(f"{'command':<34} {'seconds':>8} {'jobs/s':>8}  exactly once?")
    for append in (False, True):
        label = 'echo "$QUEUECTL_JOB_ID" >> FILE' if append else "true"
        r = throughput(args.jobs, args.workers, append)
        proof = (
            f"runs per job {r['runs_per_job']}, attempts {r['attempts']}, "
            f"{r['workers_used']} workers took part"
        )
        if append:
            proof += (
                f"; file: {r['file_lines']} lines, every id exactly once: "
                f"{r['file_ids_exactly_once']}"
            )
        print(f"{label:<34} {r['seconds']:>8.2f} {r['jobs_per_s']:>8.0f}  {proof}")
        print(f"{'':<34} (enqueue of the batch: {r['enqueue_s']:.2f} s, included)")

    for poll in (1.0, 0.2):
        print(
            f"\n(b) recovery after SIGKILL, lease_seconds {args.lease:g}, poll_interval {poll:g}"
            f" (contract: within lease + one poll = {args.lease + poll:g} s)"
        )
        print(f"{'trial':<6} {'kill -> job leaves processing':>30} {'recorded recovery':>18}")
        for trial in range(1, args.trials + 1):
            r = recovery(args.lease, poll)
            print(
                f"{trial:<6} {r['observed_s']:>29.2f}s {r['recorded_s']:>17.2f}s"
                f"  -> {r['state']}, run error {r['error']!r}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
