"""Keeping a long-lived PostgreSQL queue healthy: purge, vacuum, diagnostics.

A mixin of PostgresStore (it uses the store's link); kept apart so the queue's
hot path stays in postgres.py. Backups belong to PostgreSQL's own tools.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from queuectl.domain import Diagnostic, JobState
from queuectl.errors import InvalidInput, OperationFailed
from queuectl.store.postgres_schema import LATEST_VERSION, schema_version

if TYPE_CHECKING:
    from queuectl.store.postgres_connection import Link

_PURGEABLE = """
SELECT state, count(*) FROM jobs WHERE state = ANY(%s) AND updated_at < %s GROUP BY state
"""
# One batch in one statement: a short transaction, so claims wait for one batch at most.
_PURGE = """
WITH doomed AS (
    SELECT id FROM jobs WHERE state = ANY(%s) AND updated_at < %s
    ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED
), runs_gone AS (
    DELETE FROM runs WHERE job_id IN (SELECT id FROM doomed)
), output_gone AS (
    DELETE FROM live_output WHERE job_id IN (SELECT id FROM doomed)
)
DELETE FROM jobs WHERE id IN (SELECT id FROM doomed)
"""
_VACUUM = "VACUUM (ANALYZE) jobs, runs, live_output, job_counts, run_minutes, run_totals"
_HEALTH = """
SELECT now(), pg_database_size(current_database()),
       (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()),
       (SELECT count(*) FROM pg_stat_activity),
       current_setting('max_connections')::int, current_setting('server_version')
"""
# `doctor` warns past this share of max_connections (each worker holds three).
_CONNECTIONS_WARN = 0.8
# ... and past this difference between this host's clock and the database's.
_CLOCK_SKEW_WARN = 5.0


class PostgresMaintenance:
    if TYPE_CHECKING:  # provided by PostgresStore
        _link: Link
        _url: str

    def purgeable_counts(self, states: Sequence[JobState], before: datetime) -> dict[JobState, int]:
        """How many jobs `purge` would delete, per state."""
        values = [state.value for state in states]
        rows = self._link.run(lambda conn: conn.execute(_PURGEABLE, (values, before)).fetchall())
        found = dict(rows)
        return {state: int(found.get(state.value, 0)) for state in states}

    def purge(self, states: Sequence[JobState], before: datetime, batch_size: int) -> int:
        """Delete up to `batch_size` finished jobs (and their runs) last updated before `before`.

        Call again until it returns 0. Repeated after a dropped connection, a batch
        deletes the next jobs of the same kind, which is what the caller asked for.
        """
        for state in states:
            if state not in (JobState.COMPLETED, JobState.DEAD):
                raise InvalidInput(f"only completed and dead jobs can be purged, not {state.value}")
        params = ([state.value for state in states], before, batch_size)
        return self._link.run(lambda conn: conn.execute(_PURGE, params).rowcount)

    def reclaim_space(self, max_pages: int = 2000) -> bool:
        """VACUUM the queue's tables: freed space is reused, and trailing pages returned.

        (VACUUM FULL would give everything back but lock the queue while it copies.)
        """
        self._link.run(lambda conn: conn.execute(_VACUUM))
        return False  # one VACUUM does all there is to do

    def backup(self, destination: str) -> None:
        raise OperationFailed(
            f"queuectl backs up SQLite files only; for {self._url} use PostgreSQL's tools, "
            f"e.g. pg_dump --format=custom --file={destination} <the database URL>"
        )

    def diagnostics(self) -> list[Diagnostic]:
        """Checks `doctor` prints: schema, connections, clock, size."""
        version = self._link.run(schema_version)
        asked_at = time.time()
        health = self._link.run(lambda conn: conn.execute(_HEALTH).fetchone())
        assert health is not None
        now, size, ours, total, limit, server = health
        skew = now.timestamp() - (asked_at + time.time()) / 2
        return [
            Diagnostic("server", True, f"PostgreSQL {server} at {self._url}", ""),
            Diagnostic(
                "schema",
                version == LATEST_VERSION,
                f"version {version}",
                "" if version <= LATEST_VERSION else "upgrade queuectl",
            ),
            Diagnostic(
                "connections",
                total < _CONNECTIONS_WARN * limit,
                f"{total} of max_connections {limit} in use ({ours} on this database)",
                "each worker holds three connections: raise max_connections or run fewer "
                "workers (a pooler in session mode also works; LISTEN needs session mode)",
            ),
            Diagnostic(
                "clock",
                abs(skew) < _CLOCK_SKEW_WARN,
                f"this host's clock is {-skew:+.1f}s from the database's",
                "queuectl times everything by the database clock, but a job's run_at is "
                "absolute: synchronise this host's clock (NTP)",
            ),
            Diagnostic("database size", True, f"{size / 1024 / 1024:.0f} MiB", ""),
        ]
