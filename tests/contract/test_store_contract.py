"""The store contract (docs/ARCHITECTURE.md), written against the `store` fixture only.

Every backend runs this file unchanged: no SQL, no backend imports, no injected clock.
Time-dependent behaviour uses short real leases and delays with `wait_until`.
"""

from __future__ import annotations

import multiprocessing
import socket
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from queuectl.domain import (
    Claim,
    FinishedRun,
    HeartbeatReply,
    JobState,
    Outcome,
    OutcomeKind,
    RecoveredJob,
)
from queuectl.errors import DuplicateJob, JobNotFound, WrongState
from queuectl.settings import Config
from queuectl.store import Store, open_store
from tests.helpers import (
    SUCCESS,
    claim_until_empty,
    fail,
    new_job,
    wait_until,
    worker_info,
)
from tests.stores import StoreFactory

UTC = timezone.utc
# Short enough to keep the suite fast, long enough that a polling loop never misses it.
LEASE = 0.5
HOST = socket.gethostname()


def ids(jobs: list) -> list[str]:
    return [job.id for job in jobs]


def fast_retries(store: Store, backoff_max: str = "0.05") -> None:
    """Failed jobs become runnable again almost at once."""
    store.set_config("backoff_max", backoff_max)


def no_callback(_job: RecoveredJob) -> None:
    return None


def close_to(a: datetime, b: datetime, seconds: float = 0.01) -> bool:
    return abs((a - b).total_seconds()) <= seconds


# --- enqueue and inspection -------------------------------------------------------------


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


# --- claim ------------------------------------------------------------------------------


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


# --- finish -----------------------------------------------------------------------------


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


# --- leases, recovery and fencing --------------------------------------------------------


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


# --- dead letter queue -------------------------------------------------------------------


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


# --- configuration -----------------------------------------------------------------------


def test_config_set_and_get(store: Store, store_factory: StoreFactory) -> None:
    assert store.stored_config() == {}
    assert store.config() == Config.from_stored({})
    store.set_config("max_retries", "5")
    store.set_config("backoff_base", "1.5")
    assert store.stored_config() == {"max_retries": "5", "backoff_base": "1.5"}
    assert store.config().max_retries == 5
    assert store.config().backoff_base == 1.5
    store.set_config("max_retries", "0")
    assert store.stored_config()["max_retries"] == "0"
    other = store_factory()
    assert other.stored_config() == {"max_retries": "0", "backoff_base": "1.5"}
    assert other.config().max_retries == 0


# --- workers ----------------------------------------------------------------------------


def test_worker_registration_heartbeat_stop_and_unregister(store: Store) -> None:
    info = worker_info("w1", pid=4321, host="host-a")
    store.register_worker(info)
    (listed,) = store.list_workers()
    assert (listed.id, listed.host, listed.pid) == ("w1", "host-a", 4321)
    assert listed.pid_start_time == info.pid_start_time
    assert listed.started_at == info.started_at
    assert listed.job_id is None
    assert close_to(listed.heartbeat_at, store.now(), 5)

    first_beat = listed.heartbeat_at
    assert store.heartbeat("w1") is HeartbeatReply.CONTINUE
    wait_until(
        lambda: store.heartbeat("w1") and store.list_workers()[0].heartbeat_at > first_beat,
        timeout=5,
        what="the heartbeat to advance",
    )

    store.request_stop(["w1", "no-such-worker"])
    assert store.heartbeat("w1") is HeartbeatReply.STOP
    assert store.heartbeat("w1") is HeartbeatReply.STOP

    store.unregister_worker("w1")
    assert store.list_workers() == []
    assert store.heartbeat("w1") is HeartbeatReply.UNKNOWN
    store.unregister_worker("w1")  # twice is fine

    store.register_worker(worker_info("w1"))
    assert store.heartbeat("w1") is HeartbeatReply.CONTINUE


def test_list_workers_shows_each_workers_current_job(store: Store) -> None:
    store.enqueue([new_job("a"), new_job("b")])
    store.register_worker(worker_info("w1", pid=1))
    store.register_worker(worker_info("w2", pid=2))
    store.register_worker(worker_info("w3", pid=3))
    claim_a = store.claim("w1")
    claim_b = store.claim("w2")
    assert claim_a is not None and claim_b is not None
    current = {w.id: w.job_id for w in store.list_workers()}
    assert current == {"w1": "a", "w2": "b", "w3": None}
    assert store.finish(claim_a, SUCCESS).recorded
    current = {w.id: w.job_id for w in store.list_workers()}
    assert current == {"w1": None, "w2": "b", "w3": None}


def test_request_stop_reaches_only_the_named_workers(store: Store) -> None:
    store.register_worker(worker_info("w1"))
    store.register_worker(worker_info("w2"))
    store.request_stop(["w2"])
    assert store.heartbeat("w1") is HeartbeatReply.CONTINUE
    assert store.heartbeat("w2") is HeartbeatReply.STOP


def test_a_silent_idle_worker_is_dropped_by_recovery(store: Store) -> None:
    store.register_worker(worker_info("idle"))
    wait_until(
        lambda: store.recover_expired(LEASE, no_callback) == [] and store.list_workers() == [],
        timeout=10,
        what="the idle worker to be dropped",
    )
    assert store.heartbeat("idle") is HeartbeatReply.UNKNOWN


# --- waking idle workers -----------------------------------------------------------------


def test_wait_for_jobs_wakes_up_on_an_enqueue(store: Store, store_factory: StoreFactory) -> None:
    store.register_worker(worker_info("w"))

    def produce() -> None:
        # A store belongs to the thread that opened it.
        producer = open_store(store_factory.location)
        try:
            producer.enqueue([new_job("wake")])
        finally:
            producer.close()

    timer = threading.Timer(0.2, produce)
    started = time.monotonic()
    timer.start()
    try:
        store.wait_for_jobs(10, lambda: False)
    finally:
        timer.join()
    assert time.monotonic() - started < 5
    assert store.claim("w") is not None


def test_wait_for_jobs_times_out_and_honours_should_stop(store: Store) -> None:
    started = time.monotonic()
    store.wait_for_jobs(0.2, lambda: False)
    assert 0.15 <= time.monotonic() - started < 5
    started = time.monotonic()
    store.wait_for_jobs(10, lambda: True)
    assert time.monotonic() - started < 2


# --- concurrency ------------------------------------------------------------------------

JOBS = 500
CLAIMERS = 4


def _check_each_claimed_once(store: Store, claimed: dict[str, list[str]]) -> None:
    every = [job_id for job_ids in claimed.values() for job_id in job_ids]
    duplicates = [job_id for job_id, n in Counter(every).items() if n > 1]
    assert duplicates == []
    assert sorted(every) == sorted(f"job-{i:03d}" for i in range(JOBS))
    assert store.counts()[JobState.PROCESSING] == JOBS
    for job in store.list_jobs():
        assert job.worker_id is not None and job.id in claimed[job.worker_id]


def test_concurrent_claims_in_threads(store: Store, store_factory: StoreFactory) -> None:
    store.enqueue([new_job(f"job-{i:03d}") for i in range(JOBS)])
    barrier = threading.Barrier(CLAIMERS)
    claimed: dict[str, list[str]] = {}

    def claimer(worker_id: str) -> None:
        barrier.wait(30)
        claimed[worker_id] = claim_until_empty(store_factory.location, worker_id)

    threads = [threading.Thread(target=claimer, args=(f"t{i}",)) for i in range(CLAIMERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(claimed) == CLAIMERS
    _check_each_claimed_once(store, claimed)


def test_concurrent_claims_in_processes(store: Store, store_factory: StoreFactory) -> None:
    store.enqueue([new_job(f"job-{i:03d}") for i in range(JOBS)])
    context = multiprocessing.get_context("spawn")  # no connection is carried across fork
    start = context.Event()
    results = context.Queue()
    processes = [
        context.Process(
            target=claim_in_child, args=(start, store_factory.location, f"p{i}", results)
        )
        for i in range(CLAIMERS)
    ]
    for process in processes:
        process.start()
    start.set()
    claimed = dict(results.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    _check_each_claimed_once(store, claimed)


def claim_in_child(start, location, worker_id: str, results) -> None:  # type: ignore[no-untyped-def]
    """Runs in a spawned child: wait for the start signal, then claim until empty."""
    start.wait(60)
    results.put((worker_id, claim_until_empty(location, worker_id)))


def test_release_gives_back_a_claim_that_never_started(store: Store) -> None:
    store.register_worker(worker_info("w"))
    store.enqueue([new_job("a")])
    claim = store.claim("w")
    assert claim is not None
    store.release(claim)
    job = store.get_job("a")
    assert job is not None and job.state is JobState.PENDING and job.attempts == 0
    assert store.get_runs("a") == []
    again = store.claim("w")
    assert again is not None and again.run_no == 1  # the unstarted run left no trace
    store.unregister_worker("w")
    assert store.recover_expired(60, lambda job: None) != []  # taken back as lost
    store.release(again)  # no longer held: nothing happens
    job = store.get_job("a")
    assert job is not None and job.state is JobState.FAILED and job.attempts == 1


def finished(claim: Claim, outcome: Outcome = SUCCESS) -> FinishedRun:
    return FinishedRun(claim, outcome, b"out", 3, claim.started_at, claim.started_at)


def test_settle_records_releases_and_claims_in_one_step(store: Store) -> None:
    store.register_worker(worker_info("w"))
    store.enqueue([new_job("a"), new_job("b"), new_job("c"), new_job("d")])
    store.enqueue([new_job("urgent", priority=9)])
    first = store.settle("w", [], [], store.max_claim_batch).claims
    assert [c.job.id for c in first][:2] == ["urgent", "a"][: len(first)]
    assert 1 <= len(first) <= store.max_claim_batch
    ran, *held = first
    settled = store.settle("w", [finished(ran, fail())], held, 2)
    assert settled.discarded == []
    job = store.get_job(ran.job.id)
    assert job is not None and job.state is JobState.FAILED and job.attempts == 1
    (run,) = store.get_runs(ran.job.id)
    assert run.error == "exited with code 1"
    for claim in held:  # given back: runnable again (maybe claimed again), no attempt
        again = store.get_job(claim.job.id)
        assert again is not None and again.attempts == 0
        assert [(r.n, r.finished_at) for r in store.get_runs(claim.job.id)] in ([], [(1, None)])
    # Claimed again, in the claim's order; a store may claim fewer than asked.
    assert 1 <= len(settled.claims) <= 2
    processing = {j.id for j in store.list_jobs(JobState.PROCESSING)}
    assert processing == {c.job.id for c in settled.claims}
    assert [c.run_no for c in settled.claims] == [1] * len(settled.claims)


def test_settle_records_a_batch_of_successes_but_not_the_one_taken_over(store: Store) -> None:
    store.register_worker(worker_info("w"))
    store.enqueue([new_job(name) for name in "abc"])
    claims = []
    while len(claims) < 3:
        claims += store.settle("w", [], [], 3 - len(claims)).claims
    by_id = {claim.job.id: claim for claim in claims}
    # Ran "b" as well, but meanwhile "b" was given back (fenced release by its run) and
    # claimed by another worker: its outcome is no longer "w"'s to record.
    store.settle("w", [], [by_id["b"]], 0)
    store.register_worker(worker_info("other"))
    (taken,) = store.settle("other", [], [], 1).claims
    assert taken.job.id == "b"
    runs = [
        FinishedRun(
            by_id[name],
            SUCCESS,
            name.encode() * 2,
            None,
            by_id[name].started_at + timedelta(seconds=offset),
            by_id[name].started_at + timedelta(seconds=offset + 0.5),
        )
        for offset, name in enumerate("abc")
    ]
    settled = store.settle("w", runs, [], 0)
    assert [done.claim.job.id for done in settled.discarded] == ["b"]
    for offset, name in ((0, "a"), (2, "c")):
        job = store.get_job(name)
        assert job is not None and job.state is JobState.COMPLETED and job.attempts == 1
        (run,) = store.get_runs(name)
        assert run.worker_id == "w" and run.exit_code == 0 and run.error is None
        output = store.get_output(name, 1)
        assert output is not None and (output.data, output.total_bytes) == (name.encode() * 2, 2)
        assert run.finished_at is not None
        if store.max_claim_batch > 1:
            # Batched claims start later than claimed: each run keeps the worker's own
            # times. (One claim at a time, as on PostgreSQL, records the store's clock.)
            assert close_to(run.started_at, by_id[name].started_at + timedelta(seconds=offset))
            assert close_to(run.finished_at, run.started_at + timedelta(seconds=0.5))
            assert close_to(job.updated_at, run.finished_at)
    other = store.get_job("b")
    assert other is not None and other.state is JobState.PROCESSING
    assert other.worker_id == "other" and other.attempts == 0


def test_settle_discards_outcomes_of_runs_no_longer_held(store: Store) -> None:
    store.register_worker(worker_info("w"))
    store.enqueue([new_job("a")])
    (claim,) = store.settle("w", [], [], 1).claims
    store.unregister_worker("w")
    assert store.recover_expired(60, no_callback) != []  # taken back meanwhile
    store.register_worker(worker_info("w"))
    settled = store.settle("w", [finished(claim)], [claim], 0)
    assert settled.discarded == [finished(claim)] and settled.claims == []
    job = store.get_job("a")
    assert job is not None and job.state is JobState.FAILED and job.last_error == "worker lost"
