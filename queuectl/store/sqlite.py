"""The SQLite store: the embedded default backend.

WAL journal; every write in an explicit BEGIN IMMEDIATE, taken in turn through
a writer lock (flock on a file beside the database: see sqlite_producer.py) and then
with short jittered retries against writers that do not take it; one
connection per thread, never shared across fork; enqueues are fsynced before
they are acknowledged.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from queuectl.domain import (
    FINAL_STATES,
    Claim,
    FinishedRun,
    FinishResult,
    HeartbeatReply,
    Job,
    JobState,
    LostRun,
    Outcome,
    OutcomeKind,
    RecoveredJob,
    Run,
    RunOutput,
    Settled,
    WorkerInfo,
)
from queuectl.errors import JobNotFound, StoreUnavailable, WrongState
from queuectl.records import NamedTuple
from queuectl.retry import decide_after_failure
from queuectl.store.sqlite_insights import SqliteInsights
from queuectl.store.sqlite_maintenance import SqliteMaintenance
from queuectl.store.sqlite_producer import (
    LOCK_WAIT_LIMIT,
    SqliteProducer,
    file_identity,
    translate_error,
    translating,
)
from queuectl.timeutil import from_micros, to_micros

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see queuectl.records)
if TYPE_CHECKING:
    from typing import Any

    from queuectl.store.base import LostRunFate

# Without inotify, an idle worker polls PRAGMA data_version this often (tens of
# microseconds a check): a new job waits 2.5 ms on average, at about 2% of a core.
_CHANGE_CHECK_INTERVAL = 0.005
# With inotify on the WAL file, the same check runs only as a safety net ...
_WATCHED_CHECK_INTERVAL = 0.25
# ... and, after the WAL was written, this often for this long, until the commit shows.
_BURST_CHECK_INTERVAL = 0.001
_BURST_SECONDS = 0.05
# A WAL longer than this many frames (4 KiB pages) gets a TRUNCATE checkpoint.
_WAL_RESTART_FRAMES = 4096

_JOB_COLUMNS = (
    "id, command, state, attempts, max_retries, priority, run_at, timeout, cwd, env, "
    "created_at, updated_at, exit_code, last_error, worker_id, runs_total"
)
_RUNNABLE = "state IN ('pending', 'failed')"

_CLAIM_SQL = f"""
UPDATE jobs SET state = 'processing', worker_id = :worker, runs_total = runs_total + 1,
                started_at = :now, updated_at = :now
WHERE seq = (SELECT seq FROM jobs INDEXED BY jobs_runnable
             WHERE {_RUNNABLE} AND run_at <= :now
               -- An unregistered worker (frozen past its lease, not yet registered
               -- again) must not take a job it would at once be declared lost with.
               AND EXISTS (SELECT 1 FROM workers WHERE id = :worker)
             ORDER BY priority DESC, run_at, seq LIMIT 1)
RETURNING {_JOB_COLUMNS}
"""

# The same for up to :limit jobs; seq comes last so that they can be put in order.
_CLAIM_MANY_SQL = (
    _CLAIM_SQL.replace("WHERE seq = (", "WHERE seq IN (")
    .replace("LIMIT 1)", "LIMIT :limit)")
    .replace(f"RETURNING {_JOB_COLUMNS}", f"RETURNING {_JOB_COLUMNS}, seq")
)
# A worker draining short jobs claims this many at most in one transaction.
MAX_CLAIM_BATCH = 64

_EXPIRED_SQL = """
SELECT j.id, j.worker_id, j.runs_total, j.attempts, j.max_retries, j.started_at,
       w.host, w.pid, w.pid_start
FROM jobs j
LEFT JOIN workers w ON w.id = j.worker_id
WHERE j.state = 'processing' AND (w.id IS NULL OR w.heartbeat_at < :cutoff)
"""

if TYPE_CHECKING:
    from queuectl.store.sqlite_watch import WalWatcher

# A claimed job that never started goes back as it was: no attempt, its run number free.
_UNCLAIM_SQL = (
    "UPDATE jobs SET state = CASE WHEN attempts = 0 THEN 'pending' ELSE 'failed' END,"
    " runs_total = runs_total - 1, started_at = NULL"
)

_INSERT_RUN_SQL = (
    "INSERT OR REPLACE INTO runs (job_id, n, worker_id, started_at, finished_at, exit_code,"
    " signal, error, output, output_total)"
)
# Writes a page only when a long run published live output.
_DELETE_LIVE_OUTPUT_SQL = "DELETE FROM live_output WHERE job_id = ?"

# Only the worker holding this very run may write its outcome.
_FENCE = "id = ? AND state = 'processing' AND worker_id = ? AND runs_total = ?"


class SqliteStore(SqliteProducer, SqliteInsights, SqliteMaintenance):
    """The store on one SQLite file. One per thread.

    Opening, settings and enqueue come from SqliteProducer (sqlite_producer.py),
    insights from SqliteInsights (sqlite_insights.py).
    """

    max_claim_batch = MAX_CLAIM_BATCH

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durable: bool = True,
        clock: Callable[[], float] = time.time,
        lock_wait: float = LOCK_WAIT_LIMIT,
    ) -> None:
        self._watcher: WalWatcher | None = None
        self._watch_failed = False
        super().__init__(path, durable=durable, clock=clock, lock_wait=lock_wait)

    @translating
    def maintain(self) -> None:
        """Checkpoint: copy the WAL back into the database, and keep the WAL file bounded.

        A PASSIVE checkpoint never blocks anyone, but under steady load some
        connection is always mid-transaction, so the WAL is never restarted and
        grows without bound (checkpoint starvation). Past a threshold we ask for a
        TRUNCATE checkpoint, which waits briefly (busy_timeout) for a quiet moment.
        """
        _busy, wal_frames, _done = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if wal_frames > _WAL_RESTART_FRAMES:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    @translating
    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
        super().close()

    def now(self) -> datetime:
        return from_micros(self._now_us())

    # --- configuration -------------------------------------------------------------
    @translating
    def set_config(self, key: str, value: str) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO config (key, value) VALUES (?, ?)", (key, value))
        self._config = None

    # --- inspection ----------------------------------------------------------------------
    @translating
    def get_job(self, job_id: str) -> Job | None:
        row = self._conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        return _job_from_row(row) if row else None

    @translating
    def get_runs(self, job_id: str) -> list[Run]:
        rows = self._conn.execute(
            "SELECT job_id, n, started_at, finished_at, exit_code, signal, error, worker_id "
            "FROM runs WHERE job_id = ? "
            "UNION ALL "
            "SELECT id, runs_total, started_at, NULL, NULL, NULL, NULL, worker_id "
            "FROM jobs WHERE id = ? AND state = 'processing' "
            "ORDER BY 2",
            (job_id, job_id),
        ).fetchall()
        return [
            Run(
                job_id=row[0],
                n=row[1],
                started_at=from_micros(row[2]),
                finished_at=from_micros(row[3]) if row[3] is not None else None,
                exit_code=row[4],
                signal=row[5],
                error=row[6],
                worker_id=row[7],
            )
            for row in rows
        ]

    @translating
    def get_output(self, job_id: str, run_no: int | None = None) -> RunOutput | None:
        conn = self._conn
        if run_no is None:
            job = conn.execute(
                "SELECT runs_total, state FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if job is None or job[0] == 0:
                return None
            run_no = job[0]
        live = conn.execute(
            "SELECT data, total FROM live_output WHERE job_id = ? AND n = ?", (job_id, run_no)
        ).fetchone()
        if live is not None:
            return RunOutput(run_no, live[0], live[1], finished=False)
        done = conn.execute(
            "SELECT output, output_total FROM runs WHERE job_id = ? AND n = ?", (job_id, run_no)
        ).fetchone()
        if done is not None:
            data = done[0] or b""
            return RunOutput(run_no, data, done[1] if done[1] is not None else len(data), True)
        running = conn.execute(
            "SELECT 1 FROM jobs WHERE id = ? AND state = 'processing' AND runs_total = ?",
            (job_id, run_no),
        ).fetchone()
        return RunOutput(run_no, b"", 0, finished=False) if running else None

    @translating
    def list_jobs(self, state: JobState | None = None, limit: int | None = None) -> list[Job]:
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs"
        params: list[Any] = []
        if state is not None:
            sql += " WHERE state = ?"
            params.append(state.value)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_job_from_row(row) for row in self._conn.execute(sql, params)]

    @translating
    def job_states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        # One JSON parameter: any number of ids, where `IN (?, ?, ...)` stops at 32,766.
        rows = self._conn.execute(
            "SELECT id, state FROM jobs WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(job_ids)),),
        ).fetchall()
        return {row[0]: JobState(row[1]) for row in rows}

    @translating
    def unfinished_job_ids(self) -> list[str]:
        # By the unfinished states, not "not final": the (state, seq) index skips the
        # completed jobs, usually most of the table.
        unfinished = json.dumps([s.value for s in JobState if s not in FINAL_STATES])
        rows = self._conn.execute(
            "SELECT id FROM jobs WHERE state IN (SELECT value FROM json_each(?)) ORDER BY seq",
            (unfinished,),
        ).fetchall()
        return [row[0] for row in rows]

    @translating
    def counts(self) -> dict[JobState, int]:
        rows = dict(self._conn.execute("SELECT state, n FROM job_counts").fetchall())
        return {state: int(rows.get(state.value, 0)) for state in JobState}

    @translating
    def next_run_at(self) -> datetime | None:
        # Scans the waiting jobs (no index of its own: that would cost every claim a page
        # write); only idle workers ask, at most once per poll_interval.
        row = self._conn.execute(
            f"SELECT min(run_at) FROM jobs INDEXED BY jobs_runnable WHERE {_RUNNABLE}"
        ).fetchone()
        return from_micros(row[0]) if row and row[0] is not None else None

    # --- dead letter queue -------------------------------------------------------------
    @translating
    def retry_dead(self, job_ids: Sequence[str]) -> None:
        now = self._now_us()
        with self._write() as conn:
            for job_id in job_ids:
                row = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is None:
                    raise JobNotFound(job_id)
                if row[0] != JobState.DEAD.value:
                    raise WrongState(f"job {job_id!r} is {row[0]}, not dead")
                conn.execute(
                    "UPDATE jobs SET state = 'pending', attempts = 0, run_at = ?, updated_at = ? "
                    "WHERE id = ?",
                    (now, now, job_id),
                )

    @translating
    def retry_all_dead(self) -> list[str]:
        now = self._now_us()
        with self._write() as conn:
            rows = conn.execute(
                "UPDATE jobs SET state = 'pending', attempts = 0, run_at = ?, updated_at = ? "
                "WHERE state = 'dead' RETURNING id",
                (now, now),
            ).fetchall()
            return [row[0] for row in rows]

    # --- workers ------------------------------------------------------------------------
    @translating
    def register_worker(self, worker: WorkerInfo) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO workers (id, host, pid, pid_start, started_at, heartbeat_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    worker.id,
                    worker.host,
                    worker.pid,
                    worker.pid_start_time,
                    to_micros(worker.started_at),
                    self._now_us(),
                ),
            )

    @translating
    def unregister_worker(self, worker_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,))

    @translating
    def heartbeat(self, worker_id: str) -> HeartbeatReply:
        if file_identity(self.path) != self._file_id:
            # Deleted (its directory removed) or replaced: this connection works on a file
            # no one else sees, so `status` and `worker stop` could never reach us.
            raise StoreUnavailable(f"database {self.path} was deleted or replaced while in use")
        with self._write() as conn:
            row = conn.execute(
                "UPDATE workers SET heartbeat_at = ? WHERE id = ? RETURNING stop_requested",
                (self._now_us(), worker_id),
            ).fetchone()
        if row is None:
            return HeartbeatReply.UNKNOWN
        return HeartbeatReply.STOP if row[0] else HeartbeatReply.CONTINUE

    @translating
    def request_stop(self, worker_ids: Sequence[str]) -> None:
        with self._write() as conn:
            conn.executemany(
                "UPDATE workers SET stop_requested = 1 WHERE id = ?", [(w,) for w in worker_ids]
            )

    @translating
    def list_workers(self) -> list[WorkerInfo]:
        rows = self._conn.execute(
            "SELECT w.id, w.host, w.pid, w.pid_start, w.started_at, w.heartbeat_at, "
            "(SELECT j.id FROM jobs j WHERE j.worker_id = w.id AND j.state = 'processing' LIMIT 1), "
            "w.stop_requested FROM workers w ORDER BY w.started_at, w.id"
        ).fetchall()
        return [
            WorkerInfo(
                id=row[0],
                host=row[1],
                pid=row[2],
                pid_start_time=row[3],
                started_at=from_micros(row[4]),
                heartbeat_at=from_micros(row[5]),
                job_id=row[6],
                stopping=bool(row[7]),
            )
            for row in rows
        ]

    def wait_for_jobs(self, timeout: float, should_stop: Callable[[], bool]) -> None:
        """Sleep until another connection commits (PRAGMA data_version changes).

        An inotify watch on the WAL file wakes us when a writer writes. Its
        commit becomes visible a moment later (after its fsync), so a wake-up
        starts a short burst of quick checks. The version is also read every
        quarter second as a safety net, and every 5 ms where inotify is missing.
        """
        deadline = time.monotonic() + timeout
        try:
            start = self._conn.execute("PRAGMA data_version").fetchone()[0]
            watcher = self._wal_watcher()
            burst_until = 0.0
            while not should_stop():
                now = time.monotonic()
                remaining = deadline - now
                if remaining <= 0:
                    return
                if now < burst_until:
                    time.sleep(min(remaining, _BURST_CHECK_INTERVAL))
                elif watcher is None:
                    time.sleep(min(remaining, _CHANGE_CHECK_INTERVAL))
                elif watcher.wait(min(remaining, _WATCHED_CHECK_INTERVAL)):
                    burst_until = time.monotonic() + _BURST_SECONDS
                if self._conn.execute("PRAGMA data_version").fetchone()[0] != start:
                    return
        except sqlite3.Error as exc:
            raise translate_error(exc, self) from exc

    def _wal_watcher(self) -> WalWatcher | None:
        if self._watcher is None and not self._watch_failed:
            from queuectl.store.sqlite_watch import WalWatcher  # ctypes: workers only

            try:
                self._watcher = WalWatcher(self.path + "-wal")
            except OSError:
                self._watch_failed = True  # e.g. no inotify: poll instead
        return self._watcher

    @translating
    def claim(self, worker_id: str) -> Claim | None:
        with self._write() as conn:
            return self._claim_locked(conn, worker_id, self._now_us())

    def _claim_locked(self, conn: sqlite3.Connection, worker_id: str, now: int) -> Claim | None:
        row = conn.execute(_CLAIM_SQL, {"worker": worker_id, "now": now}).fetchone()
        if row is None:
            return None
        job = _job_from_row(row)
        return Claim(job=job, run_no=job.runs_total, started_at=from_micros(now))

    @translating
    def release(self, claim: Claim) -> None:
        with self._write() as conn:
            self._release_locked(conn, claim)

    def _release_locked(self, conn: sqlite3.Connection, claim: Claim) -> None:
        run = _RunInProgress(claim.job.id, claim.run_no, claim.job.worker_id, 0)
        conn.execute(f"{_UNCLAIM_SQL} WHERE {_FENCE}", _fence_args(run))

    @translating
    def publish_output(self, claim: Claim, data: bytes, total_bytes: int) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO live_output (job_id, n, data, total) "
                "SELECT id, runs_total, ?, ? FROM jobs "
                "WHERE id = ? AND state = 'processing' AND worker_id = ? AND runs_total = ?",
                (data, total_bytes, claim.job.id, claim.job.worker_id, claim.run_no),
            )

    @translating
    def finish(
        self,
        claim: Claim,
        outcome: Outcome,
        output: bytes | None = None,
        output_total: int | None = None,
        *,
        claim_next: bool = False,
    ) -> FinishResult:
        now = self._now_us()
        job = claim.job
        assert job.worker_id is not None
        run = _RunInProgress(job.id, claim.run_no, job.worker_id, to_micros(claim.started_at))
        with self._write() as conn:
            recorded = self._record(conn, run, outcome, now, output, output_total)
            next_claim = self._claim_locked(conn, job.worker_id, now) if claim_next else None
        return FinishResult(recorded, next_claim)

    @translating
    def settle(
        self,
        worker_id: str,
        finished: Sequence[FinishedRun],
        release: Sequence[Claim],
        claim_up_to: int,
    ) -> Settled:
        now = self._now_us()
        discarded = []
        successes = [done for done in finished if done.outcome.succeeded]
        with self._write() as conn:
            if successes:
                discarded += self._record_successes(conn, worker_id, successes)
            for done in finished:
                if done.outcome.succeeded:
                    continue
                run = _RunInProgress(
                    done.claim.job.id, done.claim.run_no, worker_id, to_micros(done.started_at)
                )
                if not self._record(
                    conn,
                    run,
                    done.outcome,
                    to_micros(done.finished_at),
                    done.output,
                    done.output_total,
                ):
                    discarded.append(done)
            for claim in release:
                self._release_locked(conn, claim)
            rows = (
                conn.execute(
                    _CLAIM_MANY_SQL, {"worker": worker_id, "now": now, "limit": claim_up_to}
                ).fetchall()
                if claim_up_to > 0
                else []
            )
        # RETURNING gives no order: the claim's own order (priority, run_at, seq).
        rows.sort(key=lambda row: (-row[5], row[6], row[-1]))
        started = from_micros(now)
        claims = [Claim(job, job.runs_total, started) for job in map(_job_from_row, rows)]
        return Settled(claims, discarded)

    def _record_successes(
        self, conn: sqlite3.Connection, worker_id: str, successes: Sequence[FinishedRun]
    ) -> list[FinishedRun]:
        """Record successful runs, fenced, in three statements whatever their number (one
        per run cost ~3x the time: statement overhead dominates). Returns those discarded."""
        marks = ", ".join(["(?, ?, ?)"] * len(successes))
        values = [
            value
            for done in successes
            for value in (done.claim.job.id, done.claim.run_no, to_micros(done.finished_at))
        ]
        # The WHERE clause is the fence, as in _record_success.
        recorded = {
            row[0]
            for row in conn.execute(
                "UPDATE jobs SET state = 'completed', attempts = attempts + 1, exit_code = 0,"
                " last_error = NULL, updated_at = done.column3, started_at = NULL"
                f" FROM (VALUES {marks}) AS done WHERE jobs.id = done.column1"
                " AND jobs.state = 'processing' AND jobs.worker_id = ?"
                " AND jobs.runs_total = done.column2 RETURNING id",
                (*values, worker_id),
            )
        }
        kept = [done for done in successes if done.claim.job.id in recorded]
        conn.executemany(
            f"{_INSERT_RUN_SQL} VALUES (?, ?, ?, ?, ?, 0, NULL, NULL, ?, ?)",
            [
                (
                    done.claim.job.id,
                    done.claim.run_no,
                    worker_id,
                    to_micros(done.started_at),
                    to_micros(done.finished_at),
                    done.output,
                    _output_total(done.output, done.output_total),
                )
                for done in kept
            ],
        )
        conn.executemany(_DELETE_LIVE_OUTPUT_SQL, [(done.claim.job.id,) for done in kept])
        return [done for done in successes if done.claim.job.id not in recorded]

    def _record(
        self,
        conn: sqlite3.Connection,
        run: _RunInProgress,
        outcome: Outcome,
        now: int,
        output: bytes | None,
        output_total: int | None,
    ) -> bool:
        """Record one run's outcome, fenced; False if the lease was lost."""
        if outcome.succeeded:
            # The common case in one statement; the WHERE clause is the fence.
            return self._record_success(conn, run, now, output, output_total)
        # The fence: only the worker holding this very run may record its outcome.
        row = conn.execute(
            f"SELECT attempts, max_retries FROM jobs WHERE {_FENCE}", _fence_args(run)
        ).fetchone()
        if row is None:
            return False
        self._record_failure(conn, run, row[0], row[1], outcome, now, output, output_total)
        return True

    def _record_success(
        self,
        conn: sqlite3.Connection,
        run: _RunInProgress,
        now: int,
        output: bytes | None,
        output_total: int | None,
    ) -> bool:
        cursor = conn.execute(
            "UPDATE jobs SET state = 'completed', attempts = attempts + 1, exit_code = 0,"
            f" last_error = NULL, updated_at = ?, started_at = NULL WHERE {_FENCE}",
            (now, *_fence_args(run)),
        )
        if cursor.rowcount == 0:
            return False
        self._insert_run(
            conn, run, now, Outcome(OutcomeKind.SUCCEEDED, exit_code=0), output, output_total
        )
        return True

    def _insert_run(
        self,
        conn: sqlite3.Connection,
        run: _RunInProgress,
        now: int,
        outcome: Outcome,
        output: bytes | None,
        output_total: int | None,
    ) -> None:
        conn.execute(
            f"{_INSERT_RUN_SQL} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.job_id,
                run.n,
                run.worker_id,
                run.started_at,
                now,
                outcome.exit_code,
                outcome.signal,
                outcome.error,
                output,
                _output_total(output, output_total),
            ),
        )
        conn.execute(_DELETE_LIVE_OUTPUT_SQL, (run.job_id,))

    def _record_failure(
        self,
        conn: sqlite3.Connection,
        run: _RunInProgress,
        attempts: int,
        max_retries: int,
        outcome: Outcome,
        now: int,
        output: bytes | None,
        output_total: int | None = None,
    ) -> None:
        """A failed attempt (successes take _record_success): retry after backoff, or dead."""
        attempts += 1
        config = self.config()
        decision = decide_after_failure(
            attempts, max_retries, config.backoff_base, config.backoff_max
        )
        state, run_at = decision.state, now + int(decision.delay * 1_000_000)
        conn.execute(
            "UPDATE jobs SET state = ?, attempts = ?, run_at = ?, exit_code = ?,"
            " last_error = ?, updated_at = ?, started_at = NULL WHERE id = ?",
            (state.value, attempts, run_at, outcome.exit_code, outcome.error, now, run.job_id),
        )
        self._insert_run(conn, run, now, outcome, output, output_total)

    @translating
    def recover_expired(
        self, lease_seconds: float, end_processes: Callable[[RecoveredJob], LostRunFate]
    ) -> list[RecoveredJob]:
        now = self._now_us()
        cutoff = now - int(lease_seconds * 1_000_000)
        # A heartbeat more than a lease ahead means the clock was stepped back: it counts
        # as written now, or a worker that died just before the step would keep its job
        # until the clock caught up (hours, maybe). A live worker renews it anyway.
        ahead = now + int(lease_seconds * 1_000_000)
        # A read first: the write lock is taken only when there is something to take back.
        stale_workers = self._conn.execute(
            "SELECT 1 FROM workers WHERE heartbeat_at < ? OR heartbeat_at > ? LIMIT 1",
            (cutoff, ahead),
        ).fetchone()
        if (
            not stale_workers
            and not self._conn.execute(_EXPIRED_SQL, {"cutoff": cutoff}).fetchone()
        ):
            return []
        recovered: list[RecoveredJob] = []
        lost = Outcome(OutcomeKind.WORKER_LOST, error="worker lost")
        with self._write() as conn:
            conn.execute("UPDATE workers SET heartbeat_at = ? WHERE heartbeat_at > ?", (now, ahead))
            for row in conn.execute(_EXPIRED_SQL, {"cutoff": cutoff}).fetchall():
                job_id, worker_id, runs_total, attempts, max_retries, started_at = row[:6]
                run_no = max(runs_total, 1)
                job = RecoveredJob(job_id, run_no, worker_id, *row[6:])
                fate = end_processes(job)  # before the job can be claimed again
                recovered.append(job)
                if fate is LostRun.NOT_STARTED and runs_total >= 1:
                    conn.execute(f"{_UNCLAIM_SQL} WHERE id = ?", (job_id,))
                    continue
                conn.execute("UPDATE jobs SET runs_total = ? WHERE id = ?", (run_no, job_id))
                run = _RunInProgress(job_id, run_no, worker_id, started_at or now)
                if isinstance(fate, Outcome):
                    # It ended; only the recording was lost with its worker.
                    self._record(conn, run, fate, now, None, None)
                    continue
                # Keep what the lost run had published: often the clue to why it died.
                live = conn.execute(
                    "SELECT data, total FROM live_output WHERE job_id = ? AND n = ?",
                    (job_id, run_no),
                ).fetchone()
                output, total = live if live else (None, None)
                self._record_failure(conn, run, attempts, max_retries, lost, now, output, total)
            conn.execute("DELETE FROM workers WHERE heartbeat_at < ?", (cutoff,))
        return recovered


class _RunInProgress(NamedTuple):
    job_id: str
    n: int
    worker_id: str | None
    started_at: int


def _output_total(output: bytes | None, output_total: int | None) -> int | None:
    """Bytes the run wrote: as given, else the captured output's length."""
    return len(output) if output_total is None and output is not None else output_total


def _fence_args(run: _RunInProgress) -> tuple[str, str | None, int]:
    return (run.job_id, run.worker_id, run.n)


def _job_from_row(row: Sequence[Any]) -> Job:
    return Job(
        id=row[0],
        command=row[1],
        state=JobState(row[2]),
        attempts=row[3],
        max_retries=row[4],
        priority=row[5],
        run_at=from_micros(row[6]),
        timeout=row[7],
        cwd=row[8],
        env=json.loads(row[9]) if row[9] != "{}" else {},  # most jobs: no parse
        created_at=from_micros(row[10]),
        updated_at=from_micros(row[11]),
        exit_code=row[12],
        last_error=row[13],
        worker_id=row[14],
        runs_total=row[15],
    )
