"""12. `queuectl purge` on many finished jobs, while workers keep claiming.

The finished jobs are built in SQL (section 5's fill); then more `true` jobs
keep 2 background workers busy, and one more claimer in this process times
every claim() through the library. The purge runs as a process; its rate is
the jobs it reports purged over its wall time (those the workers completed
meanwhile included), and the claim waits are those timed while it ran: the
purge works in short batches so that claims go on.
"""

from __future__ import annotations

import re
import threading
import time

from _backends import Backend, Database
from _util import Plan, Row, number, percentile, progress, summary, write_jobs

from queuectl.store import Store
from sections.claims import NO_OP, register
from sections.scale import fill

WORKERS = 2
BASELINE_SECONDS = 1.0  # the claimer runs alone with the workers this long first
CLAIM_PAUSE = 0.002  # between one probe claim and the next: a worker spawning a job
PURGED = re.compile(r"Purged (\d+) job")


class Claimer(threading.Thread):
    """Claims and finishes no-op jobs until stopped, timing each claim()."""

    def __init__(self, db: Database) -> None:
        super().__init__(name="purge-probe")
        self.db = db
        self.waits: list[float] = []
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            store = self.db.store(durable=False)  # as a worker opens it
            try:
                # Registered with this process's pid: unregistered before `worker stop`
                # runs, which would otherwise signal this process as one of the workers.
                register(store, "w-probe")
                try:
                    self._claim_until_stopped(store)
                finally:
                    store.unregister_worker("w-probe")
            finally:
                store.close()
        except BaseException as exc:  # reported by the measuring thread
            self.error = exc

    def _claim_until_stopped(self, store: Store) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            claim = store.claim("w-probe")
            self.waits.append(time.monotonic() - started)
            if claim is None:
                return
            store.finish(claim, NO_OP, b"", 0)
            time.sleep(CLAIM_PAUSE)


def purge_run(db: Database, finished: int) -> tuple[float, list[float]]:
    """(jobs purged per second, seconds of each claim made while the purge ran)."""
    fill(db, finished, 0)
    db.cli("enqueue", "--file", str(write_jobs(db.home / "jobs.jsonl", max(finished // 5, 1000))))
    db.start_workers(WORKERS)
    claimer = Claimer(db)
    claimer.start()
    try:
        time.sleep(BASELINE_SECONDS)
        before = len(claimer.waits)
        started = time.monotonic()
        output = db.cli("purge", "--state", "completed", "--older-than", "0s").stdout
        elapsed = time.monotonic() - started
        during = claimer.waits[before:]
    finally:
        claimer.stopping.set()
        claimer.join()
    if claimer.error is not None:
        raise claimer.error
    db.stop_workers()
    match = PURGED.search(output)
    if match is None or int(match.group(1)) < finished:
        raise RuntimeError(f"purge removed fewer than the {finished} jobs: {output.strip()}")
    return int(match.group(1)) / elapsed, during


def measure(plan: Plan, backend: Backend) -> list[Row]:
    rates, count, p50, p99, worst = [], [], [], [], []
    for run in range(plan.runs):
        progress(f"12. purge {backend.name} run {run + 1}/{plan.runs}")
        with backend.fresh() as db:
            rate, waits = purge_run(db, plan.purge_jobs)
        ms = [1000 * wait for wait in waits] or [0.0]
        rates.append(rate)
        count.append(len(waits))
        p50.append(percentile(ms, 0.5))
        p99.append(percentile(ms, 0.99))
        worst.append(max(ms))
    how = f"{number(plan.purge_jobs)} finished jobs, {WORKERS} busy workers"
    return [
        Row("12", f"12. purge rate ({how})", summary(rates, "jobs/s")),
        Row("12", "12. claims timed while the purge ran", summary(count)),
        Row("12", "12. claim wait p50 during the purge", summary(p50, "ms", 1)),
        Row("12", "12. claim wait p99 during the purge", summary(p99, "ms", 1)),
        Row("12", "12. claim wait max during the purge", summary(worst, "ms", 1)),
    ]
