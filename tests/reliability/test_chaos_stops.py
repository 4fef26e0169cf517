"""Chaos with graceful stops: SIGTERM to a random busy worker (its job outlasting the
2 s lease, another worker ready to recover it) mixed with SIGKILLs, each worker
replaced; on PostgreSQL the workers are spread over two hosts (QUEUECTL_HOSTNAME).

Afterwards: every job completed; a run recorded as "worker lost" belongs to a worker
that was SIGKILLed (a graceful stop never loses its job); a job ran more than once
only after such a run; and no two runs of a job overlapped, because a stopping
worker keeps its lease and a killed worker's watchdog ends its job at once.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import time
from collections import defaultdict

from queuectl.domain import JobState
from queuectl.store import Store
from tests.e2e.worker_helpers import Queue, is_running
from tests.reliability.helpers import (
    SOAK,
    cli_database,
    enqueue_file,
    log_problems,
    popen_cli,
    report,
)
from tests.stores import StoreFactory

JOBS = 600 if SOAK else 120
WORKERS = 4
CHAOS_SECONDS = 120.0 if SOAK else 18.0
ACTION_EVERY = 0.6
SETTINGS = {"lease_seconds": "2", "poll_interval": "0.2", "backoff_base": "1", "max_retries": "20"}
# Each run appends its start and, unless killed, its end, with the time (date +%s.%N).
COMMAND = (
    'echo "$QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT start $(date +%s.%N)" >> {out}; sleep {seconds}; '
    'echo "$QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT end $(date +%s.%N)" >> {out}'
)
LOST = "worker lost"


def _done(store: Store) -> bool:
    return store.counts()[JobState.COMPLETED] == JOBS


def test_graceful_stops_and_kills_nothing_lost_nothing_overlapping(
    queue: Queue, store_factory: StoreFactory
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    store = store_factory()
    for key, value in SETTINGS.items():
        store.set_config(key, value)
    postgres = store_factory.backend == "postgresql"
    hosts = ["host-a", "host-b"] if postgres else [os.uname().nodename]
    base_env = {"QUEUECTL_DB": cli_database(store_factory.location)}
    out = queue.files / "runs"
    specs = [
        {"id": f"g{n:04d}", "command": COMMAND.format(out=out, seconds=rng.choice((0.1, 0.4, 2.5)))}
        for n in range(JOBS)
    ]
    enqueue_file(queue, specs, base_env)
    log = queue.files / "starters.log"
    starters: list[subprocess.Popen[bytes]] = []

    def start(host: str) -> None:
        env = {**base_env, "QUEUECTL_HOSTNAME": host}
        starters.append(popen_cli(queue.home, "worker", "start", output=log, env=env))

    killed_ids: set[str] = set()
    stopped_ids: set[str] = set()
    stopping: list[int] = []
    began = time.monotonic()
    try:
        for n in range(WORKERS):
            start(hosts[n % len(hosts)])
        while time.monotonic() - began < CHAOS_SECONDS and not _done(store):
            time.sleep(ACTION_EVERY)
            stopping = [pid for pid in stopping if is_running(pid)]
            # Workers registered a while ago only: `worker start` checks that each is still
            # up half a second after it registered, and one killed sooner fails it.
            now = store.now()
            workers = [
                w
                for w in store.list_workers()
                if is_running(w.pid)
                and w.pid not in stopping
                and (now - w.started_at).total_seconds() > 1.0
            ]
            busy = [w for w in workers if w.job_id is not None]
            if busy and rng.random() < 0.6:
                victim = rng.choice(busy)
                os.kill(victim.pid, signal.SIGTERM)
                stopping.append(victim.pid)
                stopped_ids.add(victim.id)
            elif workers:
                victim = rng.choice(workers)
                os.kill(victim.pid, signal.SIGKILL)
                killed_ids.add(victim.id)
            else:
                continue
            start(victim.host)  # the replacement, on the victim's host
        for starter in starters:
            assert starter.wait(timeout=60) == 0, log.read_text()
        try:
            queue.wait(lambda: _done(store), 120, "every job to complete")
        except AssertionError as exc:
            raise AssertionError(f"{str(exc)[-2000:]}\ncounts {store.counts()}") from None
        queue.cli("worker", "stop", "--timeout", "60", env={**base_env}, timeout=90)
        for host in hosts[1:]:
            env = {**base_env, "QUEUECTL_HOSTNAME": host}
            queue.cli("worker", "stop", "--timeout", "60", env=env, timeout=90)
        runs = {spec["id"]: store.get_runs(spec["id"]) for spec in specs}
    finally:
        for starter in starters:
            if starter.poll() is None:
                starter.kill()
                starter.wait()

    times: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for line in out.read_text().splitlines():
        job_id, run_no, what, when = line.split()
        assert what not in times[(job_id, int(run_no))], f"{line}: appended twice"
        times[(job_id, int(run_no))][what] = float(when)

    lost_by_stop = []
    unexplained = []
    overlaps = []
    run_more_than_once = 0
    for job_id, job_runs in runs.items():
        for run in job_runs:
            if run.error == LOST and run.worker_id not in killed_ids:
                lost_by_stop.append((job_id, run.n, run.worker_id))
            elif run.error is not None and run.error != LOST:
                unexplained.append((job_id, run.n, run.error))
        if len(job_runs) > 1:
            run_more_than_once += 1
        started = sorted(
            (marks["start"], marks.get("end"), n)
            for (other, n), marks in times.items()
            if other == job_id
        )
        for (_start_a, end_a, n_a), (start_b, _end_b, n_b) in itertools.pairwise(started):
            # A run killed with its worker has no end: it ended before its recovery,
            # which the next run's start follows.
            if end_a is not None and end_a > start_b:
                overlaps.append((job_id, n_a, n_b))
    assert lost_by_stop == [], "a gracefully stopped worker lost its job"
    assert unexplained == []
    assert overlaps == [], "two runs of a job overlapped"
    assert stopped_ids, "the chaos never stopped a busy worker"
    assert log_problems(queue.home, ("Traceback",)) == []
    report(
        f"chaos-stops-{store_factory.backend}",
        {
            "seed": seed,
            "jobs": JOBS,
            "hosts": hosts,
            "graceful_stops": len(stopped_ids),
            "kills": len(killed_ids),
            "jobs_run_more_than_once": run_more_than_once,
            "runs_lost_with_killed_workers": sum(
                run.error == LOST for job_runs in runs.values() for run in job_runs
            ),
        },
    )
