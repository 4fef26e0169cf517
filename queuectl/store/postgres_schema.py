"""PostgreSQL schema: numbered migrations, applied once however many processes start at once.

`schema_migrations` records every applied version. Migrations run in one
transaction under a transaction-scoped advisory lock, so eight workers starting
on a fresh database apply them exactly once and the other seven wait, then find
nothing to do. The schema mirrors the SQLite one (sqlite_schema.py); the
differences are PostgreSQL's types and how per-state counts are kept.
"""

from __future__ import annotations

from typing import Any

import psycopg

from queuectl.errors import StoreUnavailable
from queuectl.store.run_stats import DURATION_BOUNDS_US, STATS_RETENTION_MINUTES

# pg_advisory_xact_lock key for migrations: "queuectl" in ASCII, as a positive bigint.
MIGRATION_LOCK_KEY = 0x7175657565637470
# Idle workers LISTEN on the channel of the schema holding the jobs table; the jobs
# triggers NOTIFY it when a job becomes runnable. One channel per schema, because channels
# are per database and several queues may share one database in different schemas; the
# md5 keeps the name within the 63-byte limit whatever the schema's name.
_CHANNEL_OF_SCHEMA = "'queuectl_jobs_' || left(md5({schema}), 16)"
LISTEN_CHANNEL_QUERY = f"""
SELECT {_CHANNEL_OF_SCHEMA.format(schema="n.nspname")}
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'jobs'::regclass
"""
_NOTIFY = f"PERFORM pg_notify({_CHANNEL_OF_SCHEMA.format(schema='TG_TABLE_SCHEMA')}, '');"

_SCHEMA_1 = f"""
CREATE TABLE jobs (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- enqueue order
    id           text NOT NULL UNIQUE,
    command      text NOT NULL,
    state        text NOT NULL
                 CHECK (state IN ('pending', 'processing', 'completed', 'failed', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,  -- finished attempts since enqueue / dlq retry
    max_retries  bigint NOT NULL,
    priority     bigint NOT NULL DEFAULT 0,
    run_at       timestamptz NOT NULL,
    timeout      double precision NOT NULL DEFAULT 0,
    cwd          text NOT NULL,
    env          text NOT NULL DEFAULT '{{}}',  -- JSON text: jsonb would refuse \\u0000
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    exit_code    integer,
    last_error   text,
    worker_id    text,
    runs_total   integer NOT NULL DEFAULT 0,  -- runs over the job's life; fences outcomes
    started_at   timestamptz,                 -- start of the run in progress
    -- Random number of the claim in progress: after a connection drops in the middle of a
    -- claim, the store looks it up to learn whether the claim committed.
    claim_token  bigint
);
-- The claim reads this index only, in claim order: as cheap with 10 jobs as with 1,000,000.
CREATE INDEX jobs_runnable ON jobs (priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed');
-- `list --state`, and the few processing jobs for recovery and `status`.
CREATE INDEX jobs_state_seq ON jobs (state, seq);

-- Finished runs; the run in progress lives in its job's row (started_at, worker_id).
CREATE TABLE runs (
    job_id       text NOT NULL,
    n            integer NOT NULL,
    worker_id    text,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    exit_code    integer,
    signal       integer,
    error        text,
    output       bytea,   -- the last output_limit bytes
    output_total bigint,  -- bytes written in all
    PRIMARY KEY (job_id, n)
);

-- Output of runs in progress, published by the worker's heartbeat for `logs --follow`.
CREATE TABLE live_output (
    job_id       text PRIMARY KEY,
    n            integer NOT NULL,
    data         bytea NOT NULL,
    total        bigint NOT NULL
);

CREATE TABLE config (key text PRIMARY KEY, value text NOT NULL);

CREATE TABLE workers (
    id             text PRIMARY KEY,
    host           text NOT NULL,
    pid            bigint NOT NULL,
    pid_start      bigint NOT NULL,
    started_at     timestamptz NOT NULL,
    heartbeat_at   timestamptz NOT NULL,
    stop_requested boolean NOT NULL DEFAULT false
);

-- Per-state counts as insert-only deltas, summed by `status` and folded together now and
-- then (PostgresStore.maintain). Five hot counter rows would serialize every claim on
-- their row locks (and deadlock finish+claim against claim); appending never waits.
CREATE TABLE job_counts (state text NOT NULL, n bigint NOT NULL);

-- Statement-level triggers with transition tables: one delta row per state touched by a
-- statement, however many jobs it changed (a bulk enqueue of 10,000 jobs adds one row).
CREATE FUNCTION queuectl_jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_counts (state, n) SELECT state, count(*) FROM new_jobs GROUP BY state;
    IF EXISTS (SELECT 1 FROM new_jobs WHERE state IN ('pending', 'failed')) THEN
        {_NOTIFY}
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION queuectl_jobs_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_counts (state, n)
        SELECT state, sum(n) FROM (
            SELECT state, -1 AS n FROM old_jobs UNION ALL SELECT state, 1 FROM new_jobs
        ) AS changes
        GROUP BY state HAVING sum(n) <> 0;
    -- Wake idle workers when a job may be claimed now (enqueue, dlq retry) or becomes
    -- pending later (so they sleep until its run_at); not on claims and finishes.
    IF EXISTS (SELECT 1 FROM new_jobs
               WHERE state = 'pending' OR (state = 'failed' AND run_at <= now())) THEN
        {_NOTIFY}
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION queuectl_jobs_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_counts (state, n) SELECT state, -count(*) FROM old_jobs GROUP BY state;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION queuectl_jobs_inserted();
CREATE TRIGGER jobs_count_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION queuectl_jobs_updated();
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION queuectl_jobs_deleted();
"""


def _run_figures(run: str, source: str = "") -> str:
    """A query of a finished run's figures: its minute (since the epoch), worker, result,
    duration d in microseconds and duration bucket. `run` is "NEW" or a table alias.

    Success is exit code 0 without an error. A failed run sent its job to the DLQ when
    it is the job's latest run and the job is dead (the finish updates the job in the
    statement that inserts the run, and AFTER triggers see that update); any other
    failed run was followed by a retry. The same rules as sqlite_schema._run_figures.
    """
    ok = f"{run}.exit_code IS NOT DISTINCT FROM 0 AND {run}.error IS NULL"
    dead = (
        f"SELECT j.state = 'dead' AND j.runs_total = {run}.n FROM jobs j WHERE j.id = {run}.job_id"
    )
    buckets = " ".join(f"WHEN d <= {bound} THEN {i}" for i, bound in enumerate(DURATION_BOUNDS_US))
    return f"""
SELECT minute, worker, result, d, CASE {buckets} ELSE {len(DURATION_BOUNDS_US)} END AS bucket
FROM (
    SELECT floor(extract(epoch FROM {run}.finished_at) / 60)::bigint AS minute,
           coalesce({run}.worker_id, '') AS worker,
           CASE WHEN {ok} THEN 'completed'
                WHEN coalesce(({dead}), false) THEN 'dead' ELSE 'retried' END AS result,
           greatest(round(extract(epoch FROM {run}.finished_at - {run}.started_at) * 1000000),
                    0)::bigint AS d
    {source}
) AS figures"""


_SCHEMA_2 = f"""
-- One row per minute, worker, result and duration bucket: a run adds 1 to its row.
-- result: 'completed', 'retried' (failed, will run again) or 'dead' (failed into the DLQ).
-- Keyed by worker, so concurrent finishes of different workers never share a row.
CREATE TABLE run_minutes (
    minute       bigint NOT NULL,    -- minutes since the epoch when the runs ended
    worker_id    text NOT NULL,      -- '' when unknown
    result       text NOT NULL,
    bucket       smallint NOT NULL,  -- index into run_stats.DURATION_BOUNDS_US
    n            bigint NOT NULL,
    duration_sum bigint NOT NULL,    -- microseconds
    duration_max bigint NOT NULL,
    PRIMARY KEY (minute, worker_id, result, bucket)
);
-- The same over the queue's whole life, as insert-only deltas (one row per run) that
-- `run_totals` sums and PostgresStore.maintain folds together now and then, as for
-- job_counts: one hot row per (result, bucket) would serialize every finish of every
-- worker on its row lock. Folding keeps the sums, so the totals never go backwards.
CREATE TABLE run_totals (
    result       text NOT NULL,
    bucket       smallint NOT NULL,
    n            bigint NOT NULL,
    duration_sum bigint NOT NULL,    -- microseconds
    duration_max bigint NOT NULL
);

-- Runs recorded before this migration are counted once here.
INSERT INTO run_totals (result, bucket, n, duration_sum, duration_max)
    SELECT result, bucket, count(*), sum(d), max(d) FROM ({_run_figures("r", "FROM runs r")}
    ) AS old_runs
    GROUP BY result, bucket;
INSERT INTO run_minutes (minute, worker_id, result, bucket, n, duration_sum, duration_max)
    SELECT minute, worker, result, bucket, count(*), sum(d), max(d) FROM ({_run_figures("r", "FROM runs r")}
    ) AS old_runs
    WHERE minute >= floor(extract(epoch FROM now()) / 60)::bigint - {STATS_RETENTION_MINUTES}
    GROUP BY minute, worker, result, bucket;

-- A runs row is inserted exactly once, when its run ends, in the statement that records
-- the outcome; nothing ever subtracts, so purging jobs (and their runs) keeps the counts.
CREATE FUNCTION queuectl_runs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    f record;
BEGIN
    SELECT * INTO STRICT f FROM ({_run_figures("NEW")}
    ) AS new_run;
    -- Contended only by finishes of the same worker.
    INSERT INTO run_minutes AS m (minute, worker_id, result, bucket, n, duration_sum,
                                  duration_max)
        VALUES (f.minute, f.worker, f.result, f.bucket, 1, f.d, f.d)
        ON CONFLICT (minute, worker_id, result, bucket) DO UPDATE SET
            n = m.n + 1, duration_sum = m.duration_sum + excluded.duration_sum,
            duration_max = greatest(m.duration_max, excluded.duration_max);
    -- Appending never waits.
    INSERT INTO run_totals (result, bucket, n, duration_sum, duration_max)
        VALUES (f.result, f.bucket, 1, f.d, f.d);
    RETURN NULL;
END $$;

CREATE TRIGGER runs_stats AFTER INSERT ON runs
    FOR EACH ROW EXECUTE FUNCTION queuectl_runs_inserted();

-- A new key appears a few times a minute: the moment to drop minutes past the retention.
-- SKIP LOCKED: two finishes pruning at once never wait for (or deadlock with) each other.
CREATE FUNCTION queuectl_run_minutes_prune() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM run_minutes
    WHERE ctid = ANY (ARRAY (SELECT ctid FROM run_minutes
                             WHERE minute < NEW.minute - {STATS_RETENTION_MINUTES}
                             FOR UPDATE SKIP LOCKED));
    RETURN NULL;
END $$;

CREATE TRIGGER run_minutes_prune AFTER INSERT ON run_minutes
    FOR EACH ROW EXECUTE FUNCTION queuectl_run_minutes_prune();
"""

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "initial schema", _SCHEMA_1),
    (2, "run statistics: per-minute and all-time counters kept by triggers", _SCHEMA_2),
]
LATEST_VERSION = MIGRATIONS[-1][0]

_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    description text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The newest applied migration; 0 for a database queuectl never touched."""
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,):
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: psycopg.Connection[Any], url: str) -> None:
    """Bring the schema up to LATEST_VERSION; refuse a database newer than this code.

    `conn` is in autocommit mode; the migrations run in one transaction of their own.
    """
    version = schema_version(conn)
    if version == LATEST_VERSION:
        return
    _refuse_newer(version, url)
    with conn.transaction():
        # Serializes concurrent starters; released at commit. Whoever waited re-reads
        # the version and finds the work done.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        conn.execute(_MIGRATIONS_TABLE)
        version = schema_version(conn)
        _refuse_newer(version, url)
        for number, description, script in MIGRATIONS:
            if number > version:
                conn.execute(script.encode())  # several statements: no parameters allowed
                conn.execute(
                    "INSERT INTO schema_migrations (version, description) VALUES (%s, %s)",
                    (number, description),
                )


def _refuse_newer(version: int, url: str) -> None:
    if version > LATEST_VERSION:
        raise StoreUnavailable(
            f"database {url} has schema version {version}, newer than this queuectl "
            f"understands ({LATEST_VERSION}): upgrade queuectl"
        )
