"""A worker draining short jobs claims several at once (SQLite): what recovery makes of
the jobs a killed worker held, from the notes it keeps in its scratch directory."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from queuectl.domain import JobState, LostRun, Outcome, OutcomeKind
from queuectl.store.sqlite import SqliteStore
from queuectl.worker.runtime import Worker
from queuectl.worker.scratch import FINISHED_FILE, RUN_FILE, Sweeper
from tests.helpers import new_job, worker_info

HOST = socket.gethostname()


def held_by_dead_worker(store: SqliteStore, count: int, host: str = HOST) -> list[str]:
    """Jobs claimed in one go by a worker whose lease then runs out."""
    store.enqueue([new_job(f"job{i}", max_retries=1) for i in range(count)])
    store.register_worker(worker_info("dead", host=host))
    claims = store.settle("dead", [], [], count).claims
    assert len(claims) == count
    store._clock.now += 61  # type: ignore[attr-defined]
    return [claim.job.id for claim in claims]


@pytest.mark.parametrize(
    ("fate", "state", "attempts", "runs"),
    [
        (None, JobState.DEAD, 1, ["worker lost"]),
        (LostRun.LOST, JobState.DEAD, 1, ["worker lost"]),
        (LostRun.NOT_STARTED, JobState.PENDING, 0, []),
        (Outcome(OutcomeKind.SUCCEEDED, exit_code=0), JobState.COMPLETED, 1, [None]),
        (Outcome(OutcomeKind.EXITED, 3, None, "exit 3"), JobState.DEAD, 1, ["exit 3"]),
    ],
)  # fmt: skip
def test_recovery_applies_what_the_recoverer_learned(
    store: SqliteStore, fate: object, state: JobState, attempts: int, runs: list[str | None]
) -> None:
    [job_id] = held_by_dead_worker(store, 1)
    recovered = store.recover_expired(60, lambda job: fate)  # type: ignore[arg-type,return-value]
    assert [job.job_id for job in recovered] == [job_id]
    job = store.get_job(job_id)
    assert job is not None and (job.state, job.attempts) == (state, attempts)
    assert [run.error for run in store.get_runs(job_id)] == runs
    if state is JobState.PENDING:  # runnable again as run 1, as if never claimed
        store.register_worker(worker_info("rescuer"))
        again = store.claim("rescuer")
        assert again is not None and (again.job.id, again.run_no) == (job_id, 1)


def test_a_dead_workers_notes_tell_ended_started_and_held_jobs_apart(
    store: SqliteStore, tmp_path: Path
) -> None:
    ended, failed, running, held = held_by_dead_worker(store, 4)
    scratch = tmp_path / "run"
    dead = scratch / "dead"
    dead.mkdir(parents=True)
    # What the worker wrote, in its own format: two runs ended, a third started.
    (dead / FINISHED_FILE).write_text(
        f'1 {ended}\n1 {failed} ["exited", 2, null, "exited with code 2"]\n1 {running} ["exi'
    )
    (dead / RUN_FILE).write_text(f"1 0 {running}\nstale bytes of a longer note")
    rescuer = Worker(lambda: store, "rescuer", scratch)
    recovered = store.recover_expired(60, rescuer._end_lost_run)
    assert sorted(job.job_id for job in recovered) == sorted([ended, failed, running, held])
    states = {job_id: store.get_job(job_id).state for job_id in (ended, failed, running, held)}  # type: ignore[union-attr]
    assert states == {
        ended: JobState.COMPLETED,  # its success was noted: recorded, not run again
        failed: JobState.DEAD,  # its failure was noted, with its own error
        running: JobState.DEAD,  # started, never ended as far as anyone knows: lost
        held: JobState.PENDING,  # never started: no attempt spent
    }
    assert [run.error for run in store.get_runs(failed)] == ["exited with code 2"]
    assert [run.error for run in store.get_runs(running)] == ["worker lost"]
    assert store.get_runs(held) == []


def test_without_notes_every_held_job_counts_as_lost(store: SqliteStore, tmp_path: Path) -> None:
    job_ids = held_by_dead_worker(store, 3)
    rescuer = Worker(lambda: store, "rescuer", tmp_path / "run")
    assert len(store.recover_expired(60, rescuer._end_lost_run)) == 3
    assert {store.get_job(job_id).state for job_id in job_ids} == {JobState.DEAD}  # type: ignore[union-attr]


def test_the_notes_of_a_worker_on_another_host_are_not_read(
    store: SqliteStore, tmp_path: Path
) -> None:
    [job_id] = held_by_dead_worker(store, 1, host="another-host")
    dead = tmp_path / "run" / "dead"
    dead.mkdir(parents=True)
    (dead / FINISHED_FILE).write_text(f"1 {job_id}\n")  # a namesake's, on this host
    rescuer = Worker(lambda: store, "rescuer", tmp_path / "run")
    fates: list[object] = []
    store.recover_expired(60, lambda job: fates.append(rescuer._end_lost_run(job)))
    assert fates == [LostRun.LOST]
    assert store.get_job(job_id).state is JobState.DEAD  # type: ignore[union-attr]


def test_a_scratch_left_without_its_run_file_is_swept_once_old(
    store: SqliteStore, tmp_path: Path
) -> None:
    """A worker killed between making its scratch and creating its run file leaves a
    directory no flock guards; the sweep removes it once it is clearly not starting."""
    scratch = tmp_path / "run"
    old, starting = scratch / "killed-at-start", scratch / "starting"
    for directory in (old, starting):
        directory.mkdir(parents=True)
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    Sweeper(str(scratch), "sweeper", store.description).sweep(set)
    assert sorted(p.name for p in scratch.iterdir()) == ["starting"]


class _SettleLog(SqliteStore):
    """The real store, noting how many jobs each settle() claimed and gave back."""

    claimed: list[int]
    released: list[int]

    def settle(self, worker_id, finished, release, claim_up_to):  # type: ignore[no-untyped-def]
        settled = super().settle(worker_id, finished, release, claim_up_to)
        self.claimed.append(len(settled.claims))
        self.released.append(len(release))
        return settled


def test_slow_jobs_are_claimed_one_by_one_and_never_claimed_ahead(tmp_path: Path) -> None:
    """Claiming the next batch while a job runs pays only after a short job: a stream of
    slow jobs would otherwise claim jobs ahead and give them back, every job."""
    path = tmp_path / "queue.db"
    logged = _SettleLog(path, durable=False)
    logged.claimed, logged.released = [], []
    logged.enqueue([new_job(f"slow{i}", "sleep 0.1") for i in range(4)])
    stores = iter([logged])
    worker = Worker(lambda: next(stores, None) or SqliteStore(path), "w-slow", tmp_path / "run")
    assert worker.run(burst=True) == 4
    assert sum(logged.released) == 0, logged.released
    assert max(logged.claimed) == 1 and sum(logged.claimed) == 4, logged.claimed
    assert logged.counts()[JobState.COMPLETED] == 4
