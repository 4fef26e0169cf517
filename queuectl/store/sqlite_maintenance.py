"""Keeping a long-lived SQLite queue healthy: purge, space reclaim, backup, diagnostics.

A mixin of SqliteStore (it uses the store's connection, clock and write
transactions); kept apart so the queue's hot path stays in sqlite.py. Like the
store's, its methods raise queuectl errors only: a worker's retention purge
must meet a StoreUnavailable it handles, not a sqlite3 error.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from queuectl.domain import Diagnostic, JobState
from queuectl.errors import InvalidInput, OperationFailed
from queuectl.store.sqlite_producer import (
    NETWORK_FILESYSTEMS,
    BusyWaitingConnection,
    filesystem_type,
    translate_error,
    translating,
)
from queuectl.store.sqlite_schema import LATEST_VERSION
from queuectl.timeutil import to_micros

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see queuectl.records)

# Pages copied per step of an online backup: small steps let writers in between.
_BACKUP_PAGES_PER_STEP = 1024
# Between tries of a backup step that found the database busy (sqlite3's default: 0.25 s).
_BACKUP_BUSY_SLEEP = 0.005
# What a backup step returns when the database is busy (sqlite3's constants are untyped).
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
# A WAL larger than this after a checkpoint is reported by `doctor`.
_WAL_WARN_BYTES = 256 * 1024 * 1024


class SqliteMaintenance:
    if TYPE_CHECKING:  # provided by SqliteStore
        path: str
        lock_wait: float
        _conn: BusyWaitingConnection

        def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def _now_us(self) -> int: ...

    @translating
    def purgeable_counts(self, states: Sequence[JobState], before: datetime) -> dict[JobState, int]:
        """How many jobs `purge` would delete, per state."""
        cutoff = to_micros(before)
        return {
            state: self._conn.execute(
                "SELECT count(*) FROM jobs WHERE state = ? AND updated_at < ?",
                (state.value, cutoff),
            ).fetchone()[0]
            for state in states
        }

    @translating
    def purge(self, states: Sequence[JobState], before: datetime, batch_size: int) -> int:
        """Delete up to `batch_size` finished jobs (and their runs) last updated before `before`.

        One short write transaction per call, so claims are delayed by one batch
        at most; call again until it returns 0.
        """
        for state in states:
            if state not in (JobState.COMPLETED, JobState.DEAD):
                raise InvalidInput(f"only completed and dead jobs can be purged, not {state.value}")
        placeholders = ",".join("?" for _ in states)
        with self._write() as conn:
            doomed = [
                row[0]
                for row in conn.execute(
                    f"SELECT id FROM jobs WHERE state IN ({placeholders}) AND updated_at < ? "
                    "ORDER BY seq LIMIT ?",
                    (*[s.value for s in states], to_micros(before), batch_size),
                )
            ]
            if not doomed:
                return 0
            marks = ",".join("?" for _ in doomed)
            conn.execute(f"DELETE FROM runs WHERE job_id IN ({marks})", doomed)
            conn.execute(f"DELETE FROM live_output WHERE job_id IN ({marks})", doomed)
            conn.execute(f"DELETE FROM jobs WHERE id IN ({marks})", doomed)
        return len(doomed)

    @translating
    def reclaim_space(self, max_pages: int = 2000) -> bool:
        """Give up to `max_pages` free pages back to the file system (auto_vacuum =
        INCREMENTAL), in one short transaction. True if free pages remain."""
        with self._write() as conn:
            conn.execute(f"PRAGMA incremental_vacuum({int(max_pages)})").fetchall()
            return bool(conn.execute("PRAGMA freelist_count").fetchone()[0])

    @translating
    def backup(self, destination: str) -> None:
        """A consistent copy of the live database, taken without stopping the workers."""
        if os.path.exists(destination):
            raise InvalidInput(f"{destination} already exists; give a new file name")
        try:
            fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            target = sqlite3.connect(destination)
        except OSError as exc:
            raise OperationFailed(f"cannot create {destination}: {exc.strerror}") from None
        deadline = time.monotonic() + self.lock_wait

        def give_up_when_locked_too_long(status: int, _remaining: int, _total: int) -> None:
            # sqlite3 retries a busy step for ever; the store's lock budget applies here too.
            busy = status in (_SQLITE_BUSY, _SQLITE_LOCKED)
            if busy and time.monotonic() > deadline:
                raise sqlite3.OperationalError("database is locked")

        try:
            self._conn.backup(
                target,
                pages=_BACKUP_PAGES_PER_STEP,
                progress=give_up_when_locked_too_long,
                sleep=_BACKUP_BUSY_SLEEP,
            )
            target.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        except sqlite3.Error as exc:
            target.close()
            os.unlink(destination)
            if "locked" in str(exc):
                raise translate_error(exc, self) from exc
            raise OperationFailed(f"backup failed: {exc}") from None
        target.close()
        fd = os.open(destination, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @translating
    def diagnostics(self) -> list[Diagnostic]:
        """Checks `doctor` prints: integrity, schema, free space, WAL size, file system."""
        checks: list[Diagnostic] = []
        result = self._conn.execute("PRAGMA quick_check").fetchall()
        healthy = result == [("ok",)]
        checks.append(
            Diagnostic(
                "integrity",
                healthy,
                "quick_check ok" if healthy else "; ".join(str(r[0]) for r in result[:5]),
                ""
                if healthy
                else "restore from a backup (queuectl backup) or run `sqlite3 "
                f"{self.path} .recover`",
            )
        )
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        checks.append(Diagnostic("schema", version == LATEST_VERSION, f"version {version}", ""))
        stats = os.statvfs(os.path.dirname(self.path))
        free = stats.f_bavail * stats.f_frsize
        checks.append(
            Diagnostic(
                "free space",
                free > 100 * 1024 * 1024,
                f"{free / 1024 / 1024:.0f} MiB free",
                "free disk space, or purge old jobs: queuectl purge --older-than 7d",
            )
        )
        try:
            wal = os.path.getsize(self.path + "-wal")
        except OSError:
            wal = 0
        checks.append(
            Diagnostic(
                "WAL size",
                wal < _WAL_WARN_BYTES,
                f"{wal / 1024 / 1024:.1f} MiB",
                "a long-running reader may block checkpoints; close it, then it shrinks",
            )
        )
        fs = filesystem_type(self.path)
        checks.append(
            Diagnostic(
                "file system",
                fs not in NETWORK_FILESYSTEMS,
                fs or "unknown",
                "SQLite locking is unsafe on network file systems: use PostgreSQL",
            )
        )
        return checks
