"""The store contract, enqueue and inspection: what goes in comes out, a batch is all or nothing,
and lists, counts and the next due time follow every transition.

Run against every backend (tests/contract/helpers.py says how)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from queuectl.domain import JobState
from queuectl.errors import DuplicateJob
from queuectl.store import Store
from tests.contract.helpers import UTC, close_to, fast_retries, ids
from tests.helpers import SUCCESS, fail, new_job, worker_info


def test_enqueue_and_get_round_trip_every_field(store: Store) -> None:
    run_at = datetime(2031, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
    command = "echo 'ü €' \"$HOME\"; exit 3\n# a second line"
    env = {"A": "1", "SECRET": "s3cr3t ü", "EMPTY": ""}
    before = store.now()
    returned = store.enqueue(
        [
            new_job(
                "full",
                command,
                max_retries=7,
                priority=-3,
                run_at=run_at,
                timeout=12.5,
                cwd="/srv/dir with spaces",
                env=env,
            )
        ]
    )
    after = store.now()
    assert returned == ["full"]
    job = store.get_job("full")
    assert job is not None
    assert job.id == "full"
    assert job.command == command
    assert job.state is JobState.PENDING
    assert job.attempts == 0
    assert job.max_retries == 7
    assert job.priority == -3
    assert job.run_at == run_at
    assert job.timeout == 12.5
    assert job.cwd == "/srv/dir with spaces"
    assert job.env == env
    assert before <= job.created_at <= after
    assert job.updated_at == job.created_at
    assert job.exit_code is None
    assert job.last_error is None
    assert job.worker_id is None
    assert job.runs_total == 0
    assert store.get_runs("full") == []


def test_enqueue_defaults_run_now(store: Store) -> None:
    store.enqueue([new_job("now")])
    job = store.get_job("now")
    assert job is not None
    assert close_to(job.run_at, job.created_at, 1.0)
    assert job.run_at <= store.now()


def test_enqueue_with_delay_sets_run_at_from_the_store_clock(store: Store) -> None:
    store.enqueue([new_job("later", delay=90.5)])
    job = store.get_job("later")
    assert job is not None
    assert close_to(job.run_at, job.created_at + timedelta(seconds=90.5))


def test_get_missing_job(store: Store) -> None:
    assert store.get_job("missing") is None
    assert store.get_runs("missing") == []


@pytest.mark.parametrize(
    "job_id",
    [
        "a'b;\"c",
        "Robert');DROP/**/TABLE/**/jobs;--",
        "日本語のジョブ",
        "🚀",
        "%_",
        "back\\slash",
        "x" * 200,
    ],
)
def test_odd_ids_round_trip_everywhere(store: Store, job_id: str) -> None:
    store.enqueue([new_job("%"), new_job(job_id, max_retries=1)])
    job = store.get_job(job_id)
    assert job is not None and job.id == job_id
    assert ids(store.list_jobs()) == ["%", job_id]
    store.register_worker(worker_info("w"))
    store.register_worker(worker_info("other"))
    store.claim("other")  # "%" first
    claim = store.claim("w")
    assert claim is not None and claim.job.id == job_id
    assert {w.id: w.job_id for w in store.list_workers()} == {"w": job_id, "other": "%"}
    assert store.finish(claim, fail()).recorded
    assert ids(store.list_jobs(JobState.DEAD)) == [job_id]
    assert [run.n for run in store.get_runs(job_id)] == [1]
    store.retry_dead([job_id])
    assert store.get_job(job_id).state is JobState.PENDING  # type: ignore[union-attr]
    assert store.get_job("%").state is JobState.PROCESSING  # type: ignore[union-attr]


def test_batch_is_all_or_nothing_when_an_id_exists(store: Store) -> None:
    store.enqueue([new_job("a")])
    with pytest.raises(DuplicateJob) as caught:
        store.enqueue([new_job("a"), new_job("b"), new_job("c")])
    assert caught.value.job_id == "a"
    with pytest.raises(DuplicateJob):
        store.enqueue([new_job("b"), new_job("c"), new_job("a")])
    assert ids(store.list_jobs()) == ["a"]
    assert store.counts()[JobState.PENDING] == 1


def test_batch_with_a_duplicate_inside_writes_nothing(store: Store) -> None:
    with pytest.raises(DuplicateJob):
        store.enqueue([new_job("x"), new_job("y"), new_job("x")])
    assert store.list_jobs() == []
    assert sum(store.counts().values()) == 0


def test_duplicate_error_names_the_clashing_id(store: Store) -> None:
    store.enqueue([new_job("taken")])
    with pytest.raises(DuplicateJob) as caught:
        store.enqueue([new_job("fresh"), new_job("taken")])
    assert caught.value.job_id == "taken"


def test_list_is_in_enqueue_order_with_state_and_limit(store: Store) -> None:
    store.register_worker(worker_info("w"))
    for job_id in ("z", "a", "m"):
        store.enqueue([new_job(job_id)])
    store.enqueue([new_job("q"), new_job("b")])
    # a run_at in the past does not move a job in the list: the list is enqueue order
    store.enqueue([new_job("early", run_at=datetime(2000, 1, 1, tzinfo=UTC))])
    order = ["z", "a", "m", "q", "b", "early"]
    assert ids(store.list_jobs()) == order
    assert ids(store.list_jobs(limit=2)) == ["z", "a"]
    assert ids(store.list_jobs(limit=100)) == order
    assert store.list_jobs(limit=0) == []
    claim = store.claim("w")
    assert claim is not None and claim.job.id == "early"
    assert ids(store.list_jobs(JobState.PROCESSING)) == ["early"]
    assert ids(store.list_jobs(JobState.PENDING)) == order[:-1]
    assert ids(store.list_jobs(JobState.PENDING, limit=3)) == ["z", "a", "m"]
    assert store.list_jobs(JobState.DEAD) == []


def test_counts_follow_every_transition(store: Store) -> None:
    store.register_worker(worker_info("w"))
    assert store.counts() == {state: 0 for state in JobState}
    fast_retries(store)
    store.enqueue([new_job(f"j{i}", max_retries=1 if i == 3 else 3) for i in range(5)])
    assert store.counts()[JobState.PENDING] == 5
    claims = [store.claim("w") for _ in range(4)]
    assert all(claims)
    assert store.finish(claims[0], SUCCESS).recorded  # type: ignore[arg-type]
    assert store.finish(claims[1], fail()).recorded  # type: ignore[arg-type]
    assert store.finish(claims[3], fail()).recorded  # type: ignore[arg-type]  (j3: one run -> dead)
    expected = {
        JobState.PENDING: 1,
        JobState.PROCESSING: 1,
        JobState.COMPLETED: 1,
        JobState.FAILED: 1,
        JobState.DEAD: 1,
    }
    assert store.counts() == expected
    assert sum(expected.values()) == len(store.list_jobs())
    assert len(store.retry_all_dead()) == 1
    assert store.counts()[JobState.DEAD] == 0
    assert store.counts()[JobState.PENDING] == 2


def test_next_run_at(store: Store) -> None:
    store.register_worker(worker_info("w"))
    assert store.next_run_at() is None
    later = datetime(2040, 1, 1, tzinfo=UTC)
    store.enqueue([new_job("later", run_at=later)])
    assert store.next_run_at() == later
    store.enqueue([new_job("sooner", run_at=datetime(2035, 1, 1, tzinfo=UTC))])
    assert store.next_run_at() == datetime(2035, 1, 1, tzinfo=UTC)
    store.enqueue([new_job("now")])
    claim = store.claim("w")
    assert claim is not None and claim.job.id == "now"
    # a processing job is not waiting to run
    assert store.next_run_at() == datetime(2035, 1, 1, tzinfo=UTC)
