"""The store contract, finish: an outcome is recorded once, a failure waits out its backoff, and
the last allowed run's failure makes the job dead.

Run against every backend (tests/contract/helpers.py says how)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from queuectl.domain import JobState, Outcome, OutcomeKind
from queuectl.store import Store
from tests.contract.helpers import UTC, close_to, fast_retries, ids
from tests.helpers import SUCCESS, fail, new_job, wait_until, worker_info


def test_finish_success(store: Store) -> None:
    store.enqueue([new_job("a")])
    store.register_worker(worker_info("w1"))
    claim = store.claim("w1")
    assert claim is not None
    assert store.finish(claim, SUCCESS).recorded is True
    job = store.get_job("a")
    assert job is not None
    assert job.state is JobState.COMPLETED
    assert job.attempts == 1
    assert job.exit_code == 0
    assert job.last_error is None
    (run,) = store.get_runs("a")
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert run.exit_code == 0 and run.signal is None and run.error is None
    assert [w.job_id for w in store.list_workers()] == [None]
    # A second report of the same run is refused and changes nothing.
    assert store.finish(claim, fail()).recorded is False
    assert store.get_job("a") == job
    assert store.get_runs("a") == [run]


def test_finish_can_claim_the_next_job_in_the_same_step(store: Store) -> None:
    store.register_worker(worker_info("w"))
    store.enqueue([new_job("a"), new_job("b")])
    first = store.claim("w")
    assert first is not None and first.job.id == "a"
    result = store.finish(first, SUCCESS, claim_next=True)
    assert result.recorded
    assert result.next_claim is not None
    assert (result.next_claim.job.id, result.next_claim.run_no) == ("b", 1)
    assert store.get_job("a").state is JobState.COMPLETED  # type: ignore[union-attr]
    assert store.get_job("b").state is JobState.PROCESSING  # type: ignore[union-attr]
    last = store.finish(result.next_claim, fail(), claim_next=True)
    assert last.recorded and last.next_claim is None
    # A stale claim records nothing, whatever it asks for.
    assert store.finish(first, SUCCESS, claim_next=True).recorded is False
    assert store.get_job("a").attempts == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(("base", "cap", "delay"), [("3", "3600", 3.0), ("10", "5", 5.0)])
def test_failure_moves_run_at_forward_by_the_backoff(
    store: Store, base: str, cap: str, delay: float
) -> None:
    store.register_worker(worker_info("w"))
    store.set_config("backoff_base", base)
    store.set_config("backoff_max", cap)
    store.enqueue([new_job("a", max_retries=3)])
    claim = store.claim("w")
    assert claim is not None
    assert store.finish(claim, fail(7)).recorded is True
    job = store.get_job("a")
    assert job is not None
    assert job.state is JobState.FAILED
    assert job.attempts == 1
    assert job.exit_code == 7
    assert job.last_error == "exited with code 7"
    assert close_to(job.run_at, job.updated_at + timedelta(seconds=delay), 0.001)
    assert store.claim("w") is None
    (run,) = store.get_runs("a")
    assert (run.exit_code, run.error) == (7, "exited with code 7")


def test_failed_job_runs_again_after_its_backoff(store: Store) -> None:
    store.register_worker(worker_info("w"))
    store.set_config("backoff_max", "0.3")
    store.enqueue([new_job("a", max_retries=3)])
    first = store.claim("w")
    assert first is not None
    assert store.finish(first, fail()).recorded
    second = wait_until(lambda: store.claim("w"), timeout=10, what="the retry")
    assert second.job.id == "a"
    assert second.run_no == 2
    assert second.started_at >= store.get_job("a").run_at  # type: ignore[union-attr]


def test_extreme_values_round_trip(store: Store) -> None:
    store.register_worker(worker_info("w"))
    top, bottom = 2**63 - 1, -(2**63)
    first = datetime(1, 1, 1, tzinfo=UTC)
    last = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    store.enqueue(
        [
            new_job("low", priority=bottom, run_at=first, max_retries=top),
            new_job("high", priority=top, run_at=last, timeout=100 * 365 * 86_400.0),
            new_job("big", "#" * (1024 * 1024), env={"K" * 100: "v" * 100_000}),
        ]
    )
    low, high, big = (store.get_job(job_id) for job_id in ("low", "high", "big"))
    assert low is not None and high is not None and big is not None
    assert (low.priority, low.run_at, low.max_retries) == (bottom, first, top)
    assert (high.priority, high.run_at) == (top, last)
    assert high.timeout == 100 * 365 * 86_400.0
    assert len(big.command) == 1024 * 1024 and big.env == {"K" * 100: "v" * 100_000}
    assert store.next_run_at() == first
    claim = store.claim("w")  # "high" is not due before 9999
    assert claim is not None and claim.job.id == "big"
    claim = store.claim("w")
    assert claim is not None and claim.job.id == "low"
    assert store.claim("w") is None


def test_signal_outcome_has_no_exit_code(store: Store) -> None:
    store.register_worker(worker_info("w"))
    store.enqueue([new_job("a")])
    claim = store.claim("w")
    assert claim is not None
    assert store.finish(claim, Outcome.from_wait_status(-9)).recorded
    job = store.get_job("a")
    assert job is not None
    assert job.state is JobState.FAILED
    assert job.exit_code is None
    assert job.last_error == "killed by signal 9"
    (run,) = store.get_runs("a")
    assert (run.exit_code, run.signal) == (None, 9)


def test_timeout_outcome_is_a_failure_with_its_error(store: Store) -> None:
    store.register_worker(worker_info("w"))
    store.enqueue([new_job("a", timeout=1)])
    claim = store.claim("w")
    assert claim is not None
    outcome = Outcome(OutcomeKind.TIMED_OUT, signal=15, error="timed out after 1s")
    assert store.finish(claim, outcome).recorded
    job = store.get_job("a")
    assert job is not None
    assert (job.state, job.last_error) == (JobState.FAILED, "timed out after 1s")


@pytest.mark.parametrize(("max_retries", "runs"), [(0, 1), (1, 1), (2, 2), (3, 3)])
def test_dead_after_max_runs(store: Store, max_retries: int, runs: int) -> None:
    store.register_worker(worker_info("w"))
    fast_retries(store)
    store.enqueue([new_job("a", max_retries=max_retries)])
    for n in range(1, runs + 1):
        claim = wait_until(lambda: store.claim("w"), timeout=10, what=f"run {n}")
        assert claim.run_no == n
        assert store.finish(claim, fail(n)).recorded
        job = store.get_job("a")
        assert job is not None
        assert job.attempts == n
        assert job.state is (JobState.DEAD if n == runs else JobState.FAILED)
    assert store.claim("w") is None
    assert [run.n for run in store.get_runs("a")] == list(range(1, runs + 1))
    assert ids(store.list_jobs(JobState.DEAD)) == ["a"]
