"""What only the SQLite backend promises: its file, its schema, and exact times with an
injected clock (the contract suite itself never injects a clock)."""

from __future__ import annotations

import os
import sqlite3
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from queuectl.domain import HeartbeatReply, JobState, RecoveredJob
from queuectl.errors import StoreUnavailable
from queuectl.store.sqlite import SqliteStore
from queuectl.store.sqlite_schema import LATEST_VERSION
from queuectl.timeutil import from_micros
from tests.helpers import CLOCK_START, SUCCESS, Clock, fail, new_job, worker_info


def test_backoff_grows_as_base_to_the_n_capped(store: SqliteStore, clock: Clock) -> None:
    store.set_config("backoff_base", "2")
    store.set_config("backoff_max", "10")
    store.enqueue([new_job("a", max_retries=6)])
    store.register_worker(worker_info("w"))
    delays = []
    for _ in range(6):
        claim = store.claim("w")
        assert claim is not None
        assert store.finish(claim, fail()).recorded
        job = store.get_job("a")
        assert job is not None
        if job.state is JobState.DEAD:
            break
        delay = job.run_at - job.updated_at
        delays.append(delay.total_seconds())
        # Not a microsecond early...
        clock.now += delay.total_seconds() - 0.000001
        assert store.claim("w") is None
        clock.now += 0.000001
    assert delays == [2, 4, 8, 10, 10]
    job = store.get_job("a")
    assert job is not None
    assert (job.state, job.attempts) == (JobState.DEAD, 6)


def test_delay_is_measured_on_the_store_clock(store: SqliteStore) -> None:
    store.enqueue([new_job("a", delay=5.25)])
    job = store.get_job("a")
    assert job is not None
    assert job.created_at == from_micros(int(CLOCK_START * 1_000_000))
    assert job.run_at - job.created_at == timedelta(seconds=5.25)


def test_lease_expires_after_exactly_lease_seconds_of_silence(
    store: SqliteStore, clock: Clock
) -> None:
    store.enqueue([new_job("a")])
    store.register_worker(worker_info("w"))
    assert store.claim("w") is not None
    calls: list[RecoveredJob] = []
    clock.now += 30
    assert store.recover_expired(30, calls.append) == []
    assert store.heartbeat("w") is HeartbeatReply.CONTINUE
    clock.now += 30.000001
    assert [job.job_id for job in store.recover_expired(30, calls.append)] == ["a"]
    assert [job.job_id for job in calls] == ["a"]
    assert store.heartbeat("w") is HeartbeatReply.UNKNOWN


def test_completion_time_is_the_store_clock(store: SqliteStore, clock: Clock) -> None:
    store.enqueue([new_job("a")])
    store.register_worker(worker_info("w"))
    claim = store.claim("w")
    assert claim is not None
    clock.now += 2.5
    assert store.finish(claim, SUCCESS).recorded
    (run,) = store.get_runs("a")
    assert run.duration == 2.5


def test_file_layout_wal_and_schema_version(store: SqliteStore, db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == list(range(1, LATEST_VERSION + 1))
    conn.close()


def test_opening_again_keeps_everything(db_path: Path, clock: Clock) -> None:
    first = SqliteStore(db_path, clock=clock)
    first.enqueue([new_job("a")])
    first.set_config("max_retries", "9")
    first.close()
    again = SqliteStore(db_path, clock=clock)
    assert [job.id for job in again.list_jobs()] == ["a"]
    assert again.stored_config() == {"max_retries": "9"}
    again.close()


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_new_files_are_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "a" / "b" / "queue.db"
    old = os.umask(umask)
    try:
        store = SqliteStore(path)
        store.enqueue([new_job("a")])
        for suffix in ("", "-wal", "-shm"):
            extra = Path(f"{path}{suffix}")
            if extra.exists():
                assert stat.S_IMODE(extra.stat().st_mode) == 0o600, extra
        store.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_newer_database_is_refused(db_path: Path) -> None:
    SqliteStore(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(StoreUnavailable, match="newer"):
        SqliteStore(db_path)


def test_a_file_that_is_not_a_database_gives_a_queuectl_error(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not an SQLite database, it is a text file" * 100)
    with pytest.raises(StoreUnavailable):
        SqliteStore(db_path)


def test_legacy_job_in_an_unknown_state_is_queued_as_pending(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, command TEXT, state TEXT, attempts INTEGER,"
            " max_retries INTEGER, created_at TEXT, updated_at TEXT)"
        )
        conn.execute("CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute(
            "INSERT INTO jobs VALUES ('odd', 'echo', 'paused', 0, 3,"
            " '2025-11-04T10:30:00+00:00', '2025-11-04T10:30:00+00:00')"
        )
    conn.close()
    store = SqliteStore(db_path)
    job = store.get_job("odd")
    assert job is not None and job.state is JobState.PENDING
    assert "paused" in capsys.readouterr().err
    store.close()
