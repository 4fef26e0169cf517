"""Crash recovery and fencing, with real workers SIGKILLed and SIGSTOPped.

lease_seconds is 2 and poll_interval 0.2 here, so a lost job must be back in
the queue within about 2.2 s of its worker's last heartbeat.
"""

from __future__ import annotations

import os
import signal
import time

from queuectl.domain import JobState
from queuectl.paths import resolve_database
from queuectl.store import open_store
from tests.e2e.worker_helpers import (
    FAST_CONFIG,
    Queue,
    epoch,
    group_members,
    is_running,
    sleepers,
    stream_lines,
    unique_token,
)
from tests.helpers import SUCCESS, fail, new_job, wait_until, worker_info

LEASE = float(FAST_CONFIG["lease_seconds"])
POLL = float(FAST_CONFIG["poll_interval"])
# Scheduling slack on a loaded two-CPU machine, on top of lease + one poll.
MARGIN = 1.5


def _worker_id(queue: Queue, pid: int) -> str:
    return str(next(w["id"] for w in queue.status()["workers"] if w["pid"] == pid))


def _processing_by(queue: Queue, job_id: str, worker_id: str) -> bool:
    job = queue.job(job_id)
    return bool(job["state"] == "processing" and job["worker_id"] == worker_id)


def test_sigkilled_worker_job_is_recovered_and_its_processes_ended_first(queue: Queue) -> None:
    queue.configure(backoff_base=2)  # 2 s in `failed`: long enough to see it there
    token = unique_token()
    runs_log = queue.files / "runs"
    leftovers = queue.files / "leftovers"
    command = (
        f'echo "$QUEUECTL_ATTEMPT $$" >> {runs_log}; '
        # `$s`: the script's own command line must not match the pgrep pattern.
        f'if [ "$QUEUECTL_ATTEMPT" = 1 ]; then s=sleep; $s 61.{token} & $s 60.{token}; '
        f"else pgrep -f 'sleep 6[01][.]{token}' > {leftovers}; true; fi"
    )
    job_id = queue.enqueue(command, max_retries=3)
    [victim] = queue.start(1)
    victim_id = _worker_id(queue, victim)
    queue.wait(lambda: len(sleepers(token)) == 2, 10, "the job's two sleeps")
    leader = int(stream_lines(runs_log)[0].split()[1])

    os.kill(victim, signal.SIGKILL)
    killed_at = time.time()
    wait_until(lambda: not is_running(victim), timeout=5)
    [rescuer] = queue.start(1)

    job = queue.wait_job(job_id, ("failed", "pending"), timeout=LEASE + POLL + 5)
    assert job["last_error"] == "worker lost"
    assert job["attempts"] == 1
    lost = job["runs"][0]
    assert (lost["n"], lost["error"], lost["worker_id"]) == (1, "worker lost", victim_id)
    assert epoch(lost["finished_at"]) - killed_at <= LEASE + POLL + MARGIN
    assert group_members(leader) == [], "the lost run's processes outlived its recovery"
    assert sleepers(token) == []

    done = queue.wait_job(job_id, "completed", timeout=10)
    assert [run["n"] for run in done["runs"]] == [1, 2]
    assert done["runs"][1]["worker_id"] == _worker_id(queue, rescuer)
    assert leftovers.read_text() == "", "run 2 started while run 1's processes still ran"
    assert queue.counts()["processing"] == 0
    assert queue.worker_pids() == [rescuer]


def test_a_busy_worker_recovers_the_job_of_a_killed_one(queue: Queue) -> None:
    token = unique_token()
    leader_file = queue.files / "leader"
    [busy] = queue.start(1)
    busy_id = _worker_id(queue, busy)
    long_job = queue.enqueue(f"sleep 30.{token}")
    queue.wait(lambda: _processing_by(queue, long_job, busy_id), 10, "the long job on A")

    [victim] = queue.start(1)
    victim_id = _worker_id(queue, victim)
    lost_job = queue.enqueue(f"echo $$ > {leader_file}; sleep 60.{token}", max_retries=1)
    queue.wait(lambda: _processing_by(queue, lost_job, victim_id), 10, "the second job on B")
    queue.wait(lambda: leader_file.exists() and leader_file.read_text(), 5, "B's job to start")

    os.kill(victim, signal.SIGKILL)
    killed_at = time.time()
    job = queue.wait_job(lost_job, "dead", timeout=LEASE + POLL + 5)
    assert job["last_error"] == "worker lost"
    assert epoch(job["runs"][0]["finished_at"]) - killed_at <= LEASE + POLL + MARGIN
    assert group_members(int(leader_file.read_text())) == []
    # The only live worker did it, without leaving its own job.
    assert _processing_by(queue, long_job, busy_id)
    assert queue.worker_pids() == [busy]
    assert queue.counts()["processing"] == 1


def test_fencing_a_recovered_claim_cannot_record_its_outcome(queue: Queue) -> None:
    store = open_store(resolve_database())
    try:
        store.enqueue([new_job("fenced", "true", max_retries=3)])
        store.register_worker(worker_info("w-frozen"))
        stale = store.claim("w-frozen")
        assert stale is not None and stale.run_no == 1
        store.unregister_worker("w-frozen")  # as if recovered as lost: its lease is void
        [recovered] = store.recover_expired(LEASE, lambda job: None)
        assert (recovered.job_id, recovered.run_no) == ("fenced", 1)

        # The job is back in the queue: the frozen worker's late outcome is discarded.
        assert not store.finish(stale, SUCCESS).recorded
        job = store.get_job("fenced")
        assert job is not None
        assert (job.state, job.attempts, job.last_error) == (JobState.FAILED, 1, "worker lost")

        # Another worker holds it now: still discarded, and the new claim is kept.
        store.register_worker(worker_info("w-new"))
        fresh = wait_until(lambda: store.claim("w-new"), timeout=5)
        assert fresh is not None and fresh.run_no == 2
        assert not store.finish(stale, fail(9)).recorded
        job = store.get_job("fenced")
        assert job is not None
        assert (job.state, job.worker_id) == (JobState.PROCESSING, "w-new")

        assert store.finish(fresh, SUCCESS).recorded
        runs = store.get_runs("fenced")
        assert [(r.n, r.error, r.exit_code) for r in runs] == [
            (1, "worker lost", None),
            (2, None, 0),
        ]
        job = store.get_job("fenced")
        assert job is not None and job.state is JobState.COMPLETED
    finally:
        store.close()


def test_fencing_a_frozen_worker_cannot_overwrite_the_run_that_took_over(queue: Queue) -> None:
    log = queue.files / "log"
    job_id = queue.enqueue(
        f'echo "start $QUEUECTL_ATTEMPT" >> {log}; sleep 3; echo "end $QUEUECTL_ATTEMPT" >> {log}'
    )
    [frozen] = queue.start(1)
    frozen_id = _worker_id(queue, frozen)
    queue.wait(lambda: stream_lines(log) == ["start 1"], 10, "run 1 to start")
    os.kill(frozen, signal.SIGSTOP)
    try:
        [rescuer] = queue.start(1)
        rescuer_id = _worker_id(queue, rescuer)
        queue.wait(lambda: _processing_by(queue, job_id, rescuer_id), 15, "run 2 on B")
        assert queue.job(job_id)["runs"][0]["error"] == "worker lost"
    finally:
        os.kill(frozen, signal.SIGCONT)

    # Woken, the frozen worker finds its run ended and tries to record that outcome.
    frozen_log = queue.home / "logs" / f"worker-{frozen_id}.log"
    queue.wait(lambda: "discarded" in frozen_log.read_text(), 10, "A to discard its outcome")
    job = queue.job(job_id)
    assert (job["state"], job["worker_id"], job["attempts"]) == ("processing", rescuer_id, 1)
    assert job["runs"][0]["error"] == "worker lost"

    done = queue.wait_job(job_id, "completed", timeout=10)
    assert done["attempts"] == 2
    assert [(r["n"], r["error"], r["worker_id"]) for r in done["runs"]] == [
        (1, "worker lost", frozen_id),
        (2, None, rescuer_id),
    ]
    assert stream_lines(log) == ["start 1", "start 2", "end 2"]
    assert is_running(frozen), "the frozen worker should carry on after it lost its lease"


def test_a_worker_that_lost_its_lease_keeps_working_afterwards(queue: Queue) -> None:
    token = unique_token()
    lost = queue.enqueue(f"sleep 30.{token}", max_retries=1)
    [frozen] = queue.start(1)
    queue.wait_job(lost, "processing")
    os.kill(frozen, signal.SIGSTOP)
    try:
        [rescuer] = queue.start(1)
        assert queue.wait_job(lost, "dead", timeout=10)["last_error"] == "worker lost"
        os.kill(rescuer, signal.SIGTERM)  # leave the next job to the frozen worker
        wait_until(lambda: not is_running(rescuer), timeout=10)
    finally:
        os.kill(frozen, signal.SIGCONT)

    follower = queue.enqueue("true")
    queue.wait(
        lambda: queue.job(follower)["state"] == "completed" or not is_running(frozen),
        10,
        "the follower to complete (or the worker to die)",
    )
    assert is_running(frozen), "the worker died on its next job"
    assert queue.job(follower)["state"] == "completed"
