"""7. Claim latency under contention: 4 processes claiming and finishing no-op jobs.

No command is spawned: each process loops store.claim() / store.finish(claim_next=True)
as fast as it can, timing every call, until the queue is empty. That is far
more contention than real workers make (they spend most of their time
starting processes), so the tail here bounds the tail a worker sees.
The jobs are all enqueued before the clock starts (outside bulk loads).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from array import array
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier

from _backends import Backend
from _util import Plan, Row, number, percentile, progress, summary

from queuectl import spec
from queuectl.domain import JobState, Outcome, OutcomeKind, WorkerInfo
from queuectl.paths import DatabaseLocation
from queuectl.store import Store, open_store
from queuectl.worker import procinfo

CLAIMERS = 4
NO_OP = Outcome(kind=OutcomeKind.SUCCEEDED, exit_code=0)
ENQUEUE_BATCH = 5_000


def register(store: Store, worker_id: str) -> None:
    """Register this process as a worker, as `worker run` does, so claims look real."""
    pid = os.getpid()
    now = store.now()
    store.register_worker(
        WorkerInfo(
            id=worker_id,
            host=os.uname().nodename,
            pid=pid,
            pid_start_time=procinfo.start_time(pid) or 0,
            started_at=now,
            heartbeat_at=now,
        )
    )


def enqueue_noops(store: Store, count: int, cwd: str) -> None:
    defaults = spec.SpecDefaults(max_retries=3, timeout=0, cwd=cwd)
    for start in range(0, count, ENQUEUE_BATCH):
        size = min(ENQUEUE_BATCH, count - start)
        store.enqueue([spec.parse_job_spec({"command": "true"}, defaults) for _ in range(size)])


def _claim_loop(
    location: DatabaseLocation, worker_id: str, barrier: Barrier, results: Connection
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends us on Ctrl-C
    store = open_store(location, durable=False)  # as a worker opens it
    register(store, worker_id)
    timings = array("d")
    barrier.wait()
    started = time.perf_counter()
    claim = store.claim(worker_id)
    timings.append(time.perf_counter() - started)
    while claim is not None:
        before = time.perf_counter()
        claim = store.finish(claim, NO_OP, b"", 0, claim_next=True).next_claim
        timings.append(time.perf_counter() - before)
    store.unregister_worker(worker_id)
    store.close()
    results.send_bytes(timings.tobytes())
    results.close()


def contended_claims(location: DatabaseLocation, processes: int) -> list[float]:
    """Seconds per claim call (claim, or finish + next claim) across `processes` claimers."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(processes)
    pipes = [context.Pipe(duplex=False) for _ in range(processes)]
    claimers = [
        context.Process(target=_claim_loop, args=(location, f"w-bench{i}", barrier, send))
        for i, (_, send) in enumerate(pipes)
    ]
    timings: list[float] = []
    try:
        for claimer in claimers:
            claimer.start()
        for receive, _ in pipes:
            chunk = array("d")
            chunk.frombytes(receive.recv_bytes())
            timings += chunk
        for claimer in claimers:
            claimer.join()
    finally:
        for claimer in claimers:
            if claimer.is_alive():
                claimer.terminate()
                claimer.join()
    return timings


def measure(plan: Plan, backend: Backend) -> list[Row]:
    p50, p99, p999, worst, rates = [], [], [], [], []
    for run in range(plan.runs):
        progress(f"7. claim latency {backend.name} run {run + 1}/{plan.runs}")
        with backend.fresh() as db:
            store = db.store()
            try:
                enqueue_noops(store, plan.claim_jobs, str(db.home))
            finally:
                store.close()  # before forking: a connection is never shared across fork
            started = time.perf_counter()
            timings = contended_claims(db.location, CLAIMERS)
            elapsed = time.perf_counter() - started
            store = db.store()
            try:
                done = store.counts()[JobState.COMPLETED]
            finally:
                store.close()
            if done != plan.claim_jobs:
                raise RuntimeError(f"{done} of {plan.claim_jobs} no-op jobs completed")
        ms = [1000 * t for t in timings]
        p50.append(percentile(ms, 0.5))
        p99.append(percentile(ms, 0.99))
        p999.append(percentile(ms, 0.999))
        worst.append(max(ms))
        rates.append(plan.claim_jobs / elapsed)
    how = f"({CLAIMERS} processes, {number(plan.claim_jobs)} claims)"
    return [
        Row("7", f"7. claim p50 {how}", summary(p50, "ms", 2)),
        Row("7", f"7. claim p99 {how}", summary(p99, "ms", 2)),
        Row("7", f"7. claim p99.9 {how}", summary(p999, "ms", 2), "<= 20 ms"),
        Row("7", f"7. claim max {how}", summary(worst, "ms", 2)),
        Row("7", "7. no-op jobs claimed and finished", summary(rates, "/s")),
    ]
