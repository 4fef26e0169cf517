"""The store contract, concurrency: claimers racing for the same jobs, and a worker's batch of
claims (release, settle).

Run against every backend (tests/contract/helpers.py says how)."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from datetime import timedelta

from queuectl.domain import Claim, FinishedRun, JobState, Outcome
from queuectl.store import Store
from tests.contract.helpers import close_to, no_callback
from tests.helpers import SUCCESS, claim_until_empty, fail, new_job, worker_info
from tests.stores import StoreFactory

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
