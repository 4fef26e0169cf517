"""The PostgreSQL store: one queue shared by workers on many machines.

Same semantics as the SQLite store, with PostgreSQL's tools: a claim is one
`UPDATE ... WHERE seq = (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING`
statement, and a finish with the next claim is one more; idle workers LISTEN
for the NOTIFY the jobs triggers send; every time (run_at, leases, heartbeats,
backoff) is the database's clock, so hosts whose clocks differ still agree.
Operations survive a dropped connection (postgres_connection.Link); the
queries live in postgres_queries.py. Imported only for postgresql:// URLs.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from queuectl.domain import (
    FINAL_STATES,
    Claim,
    FinishedRun,
    FinishResult,
    HeartbeatReply,
    Job,
    JobState,
    Outcome,
    OutcomeKind,
    RecoveredJob,
    Run,
    RunOutput,
    Settled,
    WorkerInfo,
)
from queuectl.errors import DuplicateJob, InvalidInput, JobNotFound, StoreUnavailable, WrongState
from queuectl.retry import decide_after_failure
from queuectl.settings import Config
from queuectl.spec import NewJob
from queuectl.store import postgres_queries as q
from queuectl.store.base import LostRunFate
from queuectl.store.postgres_connection import (
    RECONNECT_GIVE_UP,
    Applied,
    Connection,
    Link,
    connect,
)
from queuectl.store.postgres_insights import PostgresInsights
from queuectl.store.postgres_maintenance import PostgresMaintenance
from queuectl.store.postgres_schema import LISTEN_CHANNEL_QUERY, migrate

log = logging.getLogger("queuectl.store")

# An idle worker checks should_stop this often while it waits for a notification.
_STOP_CHECK_INTERVAL = 0.25
# Settings are re-read at most this often by a long-lived connection.
_CONFIG_TTL = 2.0
# Counter deltas are folded together at most this often per store...
_COMPACT_INTERVAL = 10.0
# ... or when `counts` had to add up more rows than this.
_COMPACT_ROWS = 1000
# Jobs per INSERT in a bulk enqueue (all in one transaction).
_ENQUEUE_CHUNK = 5000
# QUEUECTL_PG_LISTEN=0: idle workers poll every poll_interval instead of LISTENing (to
# measure what NOTIFY buys, or where LISTEN is unwelcome). See docs/DECISIONS.md.
LISTEN_VARIABLE = "QUEUECTL_PG_LISTEN"
# After the listening connection failed to open, the next try waits this long, doubling
# up to the cap: a server out of connections is not asked again at every idle wait.
_LISTEN_RETRY_FIRST = 1.0
_LISTEN_RETRY_MAX = 60.0


class PostgresStore(PostgresInsights, PostgresMaintenance):
    """The store on one PostgreSQL database. Create one per thread.

    Every commit is synchronous, workers' too (unlike SQLite's durable=False): the
    server can crash while the workers live on, and a forgotten finish would leave
    its job `processing` under a live worker, never recovered.
    """

    # One job at a time: PostgreSQL's claim is one round trip, and a lost worker's
    # jobs are recovered from any host, where its notes of what it started are unseen.
    max_claim_batch = 1

    def __init__(
        self,
        dsn: str,
        *,
        display_url: str,
        give_up_after: float | None = RECONNECT_GIVE_UP,
        stop_waiting: Callable[[], bool] | None = None,
    ) -> None:
        """`give_up_after` and `stop_waiting`: how long an operation waits for a lost
        connection to come back (see postgres_connection.Link)."""
        self.description = display_url
        self._dsn = dsn
        self._url = display_url
        self._config: Config | None = None
        self._config_read_at = 0.0
        self._compacted_at = time.monotonic()
        self._listener: Connection | None = None
        self._use_listen = os.environ.get(LISTEN_VARIABLE, "1").strip() != "0"
        self._listen_retry_at = 0.0  # time.monotonic()
        self._listen_retry_delay = 0.0
        self._link = Link(dsn, display_url, give_up_after=give_up_after, stop_waiting=stop_waiting)
        try:
            self._link.run(lambda conn: migrate(conn, display_url))
        except BaseException:
            self._link.close()
            raise

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._link.close()

    def maintain(self) -> None:
        """Fold the per-state counter deltas and the run total deltas together now and then."""
        if time.monotonic() - self._compacted_at >= _COMPACT_INTERVAL:
            self._compact_counts()

    def _compact_counts(self) -> None:
        self._link.run(lambda conn: conn.execute(q.COMPACT_COUNTS))
        self._link.run(lambda conn: conn.execute(q.COMPACT_RUN_TOTALS))
        self._compacted_at = time.monotonic()

    def now(self) -> datetime:
        moment: datetime = self._link.run(lambda conn: _one(conn, q.NOW)[0])
        return moment

    # --- configuration ------------------------------------------------------------
    def stored_config(self) -> dict[str, str]:
        return self._link.run(lambda conn: dict(conn.execute(q.STORED_CONFIG).fetchall()))

    def config(self) -> Config:
        moment = time.monotonic()
        if self._config is None or moment - self._config_read_at > _CONFIG_TTL:
            self._config = Config.from_stored(self.stored_config())
            self._config_read_at = moment
        return self._config

    def set_config(self, key: str, value: str) -> None:
        self._link.run(lambda conn: conn.execute(q.SET_CONFIG, (key, value)))
        self._config = None

    # --- producers ------------------------------------------------------------------
    def enqueue(self, jobs: Sequence[NewJob]) -> list[str]:
        job_ids = [job.id for job in jobs]
        if not job_ids:
            return []

        def insert(conn: Connection) -> list[str]:
            try:
                with self._link.transaction(conn):
                    for start in range(0, len(jobs), _ENQUEUE_CHUNK):
                        chunk = jobs[start : start + _ENQUEUE_CHUNK]
                        conn.execute(q.ENQUEUE, _enqueue_columns(chunk))
            except psycopg.errors.UniqueViolation:
                raise DuplicateJob(_first_clash(conn, job_ids)) from None
            except psycopg.DataError as exc:
                if "NUL" in str(exc):
                    raise InvalidInput("a job field contains a NUL character") from None
                raise
            return job_ids

        def committed(conn: Connection) -> Applied[list[str]] | None:
            # COMMIT was sent, so the INSERT had found every id free: if they all exist
            # now, they are this batch's.
            stored = _one(conn, q.COUNT_IDS, (job_ids,))[0]
            return Applied(job_ids) if stored == len(set(job_ids)) else None

        return self._link.run(insert, committed)

    # --- inspection -------------------------------------------------------------------
    def get_job(self, job_id: str) -> Job | None:
        if "\0" in job_id:  # PostgreSQL text cannot hold one: no such job
            return None
        row = self._link.run(lambda conn: conn.execute(q.GET_JOB, (job_id,)).fetchone())
        return _job_from_row(row) if row else None

    def get_runs(self, job_id: str) -> list[Run]:
        if "\0" in job_id:
            return []
        rows = self._link.run(lambda conn: conn.execute(q.GET_RUNS, (job_id, job_id)).fetchall())
        return [Run(*row) for row in rows]

    def get_output(self, job_id: str, run_no: int | None = None) -> RunOutput | None:
        if "\0" in job_id:
            return None
        return self._link.run(lambda conn: _read_output(conn, job_id, run_no))

    def list_jobs(self, state: JobState | None = None, limit: int | None = None) -> list[Job]:
        params: list[Any] = [limit]  # LIMIT NULL: all of them
        query = q.LIST_JOBS
        if state is not None:
            query, params = q.LIST_JOBS_IN_STATE, [state.value, limit]
        rows = self._link.run(lambda conn: conn.execute(query, params).fetchall())
        return [_job_from_row(row) for row in rows]

    def job_states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        wanted = [job_id for job_id in job_ids if "\0" not in job_id]  # none can hold one
        rows = self._link.run(lambda conn: conn.execute(q.JOB_STATES, (wanted,)).fetchall())
        return {row[0]: JobState(row[1]) for row in rows}

    def unfinished_job_ids(self) -> list[str]:
        unfinished = [s.value for s in JobState if s not in FINAL_STATES]
        rows = self._link.run(
            lambda conn: conn.execute(q.UNFINISHED_JOB_IDS, (unfinished,)).fetchall()
        )
        return [row[0] for row in rows]

    def counts(self) -> dict[JobState, int]:
        rows = self._link.run(lambda conn: conn.execute(q.COUNTS).fetchall())
        if sum(row[2] for row in rows) > _COMPACT_ROWS:
            self._compact_counts()
        totals = {row[0]: int(row[1]) for row in rows}
        return {state: totals.get(state.value, 0) for state in JobState}

    def next_run_at(self) -> datetime | None:
        moment: datetime | None = self._link.run(lambda conn: _one(conn, q.NEXT_RUN_AT)[0])
        return moment

    # --- dead letter queue ------------------------------------------------------------
    def retry_dead(self, job_ids: Sequence[str]) -> None:
        wanted = list(job_ids)
        if not wanted:
            return
        for job_id in wanted:
            if "\0" in job_id:
                raise JobNotFound(job_id)

        def retry(conn: Connection) -> None:
            with self._link.transaction(conn):
                states = dict(conn.execute(q.LOCK_STATES, (wanted,)).fetchall())
                for job_id in wanted:
                    if job_id not in states:
                        raise JobNotFound(job_id)
                    if states[job_id] != JobState.DEAD.value:
                        raise WrongState(f"job {job_id!r} is {states[job_id]}, not dead")
                conn.execute(q.RETRY_DEAD, (wanted,))

        def committed(conn: Connection) -> Applied[None] | None:
            # COMMIT was sent, so every job was dead then: none dead now means it applied.
            found, dead = _one(conn, q.COUNT_STILL_DEAD, (wanted,))
            return Applied(None) if found == len(set(wanted)) and dead == 0 else None

        self._link.run(retry, committed)

    def retry_all_dead(self) -> list[str]:
        # Safe to repeat after a dropped connection; the ids are then the second try's.
        rows = self._link.run(lambda conn: conn.execute(q.RETRY_ALL_DEAD).fetchall())
        return [row[0] for row in rows]

    # --- workers ----------------------------------------------------------------------
    def register_worker(self, worker: WorkerInfo) -> None:
        params = (worker.id, worker.host, worker.pid, worker.pid_start_time, worker.started_at)
        self._link.run(lambda conn: conn.execute(q.REGISTER_WORKER, params))

    def unregister_worker(self, worker_id: str) -> None:
        self._link.run(lambda conn: conn.execute(q.UNREGISTER_WORKER, (worker_id,)))

    def heartbeat(self, worker_id: str) -> HeartbeatReply:
        row = self._link.run(lambda conn: conn.execute(q.HEARTBEAT, (worker_id,)).fetchone())
        if row is None:
            return HeartbeatReply.UNKNOWN
        return HeartbeatReply.STOP if row[0] else HeartbeatReply.CONTINUE

    def request_stop(self, worker_ids: Sequence[str]) -> None:
        self._link.run(lambda conn: conn.execute(q.REQUEST_STOP, (list(worker_ids),)))

    def list_workers(self) -> list[WorkerInfo]:
        rows = self._link.run(lambda conn: conn.execute(q.LIST_WORKERS).fetchall())
        return [WorkerInfo(*row) for row in rows]

    def wait_for_jobs(self, timeout: float, should_stop: Callable[[], bool]) -> None:
        """Wait for a NOTIFY on a listening connection kept open across calls.

        Notifications that arrived since the last call are still queued on it, so a
        job enqueued between a failed claim and this call wakes us at once. Without a
        listening connection (it failed to open, or QUEUECTL_PG_LISTEN=0), this polls
        should_stop until timeout.
        """
        deadline = time.monotonic() + timeout
        if should_stop():
            return
        if (
            self._listener is None
            and self._use_listen
            and time.monotonic() >= self._listen_retry_at
            and self._listen()
        ):
            return
        while not should_stop():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            listener = self._listener
            if listener is None:
                time.sleep(min(remaining, _STOP_CHECK_INTERVAL))
                continue
            try:
                waiting = listener.notifies(
                    timeout=min(remaining, _STOP_CHECK_INTERVAL), stop_after=1
                )
                woken = next(waiting, None) is not None
                waiting.close()  # it holds the connection's lock until closed
                if woken:
                    # One wake-up for everything queued: notifications collected while
                    # the worker was busy must not cost one claim each.
                    for _ in listener.notifies(timeout=0):
                        pass
                    return
            except psycopg.Error:
                log.warning("lost the listening connection to %s", self._url)
                self._listener = None
                listener.close()
                return  # the caller's next claim reconnects if need be

    def _listen(self) -> bool:
        """Open the listening connection; True when a job is runnable already.

        Anything that became runnable before LISTEN took effect sent its NOTIFY to no
        one: the check after it catches that.
        """
        try:
            listener = connect(self._dsn, self._url)
        except StoreUnavailable as exc:
            if not self._listen_retry_delay:
                log.warning("cannot listen for new jobs (%s); polling instead", exc)
            self._listen_retry_delay = min(
                max(self._listen_retry_delay * 2, _LISTEN_RETRY_FIRST), _LISTEN_RETRY_MAX
            )
            self._listen_retry_at = time.monotonic() + self._listen_retry_delay
            return False
        self._listen_retry_delay = 0.0
        try:
            channel = _one(listener, LISTEN_CHANNEL_QUERY)[0]
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            runnable = bool(_one(listener, q.RUNNABLE_NOW)[0])
        except psycopg.Error:
            listener.close()
            return False
        self._listener = listener
        return runnable

    def claim(self, worker_id: str) -> Claim | None:
        token = secrets.randbits(63)
        params = {"worker": worker_id, "token": token}
        return self._link.run(
            lambda conn: _claim_from_row(conn.execute(q.CLAIM, params).fetchone()),
            lambda conn: _find_claim(conn, token),
        )

    def release(self, claim: Claim) -> None:
        params = (claim.job.id, claim.job.worker_id, claim.run_no)
        # Idempotent: once released, the fence no longer matches, so a retry does nothing.
        self._link.run(lambda conn: conn.execute(q.RELEASE, params))

    def publish_output(self, claim: Claim, data: bytes, total_bytes: int) -> None:
        params = (data, total_bytes, claim.job.id, claim.job.worker_id, claim.run_no)
        self._link.run(lambda conn: conn.execute(q.PUBLISH_OUTPUT, params))

    def finish(
        self,
        claim: Claim,
        outcome: Outcome,
        output: bytes | None = None,
        output_total: int | None = None,
        *,
        claim_next: bool = False,
    ) -> FinishResult:
        job = claim.job
        assert job.worker_id is not None
        # A processing job's attempts and max_retries cannot change while the fence holds
        # (only recovery touches a processing job, and it moves it out of processing), so
        # the claim's values decide the retry like the row's would.
        params = self._record_params(
            job.id, claim.run_no, job.worker_id, claim.started_at, job.attempts,
            job.max_retries, outcome, output, output_total,
        )  # fmt: skip
        token = params["token"] = secrets.randbits(63) if claim_next else None

        def record(conn: Connection) -> FinishResult:
            if not claim_next:
                return FinishResult(_one(conn, q.RECORD, params)[0] > 0)
            row = _one(conn, q.RECORD_AND_CLAIM, params)
            return FinishResult(row[0] > 0, _claim_from_row(row[1:]))

        def committed(conn: Connection) -> Applied[FinishResult] | None:
            # The run row (with this outcome) exists only if the finish committed; the
            # token finds the job the same statement claimed. Neither: run it again.
            following = _find_claim(conn, token) if token is not None else None
            recorded = conn.execute(
                q.RUN_RECORDED,
                (job.id, claim.run_no, job.worker_id, outcome.exit_code, outcome.signal,
                 outcome.error),
            ).fetchone() is not None  # fmt: skip
            if following is None and not recorded:
                return None
            return Applied(FinishResult(recorded, following.value if following else None))

        return self._link.run(record, committed)

    def settle(
        self,
        worker_id: str,
        finished: Sequence[FinishedRun],
        release: Sequence[Claim],
        claim_up_to: int,
    ) -> Settled:
        # Outcomes one by one; the last one and the next claim share a transaction.
        discarded: list[FinishedRun] = []
        claims: list[Claim] = []
        claim_tried = False
        for index, done in enumerate(finished):
            claim_next = claim_up_to > 0 and not release and index == len(finished) - 1
            result = self.finish(
                done.claim, done.outcome, done.output, done.output_total, claim_next=claim_next
            )
            claim_tried = claim_tried or claim_next
            if not result.recorded:
                discarded.append(done)
            if result.next_claim is not None:
                claims.append(result.next_claim)
        for claim in release:
            self.release(claim)
        if claim_up_to > 0 and not claim_tried:
            fresh = self.claim(worker_id)
            if fresh is not None:
                claims.append(fresh)
        return Settled(claims, discarded)

    def _record_params(
        self,
        job_id: str,
        run_no: int,
        worker_id: str | None,
        started_at: datetime | None,
        attempts: int,
        max_retries: int,
        outcome: Outcome,
        output: bytes | None,
        output_total: int | None,
    ) -> dict[str, Any]:
        if outcome.succeeded:
            state, delay = JobState.COMPLETED, None
        else:
            config = self.config()
            decision = decide_after_failure(
                attempts + 1, max_retries, config.backoff_base, config.backoff_max
            )
            # run_at = the server's now() + delay, computed in the statement.
            state, delay = decision.state, decision.delay
        if output_total is None and output is not None:
            output_total = len(output)
        return {
            "id": job_id,
            "run": run_no,
            "worker": worker_id,
            "started": started_at,
            "state": state.value,
            "delay": delay,
            "exit_code": outcome.exit_code,
            "signal": outcome.signal,
            "error": outcome.error,
            "output": output,
            "output_total": output_total,
        }

    def recover_expired(
        self, lease_seconds: float, end_processes: Callable[[RecoveredJob], LostRunFate]
    ) -> list[RecoveredJob]:
        lease = {"lease": lease_seconds}
        lost = Outcome(OutcomeKind.WORKER_LOST, error="worker lost")

        def recover(conn: Connection) -> list[RecoveredJob]:
            since_reconnect = self._link.since_reconnect()
            if since_reconnect is not None and since_reconnect < lease_seconds:
                # After an outage every lease looks expired: the live workers get one
                # lease to renew theirs before anything is taken from them.
                return []
            if not _one(conn, q.ANY_EXPIRED, lease)[0]:
                return []
            recovered: list[RecoveredJob] = []
            with self._link.transaction(conn):
                conn.execute(q.CLAMP_HEARTBEATS_AHEAD, lease)
                rows = conn.execute(q.LOCK_EXPIRED, lease).fetchall()
                for row in rows:
                    job_id, worker_id, runs_total, attempts, max_retries, started = row[:6]
                    job = RecoveredJob(job_id, runs_total, worker_id, *row[6:])
                    # Before the job can be claimed again. What it says of the run is
                    # not used: the caller may be on another host (see settle()).
                    end_processes(job)
                    params = self._record_params(
                        job_id, runs_total, worker_id, started, attempts, max_retries, lost,
                        None, None,
                    )  # fmt: skip
                    conn.execute(q.RECORD, params)
                    recovered.append(job)
                conn.execute(q.DELETE_STALE_WORKERS, lease)
            return recovered

        # Repeating is safe: a job recovered by the lost attempt is no longer processing.
        return self._link.run(recover)


def _one(conn: Connection, query: str, params: Any = None) -> tuple[Any, ...]:
    row: tuple[Any, ...] | None = conn.execute(query, params).fetchone()
    assert row is not None
    return row


def _first_clash(conn: Connection, job_ids: list[str]) -> str:
    """The first id of the batch already stored, else the first one the batch repeats."""
    existing = {row[0] for row in conn.execute(q.EXISTING_IDS, (job_ids,)).fetchall()}
    for job_id in job_ids:
        if job_id in existing:
            return job_id
    seen: set[str] = set()
    for job_id in job_ids:
        if job_id in seen:
            return job_id
        seen.add(job_id)
    return job_ids[0]


def _enqueue_columns(jobs: Sequence[NewJob]) -> list[list[Any]]:
    return [
        [job.id for job in jobs],
        [job.command for job in jobs],
        # One Python type per list: psycopg refuses to dump [0.0, 600] as one array.
        [int(job.max_retries) for job in jobs],
        [int(job.priority) for job in jobs],
        [job.run_at for job in jobs],
        [float(job.delay) for job in jobs],
        [float(job.timeout) for job in jobs],
        [job.cwd for job in jobs],
        [json.dumps(job.env, ensure_ascii=False) for job in jobs],
    ]


def _find_claim(conn: Connection, token: int) -> Applied[Claim | None] | None:
    """The claim made with `token`, if that claim committed."""
    row = conn.execute(q.FIND_CLAIM, (token,)).fetchone()
    return Applied(_claim_from_row(row)) if row else None


def _claim_from_row(row: Sequence[Any] | None) -> Claim | None:
    if row is None or row[0] is None:
        return None
    job = _job_from_row(row)
    return Claim(job=job, run_no=job.runs_total, started_at=row[16])


def _read_output(conn: Connection, job_id: str, run_no: int | None) -> RunOutput | None:
    if run_no is None:
        job = conn.execute(q.RUNS_TOTAL, (job_id,)).fetchone()
        if job is None or job[0] == 0:
            return None
        run_no = int(job[0])
    live = conn.execute(q.LIVE_OUTPUT, (job_id, run_no)).fetchone()
    if live is not None:
        return RunOutput(run_no, bytes(live[0]), live[1], finished=False)
    done = conn.execute(q.RUN_OUTPUT, (job_id, run_no)).fetchone()
    if done is not None:
        data = bytes(done[0] or b"")
        return RunOutput(run_no, data, done[1] if done[1] is not None else len(data), True)
    running = conn.execute(q.IS_RUNNING, (job_id, run_no)).fetchone()
    return RunOutput(run_no, b"", 0, finished=False) if running else None


def _job_from_row(row: Sequence[Any]) -> Job:
    return Job(
        id=row[0],
        command=row[1],
        state=JobState(row[2]),
        attempts=row[3],
        max_retries=row[4],
        priority=row[5],
        run_at=row[6],
        timeout=row[7],
        cwd=row[8],
        env=json.loads(row[9]),
        created_at=row[10],
        updated_at=row[11],
        exit_code=row[12],
        last_error=row[13],
        worker_id=row[14],
        runs_total=row[15],
    )
