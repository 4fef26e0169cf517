"""Every query of the PostgreSQL store, named. Times are always the server's now().

Parameters are psycopg placeholders; the store (postgres.py) only runs these.
"""

from __future__ import annotations

JOB_COLUMNS = (
    "id, command, state, attempts, max_retries, priority, run_at, timeout, cwd, env, "
    "created_at, updated_at, exit_code, last_error, worker_id, runs_total"
)
RUNNABLE = "state IN ('pending', 'failed')"

NOW = "SELECT now()"

# --- configuration ---------------------------------------------------------------------
STORED_CONFIG = "SELECT key, value FROM config"
SET_CONFIG = """
INSERT INTO config (key, value) VALUES (%s, %s)
ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""

# --- producers ----------------------------------------------------------------------------
# A batch in one statement; WITH ORDINALITY keeps the batch's order in `seq`.
ENQUEUE = """
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
EXISTING_IDS = "SELECT id FROM jobs WHERE id = ANY(%s)"
COUNT_IDS = "SELECT count(*) FROM jobs WHERE id = ANY(%s)"

# --- inspection -----------------------------------------------------------------------------
GET_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s"
GET_RUNS = """
SELECT job_id, n, started_at, finished_at, exit_code, signal, error, worker_id
FROM runs WHERE job_id = %s
UNION ALL
SELECT id, runs_total, started_at, NULL, NULL, NULL, NULL, worker_id
FROM jobs WHERE id = %s AND state = 'processing'
ORDER BY 2
"""
RUNS_TOTAL = "SELECT runs_total FROM jobs WHERE id = %s"
LIVE_OUTPUT = "SELECT data, total FROM live_output WHERE job_id = %s AND n = %s"
RUN_OUTPUT = "SELECT output, output_total FROM runs WHERE job_id = %s AND n = %s"
IS_RUNNING = "SELECT 1 FROM jobs WHERE id = %s AND state = 'processing' AND runs_total = %s"
LIST_JOBS = f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY seq LIMIT %s"
LIST_JOBS_IN_STATE = f"SELECT {JOB_COLUMNS} FROM jobs WHERE state = %s ORDER BY seq LIMIT %s"
JOB_STATES = "SELECT id, state FROM jobs WHERE id = ANY(%s)"
# By the unfinished states: the (state, seq) index skips the completed jobs.
UNFINISHED_JOB_IDS = "SELECT id FROM jobs WHERE state = ANY(%s) ORDER BY seq"
COUNTS = "SELECT state, sum(n), count(*) FROM job_counts GROUP BY state"
# Folds the counter deltas into one row per state; SKIP LOCKED: never waits for another.
COMPACT_COUNTS = """
WITH folded AS (
    DELETE FROM job_counts
    WHERE ctid = ANY (ARRAY (SELECT ctid FROM job_counts FOR UPDATE SKIP LOCKED))
    RETURNING state, n
)
INSERT INTO job_counts (state, n)
SELECT state, sum(n) FROM folded GROUP BY state HAVING sum(n) <> 0
"""
NEXT_RUN_AT = f"SELECT min(run_at) FROM jobs WHERE {RUNNABLE}"
RUNNABLE_NOW = f"SELECT EXISTS (SELECT 1 FROM jobs WHERE {RUNNABLE} AND run_at <= now())"

# --- dead letter queue --------------------------------------------------------------------
LOCK_STATES = "SELECT id, state FROM jobs WHERE id = ANY(%s) FOR UPDATE"
RETRY_DEAD = """
UPDATE jobs SET state = 'pending', attempts = 0, run_at = now(), updated_at = now()
WHERE id = ANY(%s)
"""
RETRY_ALL_DEAD = """
UPDATE jobs SET state = 'pending', attempts = 0, run_at = now(), updated_at = now()
WHERE state = 'dead' RETURNING id
"""
COUNT_STILL_DEAD = """
SELECT count(*), count(*) FILTER (WHERE state = 'dead') FROM jobs WHERE id = ANY(%s)
"""

# --- workers ------------------------------------------------------------------------------------
REGISTER_WORKER = """
INSERT INTO workers (id, host, pid, pid_start, started_at, heartbeat_at)
VALUES (%s, %s, %s, %s, %s, now())
ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
    pid_start = excluded.pid_start, started_at = excluded.started_at,
    heartbeat_at = excluded.heartbeat_at, stop_requested = false
"""
UNREGISTER_WORKER = "DELETE FROM workers WHERE id = %s"
HEARTBEAT = "UPDATE workers SET heartbeat_at = now() WHERE id = %s RETURNING stop_requested"
REQUEST_STOP = "UPDATE workers SET stop_requested = true WHERE id = ANY(%s)"
LIST_WORKERS = """
SELECT w.id, w.host, w.pid, w.pid_start, w.started_at, w.heartbeat_at,
       (SELECT j.id FROM jobs j WHERE j.worker_id = w.id AND j.state = 'processing' LIMIT 1),
       w.stop_requested
FROM workers w ORDER BY w.started_at, w.id
"""

# --- claim and finish -------------------------------------------------------------------------
CLAIM = f"""
UPDATE jobs SET state = 'processing', worker_id = %(worker)s, runs_total = runs_total + 1,
                started_at = now(), updated_at = now(), claim_token = %(token)s
WHERE seq = (SELECT seq FROM jobs WHERE {RUNNABLE} AND run_at <= now()
               -- An unregistered worker (frozen past its lease, not yet registered
               -- again) must not take a job it would at once be declared lost with.
               AND EXISTS (SELECT 1 FROM workers WHERE id = %(worker)s)
             ORDER BY priority DESC, run_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING {JOB_COLUMNS}, started_at
"""
# A claimed job that never started goes back as it was (the worker is stopping).
RELEASE = """
UPDATE jobs SET state = CASE WHEN attempts = 0 THEN 'pending' ELSE 'failed' END,
                runs_total = runs_total - 1, started_at = NULL, claim_token = NULL
WHERE id = %s AND state = 'processing' AND worker_id = %s AND runs_total = %s
"""
# After a dropped connection: did the claim made with this token commit?
FIND_CLAIM = f"""
SELECT {JOB_COLUMNS}, started_at FROM jobs WHERE state = 'processing' AND claim_token = %s
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
    -- Without output of its own (a lost run), the run keeps what it had published.
    SELECT id, %(run)s, %(worker)s, coalesce(%(started)s, now()), now(), %(exit_code)s,
           %(signal)s, %(error)s,
           coalesce(%(output)s, (SELECT data FROM live_output l
                                 WHERE l.job_id = done.id AND l.n = %(run)s)),
           coalesce(%(output_total)s, (SELECT total FROM live_output l
                                       WHERE l.job_id = done.id AND l.n = %(run)s))
    FROM done
    ON CONFLICT (job_id, n) DO UPDATE SET
        worker_id = excluded.worker_id, started_at = excluded.started_at,
        finished_at = excluded.finished_at, exit_code = excluded.exit_code,
        signal = excluded.signal, error = excluded.error, output = excluded.output,
        output_total = excluded.output_total
    RETURNING 1
), cleared AS (
    DELETE FROM live_output WHERE job_id IN (SELECT id FROM done)
)"""
RECORD = _RECORD_CTES + "\nSELECT count(*) FROM recorded"
# Finish and claim the next job in one statement (one round trip, one commit). The finished
# job is `processing` in the statement's snapshot, so `following` never takes it.
RECORD_AND_CLAIM = (
    _RECORD_CTES
    + f""", following AS ({CLAIM})
SELECT (SELECT count(*) FROM recorded), following.*
FROM (VALUES (1)) AS one (x) LEFT JOIN following ON true"""
)
# After a dropped connection: did the finish of this run, with this outcome, commit?
RUN_RECORDED = """
SELECT 1 FROM runs
WHERE job_id = %s AND n = %s AND worker_id = %s AND exit_code IS NOT DISTINCT FROM %s::integer
      AND signal IS NOT DISTINCT FROM %s::integer AND error IS NOT DISTINCT FROM %s::text
"""
PUBLISH_OUTPUT = """
INSERT INTO live_output (job_id, n, data, total)
SELECT id, runs_total, %s, %s FROM jobs
WHERE id = %s AND state = 'processing' AND worker_id = %s AND runs_total = %s
ON CONFLICT (job_id) DO UPDATE SET n = excluded.n, data = excluded.data, total = excluded.total
"""

# --- recovery -------------------------------------------------------------------------------------
_LEASE_CUTOFF = "now() - %(lease)s::float8 * interval '1 second'"
_EXPIRED = f"""
SELECT j.id, j.worker_id, j.runs_total, j.attempts, j.max_retries, j.started_at,
       w.host, w.pid, w.pid_start
FROM jobs j LEFT JOIN workers w ON w.id = j.worker_id
WHERE j.state = 'processing' AND (w.id IS NULL OR w.heartbeat_at < {_LEASE_CUTOFF})
"""
# A heartbeat more than a lease ahead means the server's clock was stepped back: it counts
# as written now, or a worker that died just before the step would keep its job until the
# clock caught up (hours, maybe). A live worker renews it anyway.
_LEASE_AHEAD = "now() + %(lease)s::float8 * interval '1 second'"
# A read first: rows are locked only when there is something to take back.
ANY_EXPIRED = f"""
SELECT EXISTS (SELECT 1 FROM workers
               WHERE heartbeat_at < {_LEASE_CUTOFF} OR heartbeat_at > {_LEASE_AHEAD})
       OR EXISTS ({_EXPIRED})
"""
# SKIP LOCKED, as DELETE_STALE_WORKERS below: no deadlock between two recoverers.
CLAMP_HEARTBEATS_AHEAD = f"""
UPDATE workers SET heartbeat_at = now() WHERE id IN (
    SELECT id FROM workers WHERE heartbeat_at > {_LEASE_AHEAD} FOR UPDATE SKIP LOCKED
)
"""
# SKIP LOCKED: a job another recoverer (or its finishing worker) holds is theirs.
LOCK_EXPIRED = f"{_EXPIRED} FOR UPDATE OF j SKIP LOCKED"
# SKIP LOCKED here too: two recoverers deleting the same rows in different orders would
# deadlock; a row another one holds is being deleted already.
DELETE_STALE_WORKERS = f"""
DELETE FROM workers WHERE id IN (
    SELECT id FROM workers WHERE heartbeat_at < {_LEASE_CUTOFF} FOR UPDATE SKIP LOCKED
)
"""

# --- insights (postgres_insights.py) ----------------------------------------------------------
# Figures read together: one snapshot, so they agree with each other.
READ_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
# The earliest run_at of the waiting jobs, in the runnable index ordered by priority first:
# a loose index scan, one index seek per distinct priority instead of a walk over every
# waiting job. The caller compares it with now().
OLDEST_WAITING = f"""
WITH RECURSIVE priorities (p) AS (
    (SELECT priority FROM jobs WHERE {RUNNABLE} ORDER BY priority DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT priority FROM jobs WHERE {RUNNABLE} AND priority < p
            ORDER BY priority DESC LIMIT 1)
    FROM priorities WHERE p IS NOT NULL
)
SELECT min((SELECT run_at FROM jobs WHERE {RUNNABLE} AND priority = p
            ORDER BY priority DESC, run_at LIMIT 1)), now()
FROM priorities WHERE p IS NOT NULL
"""
_COMPLETED_N = "CASE result WHEN 'completed' THEN n ELSE 0 END"
_FAILED_N = "CASE result WHEN 'completed' THEN 0 ELSE n END"
# Minutes since the epoch: the windows below start at such a minute.
PER_MINUTE = f"""
SELECT minute, sum({_COMPLETED_N})::bigint, sum({_FAILED_N})::bigint FROM run_minutes
WHERE minute >= %s GROUP BY minute
"""
PER_WORKER = f"""
SELECT worker_id, sum({_COMPLETED_N})::bigint, sum({_FAILED_N})::bigint FROM run_minutes
WHERE minute >= %s GROUP BY worker_id
"""
PER_BUCKET = """
SELECT result, bucket, sum(n)::bigint, sum(duration_sum)::bigint, max(duration_max)
FROM run_minutes WHERE minute >= %s GROUP BY result, bucket
"""
# The all-time deltas summed; the last column says how many rows that took.
RUN_TOTALS = """
SELECT result, bucket, sum(n)::bigint, sum(duration_sum)::bigint, max(duration_max), count(*)
FROM run_totals GROUP BY result, bucket
"""
# Folds the run total deltas into one row per (result, bucket), as COMPACT_COUNTS does.
COMPACT_RUN_TOTALS = """
WITH folded AS (
    DELETE FROM run_totals
    WHERE ctid = ANY (ARRAY (SELECT ctid FROM run_totals FOR UPDATE SKIP LOCKED))
    RETURNING result, bucket, n, duration_sum, duration_max
)
INSERT INTO run_totals (result, bucket, n, duration_sum, duration_max)
SELECT result, bucket, sum(n), sum(duration_sum), max(duration_max) FROM folded
GROUP BY result, bucket
"""
# Jobs newest first; the caller adds WHERE conditions (state uses jobs_state_seq).
SEARCH_JOBS = f"SELECT {JOB_COLUMNS} FROM jobs{{where}} ORDER BY seq DESC LIMIT %s OFFSET %s"
# Matches counted up to a limit, so a common word stays cheap.
COUNT_MATCHES = "SELECT count(*) FROM (SELECT 1 FROM jobs{where} LIMIT %s) AS matches"
# A search is ASCII case-insensitive whatever the database's locale: folded with translate()
# (exact, but about 7x dearer than ILIKE), tried only on what ILIKE (case-insensitive by the
# locale, which folds ASCII too) let through. Parameters: the pattern, lowercased, 4 times.
_ASCII_FOLDED = "translate({column}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"
_CASELESS = "({column} ILIKE %s AND " + _ASCII_FOLDED + " LIKE %s ESCAPE '\\')"
TEXT_MATCH_CASELESS = f"({_CASELESS.format(column='id')} OR {_CASELESS.format(column='command')})"
# Text without ASCII letters: case does not matter. Parameters: the pattern, twice.
TEXT_MATCH = "(id LIKE %s ESCAPE '\\' OR command LIKE %s ESCAPE '\\')"
