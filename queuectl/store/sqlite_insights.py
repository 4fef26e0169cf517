"""Insights on SQLite: statistics, totals and job search for `stats`, the dashboard, /metrics.

A mixin of SqliteStore (it uses the store's connection and clock). Every figure
comes from an index or from the tables that migration 2's triggers keep
(run_minutes, run_totals; job_counts from migration 1), so reading costs the
same with 10 jobs as with 1,000,000. Only a text search reads the jobs
themselves, because no index answers "contains".

This module is imported by every command (SqliteStore inherits the mixin), so
the insights value types are imported only when a method runs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from queuectl.store.run_stats import DURATION_BOUNDS_SECONDS
from queuectl.store.sqlite_producer import BusyWaitingConnection, translating

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see queuectl.records)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from queuectl.domain import JobState
    from queuectl.store.insights import JobPage, QueueStats, RunTotals

    T = TypeVar("T")

_MINUTE_US = 60_000_000
_RUNNABLE = "state IN ('pending', 'failed')"

# The earliest run_at of the waiting jobs, in the runnable index ordered by priority
# first: one index seek per distinct priority instead of a walk over every waiting job.
_OLDEST_WAITING_SQL = f"""
WITH RECURSIVE priorities(p) AS (
    SELECT (SELECT priority FROM jobs INDEXED BY jobs_runnable WHERE {_RUNNABLE}
            ORDER BY priority DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT priority FROM jobs INDEXED BY jobs_runnable WHERE {_RUNNABLE} AND priority < p
            ORDER BY priority DESC LIMIT 1)
    FROM priorities WHERE p IS NOT NULL
)
SELECT min((SELECT run_at FROM jobs INDEXED BY jobs_runnable WHERE {_RUNNABLE} AND priority = p
            ORDER BY priority DESC, run_at LIMIT 1))
FROM priorities WHERE p IS NOT NULL
"""


_COMPLETED_N = "CASE result WHEN 'completed' THEN n ELSE 0 END"
_FAILED_N = "CASE result WHEN 'completed' THEN 0 ELSE n END"
_PER_MINUTE_SQL = f"""
SELECT minute, sum({_COMPLETED_N}), sum({_FAILED_N}) FROM run_minutes WHERE minute >= ?
GROUP BY minute
"""
_PER_WORKER_SQL = f"""
SELECT worker_id, sum(completed), sum(failed) FROM (
    SELECT minute, worker_id, sum({_COMPLETED_N}) AS completed, sum({_FAILED_N}) AS failed
    FROM run_minutes WHERE minute >= ? GROUP BY minute, worker_id
) GROUP BY worker_id
"""
_PER_BUCKET_SQL = """
SELECT result, bucket, sum(n), sum(duration_sum), max(duration_max) FROM run_minutes
WHERE minute >= ? GROUP BY result, bucket
"""


class SqliteInsights:
    """The Insights protocol (queuectl.store.insights) for SqliteStore."""

    # Set by SqliteStore.
    path: str
    _conn: BusyWaitingConnection
    _clock: Callable[[], float]

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction, so the figures of one answer agree with each other."""
        conn = self._conn
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    @translating
    def stats(self, window_seconds: float) -> QueueStats:
        from queuectl.store.insights import bucket_rows_from_micros, build_stats, check_window
        from queuectl.timeutil import from_micros

        check_window(window_seconds)
        now_us = int(self._clock() * 1_000_000)
        since_us = now_us - int(window_seconds * 1_000_000)
        first_minute = since_us // _MINUTE_US
        with self._snapshot() as conn:
            counts = self._counts(conn)
            oldest = self._oldest_pending_age(conn, now_us)
            # GROUP BYs that follow the primary key (minute, worker_id, ...) stream; only
            # the small per-worker and per-bucket results are sorted.
            minute_rows = conn.execute(_PER_MINUTE_SQL, (first_minute,)).fetchall()
            worker_rows = conn.execute(_PER_WORKER_SQL, (first_minute,)).fetchall()
            bucket_rows = conn.execute(_PER_BUCKET_SQL, (first_minute,)).fetchall()
        return build_stats(
            since=from_micros(since_us),
            until=from_micros(now_us),
            counts=counts,
            oldest_pending_age=oldest,
            bounds=DURATION_BOUNDS_SECONDS,
            minute_rows=minute_rows,
            worker_rows=worker_rows,
            bucket_rows=bucket_rows_from_micros(bucket_rows),
        )

    @translating
    def run_totals(self) -> RunTotals:
        from queuectl.store.insights import bucket_rows_from_micros, summarize

        rows = self._conn.execute(
            "SELECT result, bucket, n, duration_sum, duration_max FROM run_totals"
        ).fetchall()
        return summarize(
            bucket_rows_from_micros(rows),
            DURATION_BOUNDS_SECONDS,
        )

    @translating
    def oldest_pending_age(self) -> float | None:
        return self._oldest_pending_age(self._conn, int(self._clock() * 1_000_000))

    def _oldest_pending_age(self, conn: sqlite3.Connection, now_us: int) -> float | None:
        row = conn.execute(_OLDEST_WAITING_SQL).fetchone()
        earliest: int | None = row[0] if row else None
        if earliest is None or earliest > now_us:
            return None  # nothing waits, or only jobs scheduled for later
        return (now_us - earliest) / 1_000_000

    def _counts(self, conn: sqlite3.Connection) -> dict[JobState, int]:
        from queuectl.domain import JobState

        rows = dict(conn.execute("SELECT state, n FROM job_counts").fetchall())
        return {state: int(rows.get(state.value, 0)) for state in JobState}

    @translating
    def search_jobs(
        self,
        state: JobState | None = None,
        text: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> JobPage:
        from queuectl.store.insights import SEARCH_COUNT_LIMIT, JobPage
        from queuectl.store.sqlite import _JOB_COLUMNS, _job_from_row

        where: list[str] = []
        params: list[Any] = []
        if state is not None:
            where.append("state = ?")  # the (state, seq) index, walked newest first
            params.append(state.value)
        if text:
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append("(id LIKE ? ESCAPE '\\' OR command LIKE ? ESCAPE '\\')")
            params += [pattern, pattern]
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        with self._snapshot() as conn:
            rows = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs{condition} ORDER BY seq DESC LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
            if text and len(rows) < limit and (rows or offset == 0):
                total, exact = offset + len(rows), True  # the scan for the page saw them all
            elif text:
                total = conn.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM jobs{condition} LIMIT ?)",
                    (*params, SEARCH_COUNT_LIMIT + 1),
                ).fetchone()[0]
                exact = total <= SEARCH_COUNT_LIMIT
                total = min(total, SEARCH_COUNT_LIMIT)
            else:
                counts = self._counts(conn)
                total = counts[state] if state is not None else sum(counts.values())
                exact = True
        return JobPage([_job_from_row(row) for row in rows], total, exact, offset, limit)
