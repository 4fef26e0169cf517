"""5. Scale: the same operations with 1,000 jobs and with 1,000,000 (all but 1,000 completed).

The big database is built straight in SQL (one transaction; the triggers keep
the per-state counts right), checked through the library, then copied for
every run so each run starts from the same state. Claim cost is claim() plus
finish() of a no-op outcome through the library, one process, no contention.
On PostgreSQL the table is ANALYZEd after the load, as autovacuum would soon do.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time

from _backends import QUEUECTL, Backend, Database
from _util import Plan, Row, med, number, progress, summary

from queuectl.domain import JobState
from queuectl.timeutil import to_micros
from sections.claims import NO_OP, register

_JOB_COLUMNS = (
    "id, command, state, attempts, max_retries, priority, run_at, timeout, cwd, env, "
    "created_at, updated_at, exit_code, runs_total"
)
_SQLITE_JOBS = f"""
INSERT INTO jobs ({_JOB_COLUMNS})
WITH RECURSIVE n(x) AS (SELECT 1 WHERE :count > 0 UNION ALL SELECT x + 1 FROM n WHERE x < :count)
SELECT :prefix || x, 'true', :state, :runs, 3, 0, :now - 1000000, 0, :cwd, '{{}}', :now, :now,
       :exit_code, :runs
FROM n
"""
_SQLITE_RUNS = """
INSERT INTO runs (job_id, n, worker_id, started_at, finished_at, exit_code, output, output_total)
SELECT id, 1, 'w-bench', :now, :now, 0, x'', 0 FROM jobs WHERE state = 'completed'
"""
# Pending jobs have no count trigger (SQLite schema 3): the inserting statement counts.
_SQLITE_COUNT_PENDING = "UPDATE job_counts SET n = n + ? WHERE state = 'pending'"
_PG_JOBS = f"""
INSERT INTO jobs ({_JOB_COLUMNS})
SELECT %(prefix)s || x, 'true', %(state)s, %(runs)s, 3, 0, now() - interval '1 second', 0,
       %(cwd)s, '{{}}', now(), now(), %(exit_code)s, %(runs)s
FROM generate_series(1, %(count)s) AS x
"""
_PG_RUNS = """
INSERT INTO runs (job_id, n, worker_id, started_at, finished_at, exit_code, output, output_total)
SELECT id, 1, 'w-bench', now(), now(), 0, ''::bytea, 0 FROM jobs WHERE state = 'completed'
"""


def fill(db: Database, completed: int, pending: int) -> None:
    """Add `completed` finished jobs (with their runs), then `pending` runnable ones."""
    store = db.store()  # creates the schema
    now = to_micros(store.now())
    store.close()
    batches = [
        {"prefix": "done-", "count": completed, "state": "completed", "runs": 1, "exit_code": 0},
        {"prefix": "todo-", "count": pending, "state": "pending", "runs": 0, "exit_code": None},
    ]
    for batch in batches:
        batch["cwd"] = str(db.home)
    if db.location.kind == "sqlite":
        _fill_sqlite(db, batches, now)
    else:
        _fill_postgres(db, batches)
    store = db.store()
    try:
        counts = store.counts()
    finally:
        store.close()
    if counts[JobState.COMPLETED] != completed or counts[JobState.PENDING] != pending:
        raise RuntimeError(f"the {completed + pending}-job database has the wrong counts")


def _fill_sqlite(db: Database, batches: list[dict[str, object]], now: int) -> None:
    assert db.location.path is not None
    conn = sqlite3.connect(db.location.path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # a fixture: no need to survive a crash
        conn.execute("BEGIN IMMEDIATE")
        for batch in batches:
            added = conn.execute(_SQLITE_JOBS, {**batch, "now": now}).rowcount
            if batch["state"] == "pending":  # counted by their INSERT, as enqueue does
                conn.execute(_SQLITE_COUNT_PENDING, (added,))
        conn.execute(_SQLITE_RUNS, {"now": now})
        conn.execute("COMMIT")
    finally:
        conn.close()


def _fill_postgres(db: Database, batches: list[dict[str, object]]) -> None:
    import psycopg

    assert db.location.dsn is not None
    with psycopg.connect(db.location.dsn, autocommit=True) as conn:
        with conn.transaction():
            for batch in batches:
                conn.execute(_PG_JOBS, batch)
            conn.execute(_PG_RUNS)
        conn.execute("ANALYZE")


def claim_cost(db: Database, claims: int) -> float:
    """Median microseconds of claim() + finish() through the library."""
    store = db.store(durable=False)
    try:
        register(store, "w-bench")
        costs = []
        for _ in range(claims):
            started = time.perf_counter()
            claim = store.claim("w-bench")
            if claim is None:
                raise RuntimeError("ran out of pending jobs")
            store.finish(claim, NO_OP, b"", 0)
            costs.append(time.perf_counter() - started)
        store.unregister_worker("w-bench")
    finally:
        store.close()
    return 1e6 * med(costs)


def cli_ms(db: Database, args: list[str], repeats: int) -> float:
    """Median wall time of a queuectl command, in ms."""
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(
            [QUEUECTL, *args], env=db.env, cwd=db.home, stdout=subprocess.DEVNULL, check=True
        )
        walls.append(time.perf_counter() - started)
    return 1000 * med(walls)


def measure(plan: Plan, backend: Backend) -> list[Row]:
    with_cli = backend.name == "sqlite"  # PostgreSQL: claim cost only
    sizes = (plan.scale_small, plan.scale_big)
    results: dict[int, dict[str, list[float]]] = {}
    for size in sizes:
        figures: dict[str, list[float]] = {"claim": [], "status": [], "list": []}
        with backend.fresh() as template:
            progress(f"5. scale {backend.name}: building {number(size)} jobs")
            pending = min(size, plan.scale_pending)
            fill(template, size - pending, pending)
            for run in range(plan.runs):
                progress(f"5. scale {backend.name} {number(size)} jobs run {run + 1}/{plan.runs}")
                with backend.fresh(template) as db:
                    figures["claim"].append(claim_cost(db, plan.scale_claims))
                    if with_cli:
                        figures["status"].append(cli_ms(db, ["status"], plan.cli_repeats))
                        figures["list"].append(
                            cli_ms(db, ["list", "--limit", "20"], plan.cli_repeats)
                        )
        results[size] = figures
    small, big = (results[size] for size in sizes)
    names = {
        "claim": (f"claim+finish (median of {plan.scale_claims})", "us"),
        "status": ("`status` wall", "ms"),
        "list": ("`list --limit 20` wall", "ms"),
    }
    rows = []
    for key, (what, unit) in names.items():
        if not small[key]:
            continue
        ratios = [b / s for b, s in zip(big[key], small[key], strict=True)]
        target = "ratio <= 2x" if key in ("claim", "status") else ""
        rows += [
            Row("5", f"5. {what}, {number(sizes[0])} jobs", summary(small[key], unit, 0)),
            Row("5", f"5. {what}, {number(sizes[1])} jobs", summary(big[key], unit, 0)),
            Row("5", f"5. {what}: ratio", summary(ratios, "x", 2), target),
        ]
    return rows
