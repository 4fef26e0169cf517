"""Insights on PostgreSQL: statistics, totals and job search for `stats`, the dashboard, /metrics.

A mixin of PostgresStore (it uses the store's link). Every figure comes from an
index or from the tables that migration 2's trigger keeps (run_minutes,
run_totals; job_counts from migration 1), so reading costs the same with 10
jobs as with 1,000,000. Only a text search reads the jobs themselves, because
no index answers "contains". Every time is the database's clock, as in the rest
of the store. The queries live in postgres_queries.py.

This module is imported with the store, so the insights value types are
imported only when a method runs.
"""

from __future__ import annotations

import string
from datetime import datetime
from typing import TYPE_CHECKING, Any

from queuectl.store import postgres_queries as q
from queuectl.store.run_stats import DURATION_BOUNDS_SECONDS

if TYPE_CHECKING:
    from queuectl.domain import JobState
    from queuectl.store.insights import JobPage, QueueStats, RunTotals
    from queuectl.store.postgres_connection import Connection, Link

_MINUTE_US = 60_000_000
# run_totals() folds the all-time deltas when it had to add up more rows than this.
_COMPACT_ROWS = 1000
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class PostgresInsights:
    """The Insights protocol (queuectl.store.insights) for PostgresStore."""

    if TYPE_CHECKING:  # provided by PostgresStore
        _link: Link

        def _compact_counts(self) -> None: ...

    def stats(self, window_seconds: float) -> QueueStats:
        from queuectl.store.insights import bucket_rows_from_micros, build_stats, check_window
        from queuectl.timeutil import from_micros, to_micros

        check_window(window_seconds)

        def read(conn: Connection) -> tuple[Any, ...]:
            with conn.transaction():
                conn.execute(q.READ_SNAPSHOT)
                counts = conn.execute(q.COUNTS).fetchall()
                earliest, now = _row(conn, q.OLDEST_WAITING)
                now_us = to_micros(now)
                since_us = now_us - int(window_seconds * 1_000_000)
                first = (since_us // _MINUTE_US,)
                minutes = conn.execute(q.PER_MINUTE, first).fetchall()
                workers = conn.execute(q.PER_WORKER, first).fetchall()
                buckets = conn.execute(q.PER_BUCKET, first).fetchall()
            return counts, _age(earliest, now), now_us, since_us, minutes, workers, buckets

        count_rows, oldest, now_us, since_us, minutes, workers, buckets = self._link.run(read)
        return build_stats(
            since=from_micros(since_us),
            until=from_micros(now_us),
            counts=self._fold_counts(count_rows),
            oldest_pending_age=oldest,
            bounds=DURATION_BOUNDS_SECONDS,
            minute_rows=minutes,
            worker_rows=workers,
            bucket_rows=bucket_rows_from_micros(buckets),
        )

    def run_totals(self) -> RunTotals:
        from queuectl.store.insights import bucket_rows_from_micros, summarize

        rows = self._link.run(lambda conn: conn.execute(q.RUN_TOTALS).fetchall())
        if sum(row[5] for row in rows) > _COMPACT_ROWS:
            self._link.run(lambda conn: conn.execute(q.COMPACT_RUN_TOTALS))
        return summarize(
            bucket_rows_from_micros(rows),
            DURATION_BOUNDS_SECONDS,
        )

    def oldest_pending_age(self) -> float | None:
        earliest, now = self._link.run(lambda conn: _row(conn, q.OLDEST_WAITING))
        return _age(earliest, now)

    def search_jobs(
        self,
        state: JobState | None = None,
        text: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> JobPage:
        from queuectl.store.insights import SEARCH_COUNT_LIMIT, JobPage
        from queuectl.store.postgres import _job_from_row

        if text and "\0" in text:  # PostgreSQL text cannot hold one: nothing contains it
            return JobPage([], 0, True, offset, limit)
        where: list[str] = []
        params: list[Any] = []
        if state is not None:
            where.append("state = %s")  # the (state, seq) index, walked newest first
            params.append(state.value)
        if text:
            folded = text.translate(_ASCII_LOWER)
            escaped = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            if not any(char in string.ascii_letters for char in text):
                where.append(q.TEXT_MATCH)  # no letter whose case could differ
                params += [f"%{escaped}%"] * 2
            else:
                where.append(q.TEXT_MATCH_CASELESS)
                params += [f"%{escaped}%"] * 4
        condition = f" WHERE {' AND '.join(where)}" if where else ""

        def read(conn: Connection) -> tuple[list[Any], int, bool, list[Any] | None]:
            with conn.transaction():
                conn.execute(q.READ_SNAPSHOT)
                rows = conn.execute(
                    q.SEARCH_JOBS.format(where=condition), (*params, limit, offset)
                ).fetchall()
                if text and len(rows) < limit and (rows or offset == 0):
                    return rows, offset + len(rows), True, None  # the page's scan saw them all
                if text:
                    total = _row(
                        conn,
                        q.COUNT_MATCHES.format(where=condition),
                        (*params, SEARCH_COUNT_LIMIT + 1),
                    )[0]
                    return rows, min(total, SEARCH_COUNT_LIMIT), total <= SEARCH_COUNT_LIMIT, None
                return rows, 0, True, conn.execute(q.COUNTS).fetchall()

        rows, total, exact, count_rows = self._link.run(read)
        if count_rows is not None:
            counts = self._fold_counts(count_rows)
            total = counts[state] if state is not None else sum(counts.values())
        return JobPage([_job_from_row(row) for row in rows], total, exact, offset, limit)

    def _fold_counts(self, rows: list[Any]) -> dict[JobState, int]:
        """Per-state counts from the job_counts deltas (q.COUNTS), as PostgresStore.counts."""
        from queuectl.domain import JobState

        if sum(row[2] for row in rows) > _COMPACT_ROWS:
            self._compact_counts()
        totals = {row[0]: int(row[1]) for row in rows}
        return {state: totals.get(state.value, 0) for state in JobState}


def _row(conn: Connection, query: str, params: Any = None) -> tuple[Any, ...]:
    row: tuple[Any, ...] | None = conn.execute(query, params).fetchone()
    assert row is not None
    return row


def _age(earliest: datetime | None, now: datetime) -> float | None:
    """Seconds since `earliest`; None when nothing waits, or only jobs scheduled for later."""
    if earliest is None or earliest > now:
        return None
    return (now - earliest).total_seconds()
