"""The two figures of issue 4's note, measured with real workers through the real CLI.

    .venv/bin/python benchmarks/issue4_measure.py [--jobs 2000] [--rounds 2]

(a) Lateness of scheduled jobs: 20 jobs scheduled at now+1.0 .. now+3.0 s (half
    with an ISO `run_at`, half with `delay`) on 2 idle workers. Each job records
    `date +%s.%N` as its first command; lateness = that instant - its run_at.
    Also the lateness of the run's `started_at` (the claim) as the store has it.
    Measured with the default poll_interval (1 s) and with 0.2 s.
(b) Output capture overhead per job: N jobs on one worker (enqueued before it
    starts, so it never idles), timed from the first run's start to the last
    run's end. There is no switch that turns capture off (output always goes to
    the worker's file; `output_limit 0` only stores none of it), so the same
    shell work is run with its output captured versus sent to /dev/null:
      true                  nothing written
      1 KB > /dev/null      vs  1 KB captured (and vs 1 KB with output_limit 0)
      64 KB > /dev/null     vs  64 KB captured
    The differences are the per-job cost of capturing and storing the output.

Not a test: it prints figures and never fails on a timing. Everything runs in
temporary QUEUECTL_HOME directories; every worker is stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from queuectl.paths import DatabaseLocation
from queuectl.store import open_store

QUEUECTL = str(Path(sys.executable).parent / "queuectl")
KB_LINE = "0123456789abcdef" * 64  # 1024 characters; echo adds the newline
BLOCK = KB_LINE[:-1]  # echo of this writes exactly 1024 bytes


class Home:
    """A temporary QUEUECTL_HOME and the CLI run in it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="queuectl-issue4-"))
        self.home = self.root / "home"
        self.env = {**os.environ, "QUEUECTL_HOME": str(self.home)}
        self.env.pop("QUEUECTL_DB", None)
        self.pids: list[int] = []

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [QUEUECTL, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            timeout=600,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"queuectl {' '.join(args)[:80]} failed: {result.stderr.strip()}")
        return result.stdout

    def configure(self, **settings: object) -> None:
        for key, value in settings.items():
            self.cli("config", "set", key, str(value))

    def enqueue_batch(self, specs: list[dict[str, object]]) -> list[str]:
        lines = "".join(json.dumps(spec) + "\n" for spec in specs)
        return list(json.loads(self.cli("enqueue", "--file", "-", "--json", stdin=lines)))

    def start_workers(self, count: int) -> list[int]:
        output = self.cli("worker", "start", "--count", str(count))
        pids = [int(p) for p in output.rsplit("[", 1)[1].split("]")[0].split(",")]
        self.pids.extend(pids)
        return pids

    def stop(self) -> None:
        self.cli("worker", "stop", "--force", "--timeout", "30", check=False)
        for pid in self.pids:  # in case the CLI itself failed: never leave a worker behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def store_runs(self) -> list[tuple[float, float]]:
        """(started_at, finished_at) of every run, epoch seconds, from the store itself."""
        path = self.home / "queue.db"
        store = open_store(DatabaseLocation("sqlite", str(path), None, str(path)), durable=False)
        try:
            return [
                (run.started_at.timestamp(), run.finished_at.timestamp())
                for job in store.list_jobs()
                for run in store.get_runs(job.id)
                if run.finished_at is not None
            ]
        finally:
            store.close()


@contextmanager
def fresh_home() -> Iterator[Home]:
    home = Home()
    try:
        yield home
    finally:
        home.stop()
        shutil.rmtree(home.root, ignore_errors=True)


def epoch(timestamp: str) -> float:
    parsed = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.05)


# --- (a) lateness ------------------------------------------------------------------------------
def measure_lateness(poll_interval: float) -> tuple[list[float], list[float]]:
    """(lateness of the job's first command, lateness of the claim), in ms, for 20 jobs."""
    with fresh_home() as home:
        home.configure(poll_interval=poll_interval)
        home.start_workers(2)
        starts = home.root / "starts"
        record = f'echo "$QUEUECTL_JOB_ID $(date +%s.%N)" >> {starts}'
        time.sleep(0.5)  # let both workers settle into their idle wait
        base = time.time()
        specs: list[dict[str, object]] = []
        for i in range(20):
            offset = 1.0 + 2.0 * i / 19
            spec: dict[str, object] = {"id": f"s{i:02d}", "command": record}
            if i % 2:
                spec["delay"] = offset
            else:
                moment = datetime.fromtimestamp(base + offset, timezone.utc)
                spec["run_at"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            specs.append(spec)
        home.enqueue_batch(specs)

        def all_started() -> bool:
            return starts.exists() and len(starts.read_text().splitlines()) == 20

        wait_for(all_started, 30)
        home.cli("wait", *(str(spec["id"]) for spec in specs), "--timeout", "30")
        jobs = {job["id"]: job for job in json.loads(home.cli("list", "--json"))}
        command_late = []
        for line in starts.read_text().splitlines():
            job_id, started = line.split()
            command_late.append((float(started) - epoch(jobs[job_id]["run_at"])) * 1000)
        claim_late = []
        for job_id in jobs:
            shown = json.loads(home.cli("show", "--json", job_id))
            claim_late.append(
                (epoch(shown["runs"][0]["started_at"]) - epoch(shown["run_at"])) * 1000
            )
        return command_late, claim_late


# --- (b) capture overhead -----------------------------------------------------------------------
VARIANTS: list[tuple[str, str, dict[str, object]]] = [
    ("true (no output)", "true", {}),
    ("1 KB to /dev/null", f"echo {BLOCK} > /dev/null", {}),
    ("1 KB captured", f"echo {BLOCK}", {}),
    ("1 KB, output_limit 0", f"echo {BLOCK}", {"output_limit": 0}),
    (
        "64 KB to /dev/null",
        f"i=0; while [ $i -lt 64 ]; do echo {BLOCK}; i=$((i+1)); done > /dev/null",
        {},
    ),
    ("64 KB captured", f"i=0; while [ $i -lt 64 ]; do echo {BLOCK}; i=$((i+1)); done", {}),
]


@dataclass(frozen=True)
class Batch:
    wall: float  # seconds per job, first run's start to last run's end
    worker_cpu: float  # the worker process's own CPU seconds (user + system) per job


def worker_cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` itself (its reaped jobs are counted apart, in cutime/cstime)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_batch(command: str, jobs: int, settings: dict[str, object]) -> Batch:
    """One busy worker runs `jobs` copies of `command`, enqueued before it starts."""
    with fresh_home() as home:
        home.configure(poll_interval=0.2, **settings)
        ids = home.enqueue_batch([{"command": command} for _ in range(jobs)])
        [pid] = home.start_workers(1)

        def done() -> bool:
            counts = json.loads(home.cli("status", "--json"))["jobs"]
            return bool(counts["completed"] + counts["dead"] == len(ids))

        wait_for(done, 600)
        cpu = worker_cpu_seconds(pid)
        runs = home.store_runs()
        assert len(runs) == jobs, f"{len(runs)} runs for {jobs} jobs"
        first = min(start for start, _ in runs)
        last = max(end for _, end in runs)
        return Batch((last - first) / jobs, cpu / jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per batch (b)")
    parser.add_argument("--rounds", type=int, default=3, help="batches per variant (b)")
    args = parser.parse_args()

    print("(a) lateness of 20 scheduled jobs on 2 idle workers (ms; >= 0 means not early)")
    for poll in (1.0, 0.2):
        command_late, claim_late = measure_lateness(poll)
        print(
            f"    poll_interval {poll:<4}: job's first command: median "
            f"{statistics.median(command_late):6.1f}  worst {max(command_late):6.1f}  "
            f"best {min(command_late):6.1f} | claim (run started_at): median "
            f"{statistics.median(claim_late):6.1f}  worst {max(claim_late):6.1f}  "
            f"best {min(claim_late):6.1f}"
        )

    print(f"\n(b) one worker, {args.jobs} jobs per batch, {args.rounds} round(s); µs per job")
    print("    (no switch turns capture off: captured output is compared with the same")
    print("     shell work sent to /dev/null, and with output_limit 0, which stores none)")
    print("    wall = first start to last end / jobs; cpu = the worker process's own CPU")
    results: dict[str, list[Batch]] = {name: [] for name, _, _ in VARIANTS}
    for _ in range(args.rounds):
        for name, command, settings in VARIANTS:
            results[name].append(measure_batch(command, args.jobs, settings))
    for name, _, _ in VARIANTS:
        walls = "  ".join(f"{b.wall * 1e6:6.0f}" for b in results[name])
        cpus = "  ".join(f"{b.worker_cpu * 1e6:5.0f}" for b in results[name])
        print(f"    {name:<22} wall {walls}   | cpu {cpus}")

    def paired(captured: str, baseline: str) -> str:
        # Batches of one round ran back to back: their difference is the least disturbed
        # by other load on the machine. Median over the rounds.
        pairs = list(zip(results[captured], results[baseline], strict=True))
        wall = statistics.median((c.wall - b.wall) * 1e6 for c, b in pairs)
        cpu = statistics.median((c.worker_cpu - b.worker_cpu) * 1e6 for c, b in pairs)
        return f"wall {wall:+6.0f} µs, worker cpu {cpu:+5.0f} µs"

    print("    overhead per job (median over rounds of the paired differences):")
    print(f"      1 KB captured vs to /dev/null : {paired('1 KB captured', '1 KB to /dev/null')}")
    print(f"      64 KB captured vs to /dev/null: {paired('64 KB captured', '64 KB to /dev/null')}")
    print(
        f"      1 KB stored vs output_limit 0 : {paired('1 KB captured', '1 KB, output_limit 0')}"
    )


if __name__ == "__main__":
    main()
