"""The PostgreSQL store: one queue shared by workers on many machines.

Same semantics as the SQLite store, with PostgreSQL's tools: a claim is one
`UPDATE ... WHERE seq = (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING`
statement, and a finish with the next claim is one more; idle workers LISTEN
for the NOTIFY the jobs triggers send; every time (run_at, leases, heartbeats,
backoff) is the database's clock, so hosts whose clocks differ still agree.
Operations survive a dropped connection (see postgres_connection.Link).
Imported only for postgresql:// URLs.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg

from queuectl.domain import (
    Claim,
    FinishResult,
    HeartbeatReply,
    Job,
    JobState,
    NewJob,
    Outcome,
    OutcomeKind,
    RecoveredJob,
    Run,
    RunOutput,
    WorkerInfo,
)
from queuectl.errors import DuplicateJob, InvalidInput, JobNotFound, StoreUnavailable, WrongState
from queuectl.retry import decide_after_failure
from queuectl.settings import Config
from queuectl.store.postgres_connection import Applied, Connection, Link, connect
from queuectl.store.postgres_schema import JOBS_CHANNEL, migrate

log = logging.getLogger("queuectl.store")

# An idle worker checks should_stop this often while it waits for a notification.
_STOP_CHECK_INTERVAL = 0.25
# Settings are re-read at most this often by a long-lived connection.
_CONFIG_TTL = 2.0
# Counter deltas are folded together at most this often per store.
_COMPACT_INTERVAL = 10.0
# ... or when `counts` had to add up more rows than this.
_COMPACT_ROWS = 1000
# Jobs per INSERT in a bulk enqueue (all in one transaction).
_ENQUEUE_CHUNK = 5000

_JOB_COLUMNS = (
    "id, command, state, attempts, max_retries, priority, run_at, timeout, cwd, env, "
    "created_at, updated_at, exit_code, last_error, worker_id, runs_total"
)
_RUNNABLE = "state IN ('pending', 'failed')"

_CLAIM_UPDATE = f"""
UPDATE jobs SET state = 'processing', worker_id = %(worker)s, runs_total = runs_total + 1,
                started_at = now(), updated_at = now(), claim_token = %(token)s
WHERE seq = (SELECT seq FROM jobs WHERE {_RUNNABLE} AND run_at <= now()
             ORDER BY priority DESC, run_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING {_JOB_COLUMNS}, started_at
"""

# Records one attempt, fenced: only the holder of this very run may write its outcome.
_RECORD_CTES = """
WITH done AS (
    UPDATE jobs SET state = %(state)s, attempts = attempts + 1,
                    run_at = coalesce(now() + %(delay)s::float8 * interval '1 second', run_at),
                    exit_code = %(exit_code)s, last_error = %(error)s, updated_at = now(),
                    started_at = NULL, claim_token = NULL
    WHERE id = %(id)s AND state = 'processing' AND worker_id IS NOT DISTINCT FROM %(worker)s
          AND runs_total = %(run)s
    RETURNING id
), recorded AS (
    INSERT INTO runs (job_id, n, worker_id, started_at, finished_at, exit_code, signal, error,
                      output, output_total)
    SELECT id, %(run)s, %(worker)s, coalesce(%(started)s, now()), now(), %(exit_code)s,
           %(signal)s, %(error)s, %(output)s, %(output_total)s FROM done
    ON CONFLICT (job_id, n) DO UPDATE SET
        worker_id = excluded.worker_id, started_at = excluded.started_at,
        finished_at = excluded.finished_at, exit_code = excluded.exit_code,
        signal = excluded.signal, error = excluded.error, output = excluded.output,
        output_total = excluded.output_total
    RETURNING 1
), cleared AS (
    DELETE FROM live_output WHERE job_id IN (SELECT id FROM done)
)"""
_RECORD = _RECORD_CTES + "\nSELECT count(*) FROM recorded"
# The finished job is `processing` in this statement's snapshot: `following` never takes it.
_RECORD_AND_CLAIM = (
    _RECORD_CTES
    + f""", following AS ({_CLAIM_UPDATE})
SELECT (SELECT count(*) FROM recorded), following.*
FROM (VALUES (1)) AS one (x) LEFT JOIN following ON true"""
)

_FIND_CLAIM = f"""
SELECT {_JOB_COLUMNS}, started_at FROM jobs WHERE state = 'processing' AND claim_token = %s
"""

_RUN_RECORDED = """
SELECT 1 FROM runs
WHERE job_id = %s AND n = %s AND worker_id = %s AND exit_code IS NOT DISTINCT FROM %s::integer
      AND signal IS NOT DISTINCT FROM %s::integer AND error IS NOT DISTINCT FROM %s::text
"""

_LEASE_CUTOFF = "now() - %(lease)s::float8 * interval '1 second'"
_EXPIRED = f"""
SELECT j.id, j.worker_id, j.runs_total, j.attempts, j.max_retries, j.started_at, w.host
FROM jobs j LEFT JOIN workers w ON w.id = j.worker_id
WHERE j.state = 'processing' AND (w.id IS NULL OR w.heartbeat_at < {_LEASE_CUTOFF})
"""

_ENQUEUE = """
INSERT INTO jobs (id, command, state, max_retries, priority, run_at, timeout, cwd, env,
                  created_at, updated_at)
SELECT id, command, 'pending', max_retries, priority,
       coalesce(run_at, now() + delay * interval '1 second'), timeout, cwd, env, now(), now()
FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::timestamptz[],
            %s::float8[], %s::float8[], %s::text[], %s::text[])
     WITH ORDINALITY AS batch (id, command, max_retries, priority, run_at, delay, timeout,
                               cwd, env, position)
ORDER BY position
"""

_COMPACT_COUNTS = """
WITH folded AS (
    DELETE FROM job_counts
    WHERE ctid = ANY (ARRAY (SELECT ctid FROM job_counts FOR UPDATE SKIP LOCKED))
    RETURNING state, n
)
INSERT INTO job_counts (state, n)
SELECT state, sum(n) FROM folded GROUP BY state HAVING sum(n) <> 0
"""


class PostgresStore:
    """The store on one PostgreSQL database. Create one per thread.

    Every commit is synchronous, workers' too (unlike SQLite's durable=False): the
    server can crash while the workers live on, and a forgotten finish would leave
    its job `processing` under a live worker, never recovered.
    """

    def __init__(self, dsn: str, *, display_url: str) -> None:
        self.description = display_url
        self._dsn = dsn
        self._url = display_url
        self._config: Config | None = None
        self._config_read_at = 0.0
        self._compacted_at = time.monotonic()
        self._listener: Connection | None = None
        self._link = Link(dsn, display_url)
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
        """Fold the per-state counter deltas together now and then."""
        if time.monotonic() - self._compacted_at >= _COMPACT_INTERVAL:
            self._compact_counts()

    def _compact_counts(self) -> None:
        self._link.run(lambda conn: conn.execute(_COMPACT_COUNTS))
        self._compacted_at = time.monotonic()

    def now(self) -> datetime:
        return self._link.run(lambda conn: _one(conn, "SELECT now()")[0])  # type: ignore[no-any-return]

    # --- configuration ------------------------------------------------------------
    def stored_config(self) -> dict[str, str]:
        return self._link.run(
            lambda conn: dict(conn.execute("SELECT key, value FROM config").fetchall())
        )

    def config(self) -> Config:
        moment = time.monotonic()
        if self._config is None or moment - self._config_read_at > _CONFIG_TTL:
            self._config = Config.from_stored(self.stored_config())
            self._config_read_at = moment
        return self._config

    def set_config(self, key: str, value: str) -> None:
        self._link.run(
            lambda conn: conn.execute(
                "INSERT INTO config (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        )
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
                        conn.execute(
                            _ENQUEUE, _enqueue_columns(jobs[start : start + _ENQUEUE_CHUNK])
                        )
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
            row = _one(conn, "SELECT count(*) FROM jobs WHERE id = ANY(%s)", (job_ids,))
            return Applied(job_ids) if row[0] == len(set(job_ids)) else None

        return self._link.run(insert, committed)

    # --- inspection -------------------------------------------------------------------
    def get_job(self, job_id: str) -> Job | None:
        if "\0" in job_id:
            return None
        row = self._link.run(
            lambda conn: conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,)
            ).fetchone()
        )
        return _job_from_row(row) if row else None

    def get_runs(self, job_id: str) -> list[Run]:
        if "\0" in job_id:
            return []
        rows = self._link.run(
            lambda conn: conn.execute(
                "SELECT job_id, n, started_at, finished_at, exit_code, signal, error, worker_id "
                "FROM runs WHERE job_id = %s "
                "UNION ALL "
                "SELECT id, runs_total, started_at, NULL, NULL, NULL, NULL, worker_id "
                "FROM jobs WHERE id = %s AND state = 'processing' "
                "ORDER BY 2",
                (job_id, job_id),
            ).fetchall()
        )
        return [Run(*row) for row in rows]

    def get_output(self, job_id: str, run_no: int | None = None) -> RunOutput | None:
        if "\0" in job_id:
            return None
        return self._link.run(lambda conn: _read_output(conn, job_id, run_no))

    def list_jobs(self, state: JobState | None = None, limit: int | None = None) -> list[Job]:
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs"
        params: list[Any] = []
        if state is not None:
            sql += " WHERE state = %s"
            params.append(state.value)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        rows = self._link.run(lambda conn: conn.execute(sql, params).fetchall())
        return [_job_from_row(row) for row in rows]

    def counts(self) -> dict[JobState, int]:
        rows = self._link.run(
            lambda conn: conn.execute(
                "SELECT state, sum(n), count(*) FROM job_counts GROUP BY state"
            ).fetchall()
        )
        if sum(row[2] for row in rows) > _COMPACT_ROWS:
            self._compact_counts()
        totals = {row[0]: int(row[1]) for row in rows}
        return {state: totals.get(state.value, 0) for state in JobState}

    def next_run_at(self) -> datetime | None:
        row = self._link.run(
            lambda conn: _one(conn, f"SELECT min(run_at) FROM jobs WHERE {_RUNNABLE}")
        )
        return row[0]  # type: ignore[no-any-return]

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
                states = dict(
                    conn.execute(
                        "SELECT id, state FROM jobs WHERE id = ANY(%s) FOR UPDATE", (wanted,)
                    ).fetchall()
                )
                for job_id in wanted:
                    if job_id not in states:
                        raise JobNotFound(job_id)
                    if states[job_id] != JobState.DEAD.value:
                        raise WrongState(f"job {job_id!r} is {states[job_id]}, not dead")
                conn.execute(
                    "UPDATE jobs SET state = 'pending', attempts = 0, run_at = now(), "
                    "updated_at = now() WHERE id = ANY(%s)",
                    (wanted,),
                )

        def committed(conn: Connection) -> Applied[None] | None:
            # COMMIT was sent, so every job was dead then: none dead now means it applied.
            row = _one(
                conn,
                "SELECT count(*), count(*) FILTER (WHERE state = 'dead') FROM jobs "
                "WHERE id = ANY(%s)",
                (wanted,),
            )
            return Applied(None) if row[0] == len(set(wanted)) and row[1] == 0 else None

        self._link.run(retry, committed)

    def retry_all_dead(self) -> int:
        return self._link.run(
            lambda conn: (
                conn.execute(
                    "UPDATE jobs SET state = 'pending', attempts = 0, run_at = now(), "
                    "updated_at = now() WHERE state = 'dead'"
                ).rowcount
            )
        )

    # --- workers ----------------------------------------------------------------------
    def register_worker(self, worker: WorkerInfo) -> None:
        self._link.run(
            lambda conn: conn.execute(
                "INSERT INTO workers (id, host, pid, pid_start, started_at, heartbeat_at) "
                "VALUES (%s, %s, %s, %s, %s, now()) "
                "ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
                "pid_start = excluded.pid_start, started_at = excluded.started_at, "
                "heartbeat_at = excluded.heartbeat_at, stop_requested = false",
                (worker.id, worker.host, worker.pid, worker.pid_start_time, worker.started_at),
            )
        )

    def unregister_worker(self, worker_id: str) -> None:
        self._link.run(lambda conn: conn.execute("DELETE FROM workers WHERE id = %s", (worker_id,)))

    def heartbeat(self, worker_id: str) -> HeartbeatReply:
        row = self._link.run(
            lambda conn: conn.execute(
                "UPDATE workers SET heartbeat_at = now() WHERE id = %s RETURNING stop_requested",
                (worker_id,),
            ).fetchone()
        )
        if row is None:
            return HeartbeatReply.UNKNOWN
        return HeartbeatReply.STOP if row[0] else HeartbeatReply.CONTINUE

    def request_stop(self, worker_ids: Sequence[str]) -> None:
        self._link.run(
            lambda conn: conn.execute(
                "UPDATE workers SET stop_requested = true WHERE id = ANY(%s)", (list(worker_ids),)
            )
        )

    def list_workers(self) -> list[WorkerInfo]:
        rows = self._link.run(
            lambda conn: conn.execute(
                "SELECT w.id, w.host, w.pid, w.pid_start, w.started_at, w.heartbeat_at, "
                "(SELECT j.id FROM jobs j WHERE j.worker_id = w.id AND j.state = 'processing' "
                "LIMIT 1) FROM workers w ORDER BY w.started_at, w.id"
            ).fetchall()
        )
        return [WorkerInfo(*row) for row in rows]

    def wait_for_jobs(self, timeout: float, should_stop: Callable[[], bool]) -> None:
        """Wait for a NOTIFY on a listening connection kept open across calls.

        Notifications that arrived since the last call are still queued on it, so a
        job enqueued between a failed claim and this call wakes us at once. Without a
        listening connection (it failed to open), this polls should_stop until timeout.
        """
        deadline = time.monotonic() + timeout
        if should_stop():
            return
        if self._listener is None and self._listen():
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
                woken = any(
                    True
                    for _ in listener.notifies(
                        timeout=min(remaining, _STOP_CHECK_INTERVAL), stop_after=1
                    )
                )
                if woken:
                    # One wake-up for everything queued: stale notifications collected
                    # while the worker was busy must not cost one claim each. (Not from
                    # inside the loop above: its generator holds the connection's lock.)
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
            log.warning("cannot listen for new jobs (%s); polling instead", exc)
            return False
        try:
            listener.execute(f"LISTEN {JOBS_CHANNEL}")
            row = _one(
                listener,
                f"SELECT EXISTS (SELECT 1 FROM jobs WHERE {_RUNNABLE} AND run_at <= now())",
            )
        except psycopg.Error:
            listener.close()
            return False
        self._listener = listener
        return bool(row[0])

    def claim(self, worker_id: str) -> Claim | None:
        token = secrets.randbits(63)
        return self._link.run(
            lambda conn: _claim_from_row(
                conn.execute(_CLAIM_UPDATE, {"worker": worker_id, "token": token}).fetchone()
            ),
            lambda conn: _find_claim(conn, token),
        )

    def publish_output(self, claim: Claim, data: bytes, total_bytes: int) -> None:
        self._link.run(
            lambda conn: conn.execute(
                "INSERT INTO live_output (job_id, n, data, total) "
                "SELECT id, runs_total, %s, %s FROM jobs "
                "WHERE id = %s AND state = 'processing' AND worker_id = %s AND runs_total = %s "
                "ON CONFLICT (job_id) DO UPDATE SET n = excluded.n, data = excluded.data, "
                "total = excluded.total",
                (data, total_bytes, claim.job.id, claim.job.worker_id, claim.run_no),
            )
        )

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
        token = secrets.randbits(63) if claim_next else None
        params["token"] = token

        def record(conn: Connection) -> FinishResult:
            if not claim_next:
                return FinishResult(_one(conn, _RECORD, params)[0] > 0)
            row = _one(conn, _RECORD_AND_CLAIM, params)
            return FinishResult(row[0] > 0, _claim_from_row(row[1:]))

        def committed(conn: Connection) -> Applied[FinishResult] | None:
            # The run row (with this outcome) exists only if the finish committed; the
            # token finds the job the same statement claimed. Neither: run it again.
            following = _find_claim(conn, token) if token is not None else None
            recorded = conn.execute(
                _RUN_RECORDED,
                (job.id, claim.run_no, job.worker_id, outcome.exit_code, outcome.signal,
                 outcome.error),
            ).fetchone() is not None  # fmt: skip
            if following is None and not recorded:
                return None
            return Applied(FinishResult(recorded, following.value if following else None))

        return self._link.run(record, committed)

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
        self, lease_seconds: float, end_processes: Callable[[RecoveredJob], None]
    ) -> list[RecoveredJob]:
        lease = {"lease": lease_seconds}
        lost = Outcome(OutcomeKind.WORKER_LOST, error="worker lost")

        def recover(conn: Connection) -> list[RecoveredJob]:
            # A read first: rows are locked only when there is something to take back.
            row = _one(
                conn,
                f"SELECT EXISTS (SELECT 1 FROM workers WHERE heartbeat_at < {_LEASE_CUTOFF}) "
                f"OR EXISTS ({_EXPIRED})",
                lease,
            )
            if not row[0]:
                return []
            recovered: list[RecoveredJob] = []
            with self._link.transaction(conn):
                # SKIP LOCKED: a job another recoverer (or its finishing worker) holds is
                # theirs; it is never recorded twice.
                rows = conn.execute(f"{_EXPIRED} FOR UPDATE OF j SKIP LOCKED", lease).fetchall()
                for job_id, worker_id, runs_total, attempts, max_retries, started, host in rows:
                    job = RecoveredJob(job_id, runs_total, worker_id, host)
                    end_processes(job)  # before the job can be claimed again
                    params = self._record_params(
                        job_id, runs_total, worker_id, started, attempts, max_retries, lost,
                        None, None,
                    )  # fmt: skip
                    conn.execute(_RECORD, params)
                    recovered.append(job)
                conn.execute(f"DELETE FROM workers WHERE heartbeat_at < {_LEASE_CUTOFF}", lease)
            return recovered

        return self._link.run(recover)


def _one(conn: Connection, sql: str, params: Any = None) -> tuple[Any, ...]:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row  # type: ignore[no-any-return]


def _first_clash(conn: Connection, job_ids: list[str]) -> str:
    """The first id of the batch already stored, else the first one the batch repeats."""
    existing = {
        row[0]
        for row in conn.execute("SELECT id FROM jobs WHERE id = ANY(%s)", (job_ids,)).fetchall()
    }
    seen: set[str] = set()
    for job_id in job_ids:
        if job_id in existing:
            return job_id
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
    row = conn.execute(_FIND_CLAIM, (token,)).fetchone()
    return Applied(_claim_from_row(row)) if row else None


def _claim_from_row(row: Sequence[Any] | None) -> Claim | None:
    if row is None or row[0] is None:
        return None
    job = _job_from_row(row)
    return Claim(job=job, run_no=job.runs_total, started_at=row[16])


def _read_output(conn: Connection, job_id: str, run_no: int | None) -> RunOutput | None:
    if run_no is None:
        job = conn.execute("SELECT runs_total FROM jobs WHERE id = %s", (job_id,)).fetchone()
        if job is None or job[0] == 0:
            return None
        run_no = int(job[0])
    live = conn.execute(
        "SELECT data, total FROM live_output WHERE job_id = %s AND n = %s", (job_id, run_no)
    ).fetchone()
    if live is not None:
        return RunOutput(run_no, bytes(live[0]), live[1], finished=False)
    done = conn.execute(
        "SELECT output, output_total FROM runs WHERE job_id = %s AND n = %s", (job_id, run_no)
    ).fetchone()
    if done is not None:
        data = bytes(done[0] or b"")
        return RunOutput(run_no, data, done[1] if done[1] is not None else len(data), True)
    running = conn.execute(
        "SELECT 1 FROM jobs WHERE id = %s AND state = 'processing' AND runs_total = %s",
        (job_id, run_no),
    ).fetchone()
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
