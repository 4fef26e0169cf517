"""The store contract, the dead letter queue: dead jobs retried one by one or all at once, and the
job states `wait` reads.

Run against every backend (tests/contract/helpers.py says how)."""

from __future__ import annotations

import pytest

from queuectl.domain import JobState
from queuectl.errors import JobNotFound, WrongState
from queuectl.store import Store
from tests.contract.helpers import fast_retries, ids
from tests.helpers import SUCCESS, fail, new_job, wait_until, worker_info


def _dead(store: Store, *job_ids: str) -> None:
    store.register_worker(worker_info("w"))
    store.enqueue([new_job(job_id, max_retries=1) for job_id in job_ids])
    for _ in job_ids:
        claim = store.claim("w")
        assert claim is not None
        assert store.finish(claim, fail()).recorded


def test_retry_dead_moves_a_job_back_to_pending(store: Store) -> None:
    store.register_worker(worker_info("w"))
    _dead(store, "d")
    before = store.get_job("d")
    assert before is not None and before.state is JobState.DEAD
    store.retry_dead(["d"])
    job = store.get_job("d")
    assert job is not None
    assert job.state is JobState.PENDING
    assert job.attempts == 0
    assert job.run_at <= store.now()
    assert job.updated_at >= before.updated_at
    assert store.list_jobs(JobState.DEAD) == []
    claim = store.claim("w")
    assert claim is not None and claim.job.id == "d"


def test_run_numbers_are_never_reused_after_a_dlq_retry(store: Store) -> None:
    store.register_worker(worker_info("w"))
    fast_retries(store)
    store.enqueue([new_job("a", max_retries=2)])
    for _ in range(2):
        claim = wait_until(lambda: store.claim("w"), timeout=10)
        assert store.finish(claim, fail()).recorded
    assert store.get_job("a").state is JobState.DEAD  # type: ignore[union-attr]
    store.retry_dead(["a"])
    claim = store.claim("w")
    assert claim is not None
    assert claim.run_no == 3
    assert store.finish(claim, SUCCESS).recorded
    job = store.get_job("a")
    assert job is not None
    assert (job.state, job.attempts) == (JobState.COMPLETED, 1)
    runs = store.get_runs("a")
    assert [run.n for run in runs] == [1, 2, 3]
    assert [run.exit_code for run in runs] == [1, 1, 0]


def test_retry_dead_of_a_missing_job(store: Store) -> None:
    with pytest.raises(JobNotFound) as caught:
        store.retry_dead(["missing"])
    assert caught.value.job_id == "missing"


def test_retry_dead_of_a_job_that_is_not_dead(store: Store) -> None:
    store.enqueue([new_job("pending")])
    with pytest.raises(WrongState, match="pending"):
        store.retry_dead(["pending"])
    assert store.get_job("pending").state is JobState.PENDING  # type: ignore[union-attr]


@pytest.mark.parametrize(("culprit", "error"), [("alive", WrongState), ("missing", JobNotFound)])
def test_retry_dead_is_all_or_nothing(store: Store, culprit: str, error: type) -> None:
    _dead(store, "d1", "d2")
    store.enqueue([new_job("alive")])
    with pytest.raises(error):
        store.retry_dead(["d1", culprit, "d2"])
    assert ids(store.list_jobs(JobState.DEAD)) == ["d1", "d2"]
    assert store.get_job("d1").attempts == 1  # type: ignore[union-attr]


def test_retry_all_dead(store: Store) -> None:
    store.register_worker(worker_info("w"))
    assert store.retry_all_dead() == []
    _dead(store, "d1", "d2", "d3")
    store.enqueue([new_job("p")])
    done = store.claim("w")
    assert done is not None and done.job.id == "p"
    assert store.finish(done, SUCCESS).recorded
    assert sorted(store.retry_all_dead()) == ["d1", "d2", "d3"]
    assert store.list_jobs(JobState.DEAD) == []
    assert {job.id: (job.state, job.attempts) for job in store.list_jobs()} == {
        "d1": (JobState.PENDING, 0),
        "d2": (JobState.PENDING, 0),
        "d3": (JobState.PENDING, 0),
        "p": (JobState.COMPLETED, 1),
    }
    assert store.retry_all_dead() == []


def test_job_states_and_unfinished_job_ids(store: Store) -> None:
    """What `wait` reads: the states of many jobs at once, and the unfinished ones."""
    store.register_worker(worker_info("w"))
    assert store.unfinished_job_ids() == []
    assert store.job_states([]) == {}
    _dead(store, "d")
    store.enqueue([new_job("done"), new_job("running"), new_job("waiting")])
    done = store.claim("w")
    assert done is not None and done.job.id == "done"
    assert store.finish(done, SUCCESS).recorded
    assert store.claim("w") is not None  # "running"
    assert store.unfinished_job_ids() == ["running", "waiting"]
    assert store.job_states(["waiting", "d", "done", "running", "nope", "a\0b"]) == {
        "waiting": JobState.PENDING,
        "d": JobState.DEAD,
        "done": JobState.COMPLETED,
        "running": JobState.PROCESSING,
    }
