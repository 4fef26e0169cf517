"""Storage faults: a disk that fills up, a read-only mount, the data directory deleted
under a running worker, a truncated or corrupt database file.

Each must give a clear `Error:` line and exit 1 (CLI), or a clean exit with one log
line (worker); never a traceback; and never a job marked completed that did not run.
Every job here touches a marker file named after itself, which proves it ran.

Mounts need root (CI runs as root); where mount is denied the tests skip, saying so.
File modes prove nothing as root, hence real read-only and size-limited mounts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.worker_helpers import Queue, is_running, parse_pids, processes_of_home
from tests.helpers import (
    CliResult,
    assert_error,
    queuectl_executable,
    run_cli_concurrently,
    wait_until,
)
from tests.reliability.helpers import (
    bind_mount,
    cli_environment,
    enqueue_file,
    log_problems,
    make_read_only,
    status,
    tmpfs,
)

FAST = {"lease_seconds": "2", "poll_interval": "0.2", "backoff_base": "1"}


def _no_traceback(result: CliResult) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result


def _marker_job(markers: Path, job_id: str, seconds: float = 0.0, pad: int = 0) -> dict[str, str]:
    """A job that proves it ran by appending its run number to markers/ID (a line a run);
    `pad` bytes of comment make it big."""
    sleep = f"sleep {seconds}; " if seconds else ""
    comment = f" # {'x' * pad}" if pad else ""
    return {
        "id": job_id,
        "command": f"{sleep}echo $QUEUECTL_ATTEMPT >> {markers / job_id}{comment}",
    }


def _completed_without_running(
    queue: Queue, markers: Path, env: dict[str, str | None] | None = None
) -> list[str]:
    listed = queue.cli("list", "--state", "completed", "--json", env=env)
    return [job["id"] for job in json.loads(listed.stdout) if not (markers / job["id"]).exists()]


# --- a full disk -------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small", "3m") as mount:
        yield mount


def test_a_full_disk_fails_clearly_loses_nothing_and_recovers(
    queue: Queue, small_disk: Path
) -> None:
    env: dict[str, str | None] = {"QUEUECTL_DB": str(small_disk / "queue.db")}
    markers = queue.files / "markers"
    markers.mkdir()
    ballast = small_disk / "ballast"  # deleted at the end: the space that comes back
    ballast.write_bytes(b"\0" * 2 * 1024 * 1024)
    for key, value in FAST.items():
        queue.cli("config", "set", key, value, env=env)
    accepted = [f"j{n:03d}" for n in range(60)]
    enqueue_file(queue, [_marker_job(markers, i, 0.05) for i in accepted], env=env)

    # Fill the disk with batches of large jobs until one is refused: all or nothing.
    for batch_no in range(40):
        batch = [_marker_job(markers, f"big{batch_no}-{n}", pad=150_000) for n in range(3)]
        result = enqueue_file(queue, batch, env=env, check=False)
        if result.returncode != 0:
            assert_error(result, 1)
            assert "no space left" in result.stderr, result
            break
        accepted += [job["id"] for job in batch]
    else:
        pytest.fail("the 3 MiB disk never filled up")
    listed = json.loads(queue.cli("list", "--json", env=env).stdout)
    assert [job["id"] for job in listed] == accepted, "a refused batch left jobs behind"
    assert_error(queue.cli("enqueue", '{"command": "true"}', env=env, check=False), 1)
    assert_error(queue.cli("config", "set", "max_retries", "4", env=env, check=False), 1)
    assert queue.cli("config", "get", "max_retries", env=env).stdout.strip() == "3"

    # Workers on a full disk: each exits with one clear line; nothing is marked completed
    # that did not run, whatever the moment the disk ran out.
    started = queue.cli("worker", "start", "--count", "2", env=env, check=False)
    _no_traceback(started)
    queue.wait(lambda: not processes_of_home(queue.home), 30, "the workers to give up")
    assert log_problems(queue.home, ("Traceback",)) == []
    assert list((queue.home / "run").iterdir()) == [], "scratch files left behind"
    assert _completed_without_running(queue, markers, env) == []

    # Space again: every job runs to completion (a run cut short is recovered).
    ballast.unlink()
    queue.cli("worker", "start", "--count", "2", env=env)
    queue.wait(
        lambda: status(queue, env)["jobs"]["completed"] == len(accepted),
        60,
        "every accepted job to complete",
    )
    assert _completed_without_running(queue, markers, env) == []
    queue.cli("worker", "stop", "--timeout", "30", env=env, timeout=60)


def test_a_disk_filling_up_under_running_workers(queue: Queue, small_disk: Path) -> None:
    env: dict[str, str | None] = {"QUEUECTL_DB": str(small_disk / "queue.db")}
    markers = queue.files / "markers"
    markers.mkdir()
    for key, value in FAST.items():
        queue.cli("config", "set", key, value, env=env)
    enqueue_file(queue, [_marker_job(markers, f"r{n:03d}", 0.02) for n in range(100)], env=env)
    pids = parse_pids(queue.cli("worker", "start", "--count", "2", env=env).stdout)
    queue.wait(lambda: len(list(markers.iterdir())) >= 10, 30, "some jobs to run")

    with open(small_disk / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass  # ENOSPC: the disk is full

    queue.wait(lambda: not any(is_running(pid) for pid in pids), 30, "the workers to stop")
    assert log_problems(queue.home, ("Traceback",)) == []
    logs = "".join(path.read_text() for path in (queue.home / "logs").iterdir())
    assert "no space left for database" in logs, logs
    assert _completed_without_running(queue, markers, env) == []

    # A worker that could not record its last outcomes left them in its scratch
    # directory: the worker that recovers its jobs records them instead of running
    # those jobs again, then sweeps the directory.
    (small_disk / "filler").unlink()
    [rescuer] = parse_pids(queue.cli("worker", "start", env=env).stdout)
    queue.wait(lambda: status(queue, env)["jobs"]["completed"] == 100, 60, "every job to complete")
    assert _completed_without_running(queue, markers, env) == []
    ran_twice = {
        p.name: p.read_text().split() for p in markers.iterdir() if len(p.read_text().split()) > 1
    }
    assert ran_twice == {}, "jobs that completed ran again"
    rescuer_id = next(w["id"] for w in status(queue, env)["workers"] if w["pid"] == rescuer)
    queue.wait(
        lambda: [p.name for p in (queue.home / "run").iterdir()] == [rescuer_id],
        15,
        "the stopped workers' scratch to be swept",
    )
    queue.cli("worker", "stop", "--timeout", "30", env=env, timeout=60)


# --- a read-only mount -------------------------------------------------------------------
def test_a_read_only_database_fails_clearly_and_changes_nothing(
    queue: Queue, tmp_path: Path
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    enqueue_file(
        queue,
        [{"id": "a", "command": "true"}, {"id": "b", "command": "true"}],
        env={"QUEUECTL_DB": str(real / "queue.db")},
    )
    before = (real / "queue.db").read_bytes()
    files_before = sorted(real.iterdir())  # the database and the writers' lock file
    assert files_before == [real / "queue.db", real / "queue.db-lock"]
    with bind_mount(real, tmp_path / "view") as view:
        result = make_read_only(view)
        if result.returncode != 0:
            pytest.skip(f"cannot remount read-only: {result.stderr.strip()}")
        env: dict[str, str | None] = {"QUEUECTL_DB": str(view / "queue.db")}
        commands = [
            ("enqueue", '{"command": "true"}'),
            ("list",),
            ("status", "--json"),
            ("show", "a"),
            ("config", "set", "max_retries", "5"),
            ("dlq", "retry", "--all"),
            ("worker", "start"),
            ("worker", "run", "--burst"),
            ("init-db",),
        ]
        for args in commands:
            result = queue.cli(*args, env=env, check=False)
            assert_error(result, 1)
            assert "read-only" in result.stderr, (args, result)
        assert processes_of_home(queue.home) == []
    assert (real / "queue.db").read_bytes() == before
    assert sorted(real.iterdir()) == files_before


# --- the data directory deleted ------------------------------------------------------------
def test_a_worker_whose_data_directory_is_deleted_stops_cleanly(
    queue: Queue, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    enqueue_file(queue, [_marker_job(markers, "running", 1.0), _marker_job(markers, "next")])
    stderr_path = tmp_path / "worker.err"
    with open(stderr_path, "wb") as stderr:
        worker = subprocess.Popen(
            [queuectl_executable(), "worker", "run"],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            env=cli_environment(queue.home),
        )
    try:
        queue.wait_job("running", "processing")
        shutil.rmtree(queue.home)
        # A worker on a deleted database is invisible to `status` and `worker stop`:
        # it must notice by itself, finish the job it runs and exit.
        code = worker.wait(timeout=20)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
    errors = stderr_path.read_text()
    assert code == 0, errors
    assert "Traceback" not in errors, errors
    assert "deleted or replaced" in errors, errors
    assert (markers / "running").exists()

    # The CLI starts afresh, with a new, empty database.
    status = queue.cli("status", "--json")
    assert json.loads(status.stdout)["jobs"]["total"] == 0


def test_a_background_worker_whose_home_is_recreated_stops(queue: Queue) -> None:
    """`rm -rf ~/.queuectl` under a background worker, then any command: a new database at
    the same path. The worker, still on the deleted one, must stop by itself (its log went
    with the directory: here only its exit is seen)."""
    [pid] = queue.start(1)
    shutil.rmtree(queue.home)
    queue.cli("init-db")
    wait_until(lambda: not is_running(pid), timeout=20, what="the worker to stop")
    assert queue.cli("worker", "stop").stdout.strip() == "No workers running."


# --- truncated and corrupt files --------------------------------------------------------------
def _truncate_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _truncate_header(path: Path) -> None:
    os.truncate(path, 50)


def _garbage_header(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.write(b"this is not a database at all!!!")


def _garbage_pages(path: Path) -> None:
    with open(path, "r+b") as handle:
        for page in range(2, path.stat().st_size // 4096, 3):
            handle.seek(page * 4096 + 100)
            handle.write(os.urandom(512))


CORRUPTIONS = {
    "truncated-to-half": _truncate_half,
    "truncated-to-50-bytes": _truncate_header,
    "garbage-header": _garbage_header,
    "garbage-in-pages": _garbage_pages,
}


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS))
def test_a_corrupt_database_gives_a_clear_error(queue: Queue, tmp_path: Path, corrupt: str) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    enqueue_file(queue, [_marker_job(markers, f"k{n:03d}", pad=200) for n in range(300)])
    assert not Path(f"{queue.db_path}-wal").exists(), "the database is not checkpointed"
    CORRUPTIONS[corrupt](queue.db_path)

    commands = [
        ("status",),
        ("list", "--json"),
        ("show", "k007"),
        ("enqueue", '{"command": "true"}'),
        ("dlq", "list"),
        ("config", "list"),
        ("worker", "start"),
        ("worker", "run", "--burst"),
    ]
    results = run_cli_concurrently(*commands, env={"QUEUECTL_HOME": str(queue.home)})
    for args, result in zip(commands, results, strict=True):
        _no_traceback(result)
        if result.returncode != 0:
            assert_error(result, 1)
            assert "corrupt" in result.stderr or "malformed" in result.stderr, (args, result)
    queue.cleanup()
    assert log_problems(queue.home, ("Traceback",)) == []
    listed = queue.cli("list", "--state", "completed", "--json", check=False)
    if listed.returncode == 0:
        ran = {path.name for path in markers.iterdir()}
        assert {job["id"] for job in json.loads(listed.stdout)} <= ran


def test_an_empty_database_file_is_an_empty_queue(queue: Queue) -> None:
    """SQLite's rule, documented: a zero-length file is a new database, not a corrupt one."""
    queue.enqueue("true")
    os.truncate(queue.db_path, 0)
    status = json.loads(queue.cli("status", "--json").stdout)
    assert status["jobs"]["total"] == 0
    assert queue.enqueue("true")
