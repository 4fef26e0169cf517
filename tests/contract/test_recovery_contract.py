"""The store contract, leases, recovery and fencing: a silent worker's job is taken back, and its
stale claim can no longer record anything.

Run against every backend (tests/contract/helpers.py says how)."""

from __future__ import annotations

import time

from queuectl.domain import HeartbeatReply, JobState, RecoveredJob
from queuectl.store import Store
from tests.contract.helpers import LEASE, fast_retries, no_callback
from tests.helpers import SUCCESS, fail, new_job, wait_until, worker_info
from tests.stores import StoreFactory


def test_recover_expired_takes_back_a_silent_workers_job(
    store: Store, store_factory: StoreFactory
) -> None:
    observer = store_factory()
    store.enqueue([new_job("lost"), new_job("kept")])
    store.register_worker(worker_info("silent", pid=111, host="host-silent"))
    store.register_worker(worker_info("alive", pid=222))
    lost = store.claim("silent")
    kept = store.claim("alive")
    assert lost is not None and kept is not None

    seen: list[tuple[RecoveredJob, JobState]] = []

    def end_processes(job: RecoveredJob) -> None:
        # Called before the job can run again: another connection still sees it processing.
        state = observer.get_job(job.job_id).state  # type: ignore[union-attr]
        seen.append((job, state))

    def recover() -> list[RecoveredJob]:
        store.heartbeat("alive")
        return store.recover_expired(LEASE, end_processes)

    assert store.recover_expired(LEASE, end_processes) == []  # not expired yet
    recovered = wait_until(recover, timeout=10, what="the lease to expire")
    [found] = recovered
    # The lost worker's process identity comes along, so a recoverer can tell a
    # frozen worker (alive) from a dead one.
    expected = RecoveredJob(
        "lost", 1, "silent", "host-silent", found.worker_pid, found.worker_pid_start_time
    )
    assert recovered == [expected]
    assert found.worker_pid is not None
    assert seen == [(expected, JobState.PROCESSING)]

    job = store.get_job("lost")
    assert job is not None
    assert job.state is JobState.FAILED
    assert job.attempts == 1
    assert job.last_error == "worker lost"
    assert job.exit_code is None
    (run,) = store.get_runs("lost")
    assert run.error == "worker lost"
    assert run.finished_at is not None
    # The live worker's job is untouched, the silent worker is gone.
    assert store.get_job("kept").state is JobState.PROCESSING  # type: ignore[union-attr]
    assert [w.id for w in store.list_workers()] == ["alive"]
    assert store.heartbeat("silent") is HeartbeatReply.UNKNOWN
    assert store.heartbeat("alive") is HeartbeatReply.CONTINUE
    # Nothing left to recover.
    assert store.recover_expired(LEASE, end_processes) == []


def test_worker_lost_on_the_last_run_is_dead(store: Store) -> None:
    store.enqueue([new_job("a", max_retries=1)])
    store.register_worker(worker_info("w1"))
    assert store.claim("w1") is not None
    wait_until(lambda: store.recover_expired(LEASE, no_callback), timeout=10)
    job = store.get_job("a")
    assert job is not None
    assert (job.state, job.attempts, job.last_error) == (JobState.DEAD, 1, "worker lost")


def test_recovered_job_follows_the_retry_path_with_a_new_run(store: Store) -> None:
    fast_retries(store)
    store.enqueue([new_job("a", max_retries=3)])
    store.register_worker(worker_info("w1"))
    assert store.claim("w1") is not None
    wait_until(lambda: store.recover_expired(LEASE, no_callback), timeout=10)
    store.register_worker(worker_info("w2"))
    claim = wait_until(lambda: store.claim("w2"), timeout=10, what="the retry")
    assert claim.run_no == 2
    assert store.finish(claim, SUCCESS).recorded
    job = store.get_job("a")
    assert job is not None
    assert (job.state, job.attempts) == (JobState.COMPLETED, 2)
    runs = store.get_runs("a")
    assert [(r.n, r.worker_id, r.error) for r in runs] == [
        (1, "w1", "worker lost"),
        (2, "w2", None),
    ]


def test_fencing_a_stale_claim_cannot_record_an_outcome(store: Store) -> None:
    fast_retries(store)
    store.enqueue([new_job("a", max_retries=5)])
    store.register_worker(worker_info("frozen"))
    stale = store.claim("frozen")
    assert stale is not None
    wait_until(lambda: store.recover_expired(LEASE, no_callback), timeout=10)
    after_recovery = store.get_job("a")
    runs_after_recovery = store.get_runs("a")

    # Frozen worker wakes up and reports: refused, nothing changes.
    assert store.finish(stale, SUCCESS).recorded is False
    assert store.get_job("a") == after_recovery
    assert store.get_runs("a") == runs_after_recovery

    # Another worker takes the job over; the stale claim still cannot write.
    store.register_worker(worker_info("other"))
    current = wait_until(lambda: store.claim("other"), timeout=10, what="the retry")
    assert store.finish(stale, fail()).recorded is False
    assert store.get_job("a").state is JobState.PROCESSING  # type: ignore[union-attr]
    assert store.finish(current, SUCCESS).recorded is True
    assert store.get_job("a").state is JobState.COMPLETED  # type: ignore[union-attr]


def test_fencing_holds_when_the_same_worker_claims_the_job_again(store: Store) -> None:
    fast_retries(store)
    store.enqueue([new_job("a", max_retries=5)])
    store.register_worker(worker_info("w"))
    stale = store.claim("w")
    assert stale is not None
    wait_until(lambda: store.recover_expired(LEASE, no_callback), timeout=10)
    store.register_worker(worker_info("w"))
    current = wait_until(lambda: store.claim("w"), timeout=10, what="the retry")
    assert current.run_no == stale.run_no + 1
    assert store.finish(stale, SUCCESS).recorded is False
    assert store.finish(current, fail(4)).recorded is True
    assert store.get_job("a").exit_code == 4  # type: ignore[union-attr]


def test_a_heartbeating_worker_keeps_its_job(store: Store) -> None:
    store.enqueue([new_job("a")])
    store.register_worker(worker_info("w"))
    claim = store.claim("w")
    assert claim is not None
    deadline = time.monotonic() + 3 * LEASE
    while time.monotonic() < deadline:
        assert store.heartbeat("w") is HeartbeatReply.CONTINUE
        assert store.recover_expired(LEASE, no_callback) == []
        time.sleep(LEASE / 6)
    assert store.finish(claim, SUCCESS).recorded is True
