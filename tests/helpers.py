"""Helpers the test modules import (fixtures live in conftest.py; test databases and the
store factory in stores.py)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from queuectl.domain import Claim, Outcome, OutcomeKind, WorkerInfo
from queuectl.paths import DatabaseLocation
from queuectl.spec import NewJob
from queuectl.store import open_store
from tests.stores import pg_test_url

T = TypeVar("T")

# The JSON contract: ISO 8601 UTC with microseconds, ending in Z.
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")

JOB_KEYS = {
    "id",
    "command",
    "state",
    "attempts",
    "max_retries",
    "priority",
    "run_at",
    "timeout",
    "cwd",
    "created_at",
    "updated_at",
    "exit_code",
    "last_error",
    "worker_id",
}
RUN_KEYS = {"n", "started_at", "finished_at", "exit_code", "signal", "error", "worker_id"}
WORKER_KEYS = {"id", "host", "pid", "started_at", "heartbeat_at", "job_id"}
CONFIG_KEYS = {
    "max_retries",
    "backoff_base",
    "backoff_max",
    "job_timeout",
    "lease_seconds",
    "poll_interval",
}


def queuectl_executable() -> str:
    """The installed entry point of the venv running the tests, else the one on PATH."""
    beside = Path(sys.executable).parent / "queuectl"
    if beside.exists():
        return str(beside)
    found = shutil.which("queuectl")
    if found is None:
        raise RuntimeError("queuectl is not installed: run `pip install -e .` in this venv")
    return found


_PYCACHE = os.path.join(tempfile.gettempdir(), f"queuectl-tests-pycache-{os.getuid()}")


class CliResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def _cli_environment(env: Mapping[str, str | None] | None) -> dict[str, str]:
    environment = dict(os.environ)
    # Each run compiles queuectl again when bytecode is not cached (PYTHONDONTWRITEBYTECODE):
    # cache it outside the repository instead, which halves a short command's run time.
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    environment.setdefault("PYTHONPYCACHEPREFIX", _PYCACHE)
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return environment


def run_cli(
    *args: str,
    input: str | None = None,
    env: Mapping[str, str | None] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 60,
    shell_prefix: str | None = None,
) -> CliResult:
    """Run the real executable; `env` entries override the current environment (None unsets).

    `shell_prefix` runs it as `sh -c '<prefix>; exec queuectl ...'` (e.g. "umask 000").
    """
    argv: list[str] = [queuectl_executable(), *args]
    if shell_prefix is not None:
        argv = ["/bin/sh", "-c", f'{shell_prefix}; exec "$@"', "sh", *argv]
    completed = subprocess.run(
        argv,
        input=input,
        capture_output=True,
        text=True,
        env=_cli_environment(env),
        cwd=cwd,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def run_cli_concurrently(
    *commands: Sequence[str], env: Mapping[str, str | None] | None = None, timeout: float = 60
) -> list[CliResult]:
    """Run several read-only commands at once (saves wall time on snapshots)."""
    environment = _cli_environment(env)
    processes = [
        subprocess.Popen(
            [queuectl_executable(), *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for command in commands
    ]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=timeout)
        results.append(CliResult(process.returncode, stdout, stderr))
    return results


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def new_job(job_id: str, command: str = "true", **fields: Any) -> NewJob:
    """A validated-looking NewJob with sensible defaults, for store-level tests."""
    values: dict[str, Any] = {
        "id": job_id,
        "command": command,
        "max_retries": 3,
        "priority": 0,
        "run_at": None,
        "delay": 0.0,
        "timeout": 0.0,
        "cwd": "/tmp",
        "env": {},
    }
    values.update(fields)
    return NewJob(**values)


def worker_info(worker_id: str, *, pid: int = 4242, host: str | None = None) -> WorkerInfo:
    now = datetime.now(timezone.utc)
    return WorkerInfo(
        id=worker_id,
        host=host or socket.gethostname(),
        pid=pid,
        pid_start_time=123456,
        started_at=now,
        heartbeat_at=now,
    )


def fail(code: int = 1) -> Outcome:
    return Outcome(OutcomeKind.EXITED, exit_code=code, error=f"exited with code {code}")


SUCCESS = Outcome(OutcomeKind.SUCCEEDED, exit_code=0)


def claim_until_empty(location: DatabaseLocation, worker_id: str) -> list[str]:
    """Open an own store and claim until nothing is left (runs in a child process/thread)."""
    store = open_store(location, durable=False)
    claimed: list[str] = []
    try:
        store.register_worker(worker_info(worker_id))
        while True:
            claim: Claim | None = store.claim(worker_id)
            if claim is None:
                return claimed
            claimed.append(claim.job.id)
    finally:
        store.close()


def parse_ts(text: str) -> datetime:
    assert ISO_Z.match(text), f"not ISO 8601 UTC with microseconds and Z: {text!r}"
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def table_rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip()]


def assert_error(result: CliResult, code: int) -> None:
    """The error contract: exit code, an `Error:` line on stderr, no traceback."""
    assert result.returncode == code, result
    assert any(line.startswith("Error:") for line in result.stderr.splitlines()), result
    assert "Traceback" not in result.stderr, result
    assert "Traceback" not in result.stdout, result


def ids_of(jobs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [job["id"] for job in jobs]


def pid_start_time(pid: int) -> int:
    """The kernel start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2 :].split()[19])


def live_worker_info(worker_id: str) -> WorkerInfo:
    """A registration that any liveness check accepts: this very (live) test process."""
    now = datetime.now(timezone.utc)
    pid = os.getpid()
    return WorkerInfo(
        id=worker_id,
        host=socket.gethostname(),
        pid=pid,
        pid_start_time=pid_start_time(pid),
        started_at=now,
        heartbeat_at=now,
    )


def postgres_cli_url(prefix: str) -> Iterator[str]:
    """A fresh schema (named PREFIX_...) of the PostgreSQL test database, as a URL the CLI
    takes; dropped afterwards. Skips the test without QUEUECTL_TEST_PG_URL."""
    url = pg_test_url("PostgreSQL tests")
    import psycopg
    from psycopg import sql

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-c%20search_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


# A minute boundary (30,000,000 minutes since the epoch): where an injected clock starts.
CLOCK_START = 1_800_000_000.0


class Clock:
    """A store clock (seconds since the epoch) that moves only when the test sets `now`;
    SQLite stores take it as `clock=`, so times come out exact."""

    def __init__(self, now: float = CLOCK_START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def read_until_closed(fd: int) -> bytes:
    """Everything left to read on a pseudo-terminal's leader `fd` until the process on the
    other end has closed it (Linux reports that as EIO, not as end of file)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
