"""The store interface: the queue's operations in domain terms, never SQL.

The CLI, the workers and the dashboard go through it; each backend implements
it in its own module and the same contract tests run against every backend.
Times come from the store's clock (the database clock on PostgreSQL), so
hosts whose clocks differ still agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from queuectl.domain import (
    Claim,
    Diagnostic,
    FinishedRun,
    FinishResult,
    HeartbeatReply,
    Job,
    JobState,
    LostRun,
    Outcome,
    RecoveredJob,
    Run,
    RunOutput,
    Settled,
    WorkerInfo,
)
from queuectl.settings import Config
from queuectl.spec import NewJob

# What a recoverer learned of a lost run: see Store.recover_expired.
LostRunFate = Outcome | LostRun | None


class Producer(Protocol):
    """What `queuectl enqueue` needs: a part of Store, which on SQLite opens with fewer imports.

    Methods raise queuectl.errors types only.
    """

    description: str  # where the data is, safe to print

    def close(self) -> None: ...

    def config(self) -> Config:
        """Effective settings (stored values over defaults)."""
        ...

    def enqueue(self, jobs: Sequence[NewJob]) -> list[str]:
        """Add every job or none (DuplicateJob names the first clash); durable on return."""
        ...


class Store(Producer, Protocol):
    """Everything queuectl keeps. Methods raise queuectl.errors types only."""

    # How many jobs a worker may claim at once (settle's claim_up_to); 1: one at a time.
    max_claim_batch: int

    def maintain(self) -> None:
        """Housekeeping a worker runs now and then, off its claim path (SQLite: checkpoint)."""
        ...

    def now(self) -> datetime:
        """The store's clock."""
        ...

    # --- configuration -------------------------------------------------------
    def stored_config(self) -> dict[str, str]:
        """The settings explicitly set, by canonical key."""
        ...

    def set_config(self, key: str, value: str) -> None:
        """Store an already validated canonical key and value."""
        ...

    # --- inspection ------------------------------------------------------------
    def get_job(self, job_id: str) -> Job | None: ...

    def get_runs(self, job_id: str) -> list[Run]:
        """Every attempt of the job, oldest first."""
        ...

    def get_output(self, job_id: str, run_no: int | None = None) -> RunOutput | None:
        """Output of run `run_no` (default: the latest run, finished or running)."""
        ...

    def list_jobs(self, state: JobState | None = None, limit: int | None = None) -> list[Job]:
        """Jobs in enqueue order, oldest first."""
        ...

    def job_states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """The state of each of these jobs that exists, in one query (`wait` polls many)."""
        ...

    def unfinished_job_ids(self) -> list[str]:
        """Ids of every job not in a final state, oldest first, as of one instant."""
        ...

    def counts(self) -> dict[JobState, int]:
        """Jobs per state, without scanning the jobs."""
        ...

    def next_run_at(self) -> datetime | None:
        """The earliest run_at among jobs waiting to run (pending or failed)."""
        ...

    # --- dead letter queue ----------------------------------------------------
    def retry_dead(self, job_ids: Sequence[str]) -> None:
        """Move these dead jobs to pending with attempts 0: all or none.

        JobNotFound / WrongState name the first id that cannot be retried.
        """
        ...

    def retry_all_dead(self) -> list[str]:
        """Move every dead job to pending; return their ids."""
        ...

    # --- operations ----------------------------------------------------------
    def purgeable_counts(self, states: Sequence[JobState], before: datetime) -> dict[JobState, int]:
        """How many jobs in these (final) states were last updated before `before`."""
        ...

    def purge(self, states: Sequence[JobState], before: datetime, batch_size: int) -> int:
        """Delete one batch of such jobs with their history; returns how many (0: done).

        Counters behind stats and metrics never go back: they do not count jobs.
        """
        ...

    def reclaim_space(self, max_pages: int = 2000) -> bool:
        """Give space freed by purges back to the file system, a bounded amount per call.

        True while there is more to give back (call again)."""
        ...

    def backup(self, destination: str) -> None:
        """A consistent copy of the live database (SQLite); OperationFailed where unsupported."""
        ...

    def diagnostics(self) -> list[Diagnostic]:
        """Health checks of the database for `queuectl doctor`."""
        ...

    # --- workers ---------------------------------------------------------------
    def register_worker(self, worker: WorkerInfo) -> None: ...

    def unregister_worker(self, worker_id: str) -> None: ...

    def heartbeat(self, worker_id: str) -> HeartbeatReply:
        """Renew the worker's lease and learn whether it was asked to stop."""
        ...

    def request_stop(self, worker_ids: Sequence[str]) -> None:
        """Ask workers (on any host) to finish their job and exit."""
        ...

    def list_workers(self) -> list[WorkerInfo]:
        """Registered workers, with the job each holds."""
        ...

    def wait_for_jobs(self, timeout: float, should_stop: Callable[[], bool]) -> None:
        """Sleep up to `timeout` s, returning early when the jobs may have changed.

        A cheap change check (never a write lock), so an idle worker picks up
        a new job within milliseconds at almost no cost.
        """
        ...

    def claim(self, worker_id: str) -> Claim | None:
        """Atomically take the next runnable job: priority, then run_at, then enqueue order."""
        ...

    def release(self, claim: Claim) -> None:
        """Give back a claimed job that was never started (the worker is stopping).

        It becomes runnable as before, with no attempt counted and its run number
        free again; nothing happens if the claim is no longer held.
        """
        ...

    def publish_output(self, claim: Claim, data: bytes, total_bytes: int) -> None:
        """Share a running job's output tail so `logs --follow` works from any host."""
        ...

    def finish(
        self,
        claim: Claim,
        outcome: Outcome,
        output: bytes | None = None,
        output_total: int | None = None,
        *,
        claim_next: bool = False,
    ) -> FinishResult:
        """Record the attempt's outcome, fenced: nothing is written if the lease was lost.

        With `claim_next`, also claim the worker's next job in the same transaction
        (one commit per job instead of two on the hot path).
        """
        ...

    def settle(
        self,
        worker_id: str,
        finished: Sequence[FinishedRun],
        release: Sequence[Claim],
        claim_up_to: int,
    ) -> Settled:
        """In one transaction: record `finished` outcomes (each fenced like finish()),
        give back the unstarted `release` claims, and claim up to `claim_up_to` jobs.

        The batched form of finish(claim_next=True), for a worker running many short
        jobs. A store may claim fewer than asked (PostgreSQL: at most one). A store
        that claims in batches records each run's own started_at and finished_at
        from `finished` (a held job starts later than it was claimed); one that
        claims one at a time may record its own clock at claim and at settle.
        """
        ...

    def recover_expired(
        self, lease_seconds: float, end_processes: Callable[[RecoveredJob], LostRunFate]
    ) -> list[RecoveredJob]:
        """Take back jobs whose worker stopped heart-beating: a failed attempt, "worker lost".

        `end_processes` is called for each such job before it becomes runnable
        again, so the caller can end the lost run's processes on its own host.
        What it returns says what became of the run, where the caller could tell
        (SQLite; PostgreSQL treats every run as lost): None or LostRun.LOST, a
        failed attempt; LostRun.NOT_STARTED, runnable again with no attempt; an
        Outcome, the run ended so and only its recording was lost.
        """
        ...
