"""The store contract, claim: which job a worker gets, in what order, and not before it is due.

Run against every backend (tests/contract/helpers.py says how)."""

from __future__ import annotations

from datetime import datetime

from queuectl.domain import JobState
from queuectl.store import Store
from tests.contract.helpers import UTC
from tests.helpers import SUCCESS, fail, new_job, wait_until, worker_info


def test_claim_of_nothing_returns_none(store: Store) -> None:
    store.register_worker(worker_info("w"))
    assert store.claim("w") is None
    store.enqueue([new_job("a")])
    assert store.claim("w") is not None
    assert store.claim("w") is None


def test_claim_order_priority_then_run_at_then_enqueue_order(store: Store) -> None:
    store.register_worker(worker_info("w"))
    past = datetime(2020, 1, 1, tzinfo=UTC)
    store.enqueue([new_job("p0-first")])
    store.enqueue([new_job("p5-now", priority=5)])
    store.enqueue([new_job("p0-due-2020", run_at=past)])
    store.enqueue([new_job("p5-due-2019", priority=5, run_at=past.replace(year=2019))])
    store.enqueue([new_job("p0-second")])
    store.enqueue([new_job("pminus-old", priority=-1, run_at=past.replace(year=2000))])
    # Same priority and run_at: enqueue order, whatever the ids sort as.
    store.enqueue([new_job("zz-tie-1", run_at=past.replace(year=2010))])
    store.enqueue([new_job("aa-tie-2", run_at=past.replace(year=2010))])
    store.enqueue([new_job("p0-batch-1"), new_job("p0-batch-0")])
    claimed = []
    while (claim := store.claim("w")) is not None:
        claimed.append(claim.job.id)
    assert claimed == [
        "p5-due-2019",
        "p5-now",
        "zz-tie-1",
        "aa-tie-2",
        "p0-due-2020",
        "p0-first",
        "p0-second",
        "p0-batch-1",
        "p0-batch-0",
        "pminus-old",
    ]


def test_new_jobs_of_one_priority_run_fifo(store: Store) -> None:
    store.register_worker(worker_info("w"))
    names = [f"job-{i:02d}" for i in reversed(range(30))]
    for name in names:
        store.enqueue([new_job(name)])
    claimed = []
    while (claim := store.claim("w")) is not None:
        claimed.append(claim.job.id)
    assert claimed == names


def test_claim_marks_the_job_and_starts_run_one(store: Store) -> None:
    store.enqueue([new_job("a")])
    store.register_worker(worker_info("w1"))
    claim = store.claim("w1")
    assert claim is not None
    assert claim.run_no == 1
    assert claim.job.id == "a"
    assert claim.job.state is JobState.PROCESSING
    assert claim.job.worker_id == "w1"
    job = store.get_job("a")
    assert job is not None
    assert job.state is JobState.PROCESSING
    assert job.worker_id == "w1"
    assert job.attempts == 0
    (run,) = store.get_runs("a")
    assert run.n == 1
    assert run.started_at == claim.started_at
    assert run.finished_at is None
    assert run.worker_id == "w1"
    assert run.exit_code is None and run.error is None


def test_future_run_at_is_not_claimed_until_due(store: Store) -> None:
    store.register_worker(worker_info("w"))
    store.enqueue(
        [new_job("soon", delay=0.4), new_job("never", run_at=datetime(2999, 1, 1, tzinfo=UTC))]
    )
    assert store.claim("w") is None
    claim = wait_until(lambda: store.claim("w"), timeout=10, what="the delayed job")
    assert claim.job.id == "soon"
    assert claim.started_at >= claim.job.run_at
    assert store.claim("w") is None
    assert store.get_job("never").state is JobState.PENDING  # type: ignore[union-attr]


def test_only_pending_and_due_failed_jobs_are_claimed(store: Store) -> None:
    store.register_worker(worker_info("w"))
    store.set_config("backoff_max", "3600")
    store.enqueue([new_job("ok"), new_job("bad"), new_job("dead", max_retries=0)])
    for outcome in (SUCCESS, fail(), fail()):
        claim = store.claim("w")
        assert claim is not None
        assert store.finish(claim, outcome).recorded
    states = {job.id: job.state for job in store.list_jobs()}
    assert states == {"ok": JobState.COMPLETED, "bad": JobState.FAILED, "dead": JobState.DEAD}
    assert store.claim("w") is None  # "bad" waits for its backoff
