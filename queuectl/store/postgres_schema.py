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

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "initial schema", _SCHEMA_1),
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
