"""SQLite schema: numbered migrations, and the import of the original system's database.

`PRAGMA user_version` holds the schema version; `schema_migrations` keeps the
history. Each migration runs inside the caller's write transaction.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Callable
from datetime import datetime, timedelta

from queuectl import settings
from queuectl.errors import InvalidInput
from queuectl.store.run_stats import DURATION_BOUNDS_US, STATS_RETENTION_MINUTES
from queuectl.timeutil import now_utc, parse_timestamp, to_micros

_SCHEMA_1 = """
CREATE TABLE jobs (
    seq          INTEGER PRIMARY KEY,          -- enqueue order
    id           TEXT NOT NULL UNIQUE,
    command      TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,   -- finished attempts since enqueue / dlq retry
    max_retries  INTEGER NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 0,
    run_at       INTEGER NOT NULL,             -- microseconds since the epoch, UTC
    timeout      REAL NOT NULL DEFAULT 0,
    cwd          TEXT NOT NULL,
    env          TEXT NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    exit_code    INTEGER,
    last_error   TEXT,
    worker_id    TEXT,
    runs_total   INTEGER NOT NULL DEFAULT 0,   -- runs over the job's life; fences outcomes
    started_at   INTEGER                       -- start of the run in progress
);
-- Kept small on purpose: every index is written on each state change (twice per job).
-- The claim reads this index only: as cheap with 10 jobs as with 1,000,000.
CREATE INDEX jobs_runnable ON jobs (priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed');
-- `list --state`, and the few processing jobs for recovery and `status`.
CREATE INDEX jobs_state_seq ON jobs (state, seq);

-- Finished runs; the run in progress lives in its job's row (started_at, worker_id),
-- so a job costs one insert here, when it ends.
CREATE TABLE runs (
    job_id       TEXT NOT NULL,
    n            INTEGER NOT NULL,
    worker_id    TEXT,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    exit_code    INTEGER,
    signal       INTEGER,
    error        TEXT,
    output       BLOB,                         -- the last output_limit bytes
    output_total INTEGER,                      -- bytes written in all
    PRIMARY KEY (job_id, n)
);

-- Output of runs in progress, published by the worker's heartbeat for `logs --follow`.
CREATE TABLE live_output (
    job_id       TEXT PRIMARY KEY,
    n            INTEGER NOT NULL,
    data         BLOB NOT NULL,
    total        INTEGER NOT NULL
);

CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE workers (
    id             TEXT PRIMARY KEY,
    host           TEXT NOT NULL,
    pid            INTEGER NOT NULL,
    pid_start      INTEGER NOT NULL,
    started_at     INTEGER NOT NULL,
    heartbeat_at   INTEGER NOT NULL,
    stop_requested INTEGER NOT NULL DEFAULT 0
);

-- Counts per state, kept by triggers so `status` never scans the jobs.
CREATE TABLE job_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL);
INSERT INTO job_counts (state, n) VALUES
    ('pending', 0), ('processing', 0), ('completed', 0), ('failed', 0), ('dead', 0);
CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
    UPDATE job_counts SET n = n + 1 WHERE state = NEW.state;
END;
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1 WHERE state = OLD.state;
END;
CREATE TRIGGER jobs_count_update AFTER UPDATE OF state ON jobs
    WHEN OLD.state IS NOT NEW.state BEGIN
    UPDATE job_counts SET n = n - 1 WHERE state = OLD.state;
    UPDATE job_counts SET n = n + 1 WHERE state = NEW.state;
END;

CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
"""


def _migration_1(conn: sqlite3.Connection) -> None:
    legacy = _is_original_system_db(conn)
    if legacy:
        conn.execute("ALTER TABLE jobs RENAME TO legacy_jobs")
        conn.execute("ALTER TABLE config RENAME TO legacy_config")
    # executescript() would commit the caller's transaction: run statement by statement.
    for statement in _split_sql(_SCHEMA_1):
        conn.execute(statement)
    if legacy:
        _import_original_system(conn)
        conn.execute("DROP TABLE legacy_jobs")
        conn.execute("DROP TABLE legacy_config")


_MINUTE_US = 60_000_000

_SCHEMA_2 = """
-- One row per minute, worker, result and duration bucket: a run adds 1 to its row.
-- result: 'completed', 'retried' (failed, will run again) or 'dead' (failed into the DLQ).
CREATE TABLE run_minutes (
    minute       INTEGER NOT NULL,             -- minutes since the epoch when the runs ended
    worker_id    TEXT NOT NULL,                -- '' when unknown
    result       TEXT NOT NULL,
    bucket       INTEGER NOT NULL,             -- index into run_stats.DURATION_BOUNDS_US
    n            INTEGER NOT NULL,
    duration_sum INTEGER NOT NULL,             -- microseconds
    duration_max INTEGER NOT NULL,
    PRIMARY KEY (minute, worker_id, result, bucket)
) WITHOUT ROWID;
-- The same over the queue's whole life: at most 3 x 23 rows, never decreasing.
CREATE TABLE run_totals (
    result       TEXT NOT NULL,
    bucket       INTEGER NOT NULL,
    n            INTEGER NOT NULL,
    duration_sum INTEGER NOT NULL,
    duration_max INTEGER NOT NULL,
    PRIMARY KEY (result, bucket)
) WITHOUT ROWID;
INSERT INTO run_totals (result, bucket, n, duration_sum, duration_max)
    SELECT result, bucket, count(*), sum(d), max(d) FROM ({old_runs}) GROUP BY result, bucket;
INSERT INTO run_minutes (minute, worker_id, result, bucket, n, duration_sum, duration_max)
    SELECT minute, worker, result, bucket, count(*), sum(d), max(d) FROM ({old_runs})
    WHERE minute >= {first_minute}
    GROUP BY minute, worker, result, bucket;
-- Plain VALUES rather than a subquery: this runs once per job, on the workers' hot path.
CREATE TRIGGER runs_stats AFTER INSERT ON runs BEGIN
    INSERT INTO run_minutes (minute, worker_id, result, bucket, n, duration_sum, duration_max)
        VALUES ({new_minute}, {new_worker}, {new_result}, {new_bucket}, 1, {new_d}, {new_d})
        ON CONFLICT DO UPDATE SET n = n + 1, duration_sum = duration_sum + excluded.duration_sum,
            duration_max = max(duration_max, excluded.duration_max);
    INSERT INTO run_totals (result, bucket, n, duration_sum, duration_max)
        VALUES ({new_result}, {new_bucket}, 1, {new_d}, {new_d})
        ON CONFLICT DO UPDATE SET n = n + 1, duration_sum = duration_sum + excluded.duration_sum,
            duration_max = max(duration_max, excluded.duration_max);
END;
-- A new key appears a few times a minute: the moment to drop minutes past the retention.
CREATE TRIGGER run_minutes_prune AFTER INSERT ON run_minutes BEGIN
    DELETE FROM run_minutes WHERE minute < NEW.minute - {retention};
END;
"""


def _migration_2(conn: sqlite3.Connection) -> None:
    """Run statistics kept by triggers, so `stats` and /metrics never scan jobs or runs.

    A `runs` row is inserted exactly once, when a run ends, in the transaction that
    records the outcome; its trigger adds the run to its per-minute row and to the
    all-time totals. Nothing ever subtracts, so purging jobs (or runs) cannot make
    a counter go backwards. Runs recorded before this migration are counted once here.
    """
    first_minute = (to_micros(now_utc()) // _MINUTE_US) - STATS_RETENTION_MINUTES
    old = _run_figures("r.")
    new = _run_figures("NEW.")
    script = _SCHEMA_2.format(
        old_runs=f"SELECT {', '.join(f'{v} AS {k}' for k, v in old.items())} FROM runs r",
        **{f"new_{name}": value for name, value in new.items()},
        first_minute=first_minute,
        retention=STATS_RETENTION_MINUTES,
    )
    for statement in _split_sql(script):
        conn.execute(statement)


def _run_figures(run: str) -> dict[str, str]:
    """SQL expressions for a finished run's row (`run` is "NEW." or a table alias): its
    minute, worker, result, duration bucket and duration d in microseconds.

    Success is exit code 0 without an error. A failed run sent its job to the DLQ
    when it is the job's latest run and the job is dead (a run row is written after
    its job's row); any other failed run was followed by a retry.
    """
    d = f"max({run}finished_at - {run}started_at, 0)"
    ok = f"{run}exit_code IS 0 AND {run}error IS NULL"
    dead = f"SELECT state = 'dead' AND runs_total = {run}n FROM jobs WHERE id = {run}job_id"
    buckets = " ".join(
        f"WHEN {d} <= {bound} THEN {i}" for i, bound in enumerate(DURATION_BOUNDS_US)
    )
    return {
        "minute": f"{run}finished_at / {_MINUTE_US}",
        "worker": f"coalesce({run}worker_id, '')",
        "result": f"CASE WHEN {ok} THEN 'completed' WHEN ({dead}) THEN 'dead' ELSE 'retried' END",
        "bucket": f"CASE {buckets} ELSE {len(DURATION_BOUNDS_US)} END",
        "d": d,
    }


def _migration_3(conn: sqlite3.Connection) -> None:
    """New pending jobs are counted by the statement that adds them, not by a trigger.

    A trigger fires once a row: it halved the rate of `enqueue --file` (45,000
    rows/s with it, 85,000+ without). Its WHEN clause skips pending rows, so
    SqliteStore.enqueue adds their number to job_counts once a batch; jobs of any
    other state (the original system's, imported) are still counted by it.
    """
    conn.execute("DROP TRIGGER jobs_count_insert")
    conn.execute(
        "CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs"
        " WHEN NEW.state IS NOT 'pending' BEGIN"
        " UPDATE job_counts SET n = n + 1 WHERE state = NEW.state; END"
    )


MIGRATIONS: list[tuple[int, str, Callable[[sqlite3.Connection], None]]] = [
    (1, "initial schema (imports the original system's tables when present)", _migration_1),
    (2, "run statistics: per-minute and all-time counters kept by triggers", _migration_2),
    (3, "pending jobs counted once an enqueue, not by a trigger on every row", _migration_3),
]
LATEST_VERSION = MIGRATIONS[-1][0]


def _split_sql(script: str) -> list[str]:
    """Split a schema script into statements (triggers contain ';' inside BEGIN ... END)."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        stripped = line.split("--", 1)[0].rstrip()
        if not stripped:
            continue
        current.append(stripped)
        text = "\n".join(current)
        if stripped.endswith(";") and sqlite3.complete_statement(text):
            statements.append(text)
            current = []
    return statements


def _is_original_system_db(conn: sqlite3.Connection) -> bool:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "jobs" not in tables:
        return False
    columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    return "seq" not in columns and {"id", "command", "state", "attempts"} <= columns


def _legacy_time(text: object, fallback: datetime) -> datetime:
    if not isinstance(text, str):
        return fallback
    try:
        return parse_timestamp(text)
    except InvalidInput:
        return fallback


def _import_original_system(conn: sqlite3.Connection) -> None:
    """Carry every job and valid setting of the original system over.

    Its `processing` jobs become lost runs that the normal recovery takes back;
    its `failed` jobs become runnable after their backoff from updated_at.
    """
    # Here, not at the top: it brings the domain types, which `queuectl enqueue`
    # (which imports this module to check the schema version) never needs.
    from queuectl.retry import retry_delay

    stored: dict[str, str] = {}
    for key, value in conn.execute("SELECT key, value FROM legacy_config"):
        canonical = settings.normalize_key(str(key))
        try:
            stored[canonical] = settings.lookup(canonical).validate(str(value))
        except InvalidInput as exc:
            print(
                f"Warning: dropped setting {key!r} = {value!r} from the old database: {exc}",
                file=sys.stderr,
            )
    conn.executemany("INSERT OR REPLACE INTO config (key, value) VALUES (?, ?)", stored.items())
    effective = settings.Config.from_stored(stored)

    now = now_utc()
    columns = {row[1] for row in conn.execute("PRAGMA table_info(legacy_jobs)")}
    order = "created_at, rowid" if "created_at" in columns else "rowid"
    rows = conn.execute(
        "SELECT id, command, state, attempts, max_retries, "
        + ("created_at, updated_at" if "updated_at" in columns else "NULL, NULL")
        + f" FROM legacy_jobs ORDER BY {order}"
    ).fetchall()
    for job_id, command, state, attempts, max_retries, created, updated in rows:
        created_at = _legacy_time(created, now)
        updated_at = _legacy_time(updated, created_at)
        attempts = int(attempts or 0)
        max_retries = int(max_retries if max_retries is not None else effective.max_retries)
        run_at = created_at
        runs_total = attempts
        state = str(state)
        if state == "failed":
            run_at = updated_at + timedelta(
                seconds=retry_delay(attempts, effective.backoff_base, effective.backoff_max)
            )
        elif state == "processing":
            runs_total = attempts + 1  # the run in flight: recovery records it as lost
        elif state not in ("pending", "completed", "dead"):
            print(
                f"Warning: job {job_id!r} had unknown state {state!r}; queued as pending",
                file=sys.stderr,
            )
            state = "pending"
        conn.execute(
            "INSERT INTO jobs (id, command, state, attempts, max_retries, priority, run_at, "
            "timeout, cwd, env, created_at, updated_at, runs_total, started_at) "
            "VALUES (?, ?, ?, ?, ?, 0, ?, 0, ?, '{}', ?, ?, ?, ?)",
            (
                str(job_id),
                str(command),
                state,
                attempts,
                max_retries,
                to_micros(run_at),
                os.path.expanduser("~"),
                to_micros(created_at),
                to_micros(updated_at),
                runs_total,
                to_micros(updated_at) if state == "processing" else None,
            ),
        )
