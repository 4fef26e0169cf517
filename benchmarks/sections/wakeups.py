"""8. PostgreSQL wake-ups: pick-up latency when idle workers poll instead of LISTEN.

Section 3 measures pick-up with LISTEN/NOTIFY (the default). Here the same jobs
arrive the same way on workers started with QUEUECTL_PG_LISTEN=0, which wake
only every poll_interval: what the wake-ups buy. Also the server sessions each
idle worker holds, with LISTEN and without (a figure for max_connections).
"""

from __future__ import annotations

import time

from _backends import Backend, Database
from _util import Plan, Row, percentile, progress, summary

from sections.pickup import IDLE_WORKERS, SETTLE_SECONDS, pickup_latencies

POLL_INTERVAL = 1.0


def sessions_per_worker(db: Database) -> float:
    """Sessions on this database per idle worker, this process's own one excepted."""
    import psycopg

    assert db.location.dsn is not None
    with psycopg.connect(db.location.dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return (int(row[0]) if row else 0) / IDLE_WORKERS


def idle_workers(db: Database, listen: bool) -> None:
    """IDLE_WORKERS workers, settled into their idle wait."""
    if not listen:
        db.env["QUEUECTL_PG_LISTEN"] = "0"
    db.configure(poll_interval=POLL_INTERVAL)
    db.start_workers(IDLE_WORKERS)
    time.sleep(SETTLE_SECONDS)


def measure(plan: Plan, backend: Backend) -> list[Row]:
    p50, p99, worst, missing, listening, polling = [], [], [], [], [], []
    for run in range(plan.runs):
        progress(f"8. wake-ups {backend.name} run {run + 1}/{plan.runs}")
        with backend.fresh() as db:
            idle_workers(db, listen=True)
            listening.append(sessions_per_worker(db))
        with backend.fresh() as db:
            idle_workers(db, listen=False)
            polling.append(sessions_per_worker(db))
            latencies, never = pickup_latencies(db, plan.pickup_jobs, plan.pickup_rate)
            db.stop_workers()
        missing.append(never)
        if latencies:
            p50.append(percentile(latencies, 0.50))
            p99.append(percentile(latencies, 0.99))
            worst.append(max(latencies))
    how = f"polling every {POLL_INTERVAL:g} s ({plan.pickup_jobs} jobs at {plan.pickup_rate:g}/s)"
    return [
        Row("8", f"8. pick-up p50, {how}", summary(p50, "ms", 1)),
        Row("8", f"8. pick-up p99, {how}", summary(p99, "ms", 1)),
        Row("8", f"8. pick-up max, {how}", summary(worst, "ms", 1)),
        Row(
            "8",
            "8. pick-up, polling: jobs never started",
            f"{sum(missing)} of {plan.pickup_jobs * plan.runs}",
            "0",
        ),
        Row("8", "8. server sessions per idle worker, LISTEN", summary(listening, decimals=1)),
        Row("8", "8. server sessions per idle worker, polling", summary(polling, decimals=1)),
    ]
