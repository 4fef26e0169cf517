"""1. The ceiling: how fast W processes can start `/bin/sh -c true`, as a worker starts a job.

No queue at all: each process spawns serially, in a new session, stdin from
/dev/null, output to a fresh file, and waits. Section 2 compares against this.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import tempfile
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from pathlib import Path

from _util import Plan, Row, progress, summary

WORKER_COUNTS = (1, 2, 4)


def _spawn_loop(barrier: Barrier, seconds: float, output: str, results: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends us on Ctrl-C
    env = dict(os.environ, QUEUECTL_JOB_ID="ceiling", QUEUECTL_ATTEMPT="1")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    barrier.wait()
    started = time.perf_counter()
    deadline = started + seconds
    spawned = 0
    while time.perf_counter() < deadline:
        fd = os.open(output, flags, 0o600)
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", "true"],
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                env=env,
                start_new_session=True,
            )
        finally:
            os.close(fd)
        process.wait()
        spawned += 1
    results.send((spawned, time.perf_counter() - started))
    results.close()


def spawn_rate(workers: int, seconds: float) -> float:
    """Spawns per second of `workers` processes spawning side by side for `seconds`."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(workers)
    scratch = Path(tempfile.mkdtemp(prefix="queuectl-bench-ceiling-"))
    pipes = [context.Pipe(duplex=False) for _ in range(workers)]
    processes = [
        context.Process(target=_spawn_loop, args=(barrier, seconds, str(scratch / str(i)), send))
        for i, (_, send) in enumerate(pipes)
    ]
    try:
        for process in processes:
            process.start()
        results = [receive.recv() for receive, _ in pipes]
        for process in processes:
            process.join()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join()
        shutil.rmtree(scratch, ignore_errors=True)
    return float(sum(n for n, _ in results) / max(elapsed for _, elapsed in results))


def measure(plan: Plan) -> list[Row]:
    rows = []
    for workers in WORKER_COUNTS:
        rates = []
        for run in range(plan.runs):
            progress(f"1. ceiling W={workers} run {run + 1}/{plan.runs}")
            rates.append(spawn_rate(workers, plan.ceiling_seconds))
        rows.append(
            Row("1", f"1. W={workers}: sh -c true spawns/s, no queue", summary(rates, "/s"))
        )
    return rows
