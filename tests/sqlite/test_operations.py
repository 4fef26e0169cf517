"""Operations on a live SQLite queue: purge while workers run, backup under load, log rotation."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path

from queuectl.cli.workers import configure_logging
from queuectl.domain import JobState, Outcome, OutcomeKind
from queuectl.store.sqlite import SqliteStore
from queuectl.worker.runtime import host_name
from tests.helpers import new_job, queuectl_executable, run_cli, wait_until, worker_info

SUCCESS = Outcome(OutcomeKind.SUCCEEDED, exit_code=0)


def _completed_jobs(store: SqliteStore, count: int, prefix: str) -> None:
    store.register_worker(worker_info("filler"))
    store.enqueue([new_job(f"{prefix}{i}") for i in range(count)])
    claim = store.claim("filler")
    while claim is not None:
        claim = store.finish(claim, SUCCESS, b"", claim_next=True).next_claim
    store.unregister_worker("filler")


def test_purge_keeps_claims_flowing_and_counts_right(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    store = SqliteStore(db)
    _completed_jobs(store, 3000, "old")
    before = store.now() + timedelta(microseconds=1)
    store.enqueue([new_job(f"new{i}") for i in range(2000)])

    # A claimer keeps working through the purge; every claim's wait is recorded.
    waits: list[float] = []
    done = threading.Event()

    def claimer() -> None:
        mine = SqliteStore(db, durable=False)
        mine.register_worker(worker_info("claimer"))
        while not done.is_set():
            started = time.monotonic()
            claim = mine.claim("claimer")
            waits.append(time.monotonic() - started)
            if claim is None:
                return
            mine.finish(claim, SUCCESS, b"")
        mine.close()

    thread = threading.Thread(target=claimer)
    thread.start()
    purged = 0
    while batch := store.purge([JobState.COMPLETED], before, 100):
        purged += batch
    done.set()
    thread.join(30)
    assert purged == 3000  # the old ones only: the new ones finished after `before`
    counts = store.counts()
    assert sum(counts.values()) == len(store.list_jobs())
    assert not [job for job in store.list_jobs() if job.id.startswith("old")]
    assert len(waits) > 10 and max(waits) < 5.0  # claims never stalled behind the purge


def test_purge_cli_dry_run_and_state_filter(tmp_path: Path) -> None:
    env = {"QUEUECTL_HOME": str(tmp_path / "home")}
    store = SqliteStore(tmp_path / "home" / "queue.db")
    _completed_jobs(store, 30, "c")
    store.enqueue([new_job("waiting")])
    result = run_cli("purge", "--older-than", "0s", "--dry-run", env=env)
    assert result.returncode == 0 and "Would purge 30 job(s)" in result.stdout, result
    assert len(store.list_jobs()) == 31
    result = run_cli("purge", "--state", "dead", "--older-than", "0s", env=env)
    assert "Purged 0 job(s)" in result.stdout
    result = run_cli("purge", "--older-than", "0s", env=env)
    assert "Purged 30 job(s)" in result.stdout
    assert [job.id for job in store.list_jobs()] == ["waiting"]
    result = run_cli("purge", "--state", "pending", "--older-than", "1d", env=env)
    assert result.returncode == 2 and "Error:" in result.stderr


def test_backup_under_load_is_a_consistent_copy(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"QUEUECTL_HOME": str(home)}
    jobs = "\n".join(f'{{"id": "j{i}", "command": "true"}}' for i in range(1500))
    assert run_cli("enqueue", "--file", "-", input=jobs, env=env).returncode == 0
    assert run_cli("worker", "start", "--count", "2", env=env).returncode == 0
    try:
        store = SqliteStore(home / "queue.db")
        wait_until(lambda: store.counts()[JobState.COMPLETED] > 100, 60, what="workers to start")
        copy = tmp_path / "copy.db"
        result = run_cli("backup", str(copy), env=env)
        assert result.returncode == 0, result
        assert store.counts()[JobState.PENDING] > 0, "the backup was not taken under load"
    finally:
        run_cli("worker", "stop", "--force", "--timeout", "20", env=env)
    restored = SqliteStore(copy)
    assert sorted(job.id for job in restored.list_jobs()) == sorted(f"j{i}" for i in range(1500))
    counts = restored.counts()
    by_state: dict[JobState, int] = {}
    for job in restored.list_jobs():
        by_state[job.state] = by_state.get(job.state, 0) + 1
    assert {s: n for s, n in counts.items() if n} == by_state  # counts agree with the rows
    assert restored.diagnostics()[0].ok  # integrity
    assert (copy.stat().st_mode & 0o777) == 0o600
    again = run_cli("backup", str(copy), env=env)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_worker_logs_rotate_by_size(tmp_path: Path) -> None:
    log_file = tmp_path / "worker.log"
    configure_logging("w-test", str(log_file), max_bytes=2000)
    try:
        for i in range(300):
            logging.getLogger("queuectl.worker").info("line %d of the worker log", i)
    finally:
        logging.getLogger().handlers.clear()
    files = sorted(path.name for path in tmp_path.iterdir())
    assert files == ["worker.log", "worker.log.1", "worker.log.2", "worker.log.3"]
    assert all((tmp_path / name).stat().st_size <= 2100 for name in files)


def test_doctor_reports_health_and_exits_zero(tmp_path: Path) -> None:
    env = {"QUEUECTL_HOME": str(tmp_path / "home")}
    result = run_cli("doctor", env=env)
    assert result.returncode == 0, result
    assert "integrity" in result.stdout and "healthy" in result.stdout


def test_doctor_points_at_a_registered_worker_whose_process_is_gone(tmp_path: Path) -> None:
    env = {"QUEUECTL_HOME": str(tmp_path / "home")}
    store = SqliteStore(tmp_path / "home" / "queue.db")
    gone = subprocess.Popen([queuectl_executable(), "--version"], stdout=subprocess.DEVNULL)
    gone.wait()
    store.register_worker(worker_info("w-gone", pid=gone.pid, host=host_name()))
    result = run_cli("doctor", env=env)
    assert result.returncode == 1
    assert "w-gone" in result.stdout and "process is gone" in result.stdout
