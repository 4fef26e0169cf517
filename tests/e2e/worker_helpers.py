"""Helpers for the worker end-to-end tests: a queue in a private home, driven through the
real `queuectl` executable, that ends every process it started.

Processes are found through their environment: every worker and every job it runs
inherits the test's QUEUECTL_HOME, so a scan of /proc finds them all, even ones a
test lost track of (a job orphaned by a SIGKILLed worker, a foreground parent).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from tests.helpers import CliResult, queuectl_executable, run_cli, wait_until

T = TypeVar("T")

# Small settings keep every test short; the worker sees them at start-up.
FAST_CONFIG = {"backoff_base": "1", "lease_seconds": "2", "poll_interval": "0.2"}

_PIDS_RE = re.compile(r"PIDs: \[([0-9, ]*)\]")


def epoch(timestamp: str) -> float:
    """Seconds since the epoch of a contract timestamp (ISO 8601 UTC, microseconds, Z)."""
    parsed = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def parse_pids(text: str) -> list[int]:
    match = _PIDS_RE.search(text)
    assert match, f"no PIDs in {text!r}"
    return [int(p) for p in match.group(1).replace(",", " ").split()]


# --- /proc -----------------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (state, ppid, pgrp, session, ...), or None if gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].decode().split()


def is_running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def group_members(pgid: int) -> list[int]:
    """Running (non-zombie) processes whose process group is `pgid`."""
    found = []
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            found.append(pid)
    return found


def sleepers(token: str) -> list[int]:
    """Running `sleep N.TOKEN` processes (see unique_token); never the shell that started them."""
    found = []
    for pid in _all_pids():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            os.path.basename(argv[0]) == b"sleep"
            and any(arg.endswith(f".{token}".encode()) for arg in argv[1:])
            and is_running(pid)
        ):
            found.append(pid)
    return found


def processes_of_home(home: Path) -> list[int]:
    """Running processes started with this QUEUECTL_HOME in their environment."""
    needle = f"QUEUECTL_HOME={home}".encode()
    found = []
    for pid in _all_pids():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environ and is_running(pid):
            found.append(pid)
    return found


def kill_quietly(pids: Iterable[int], signum: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


# --- the queue ---------------------------------------------------------------------------------
class Queue:
    """One test's queue: CLI calls in its own QUEUECTL_HOME, job files in `files`."""

    def __init__(self, home: Path, files: Path) -> None:
        self.home = home
        self.files = files
        self.files.mkdir(parents=True, exist_ok=True)
        self.popens: list[subprocess.Popen[bytes]] = []

    @property
    def db_path(self) -> Path:
        return self.home / "queue.db"

    # CLI
    def cli(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 60,
        env: dict[str, str | None] | None = None,
        cwd: Path | None = None,
        input: str | None = None,
    ) -> CliResult:
        environment: dict[str, str | None] = {"QUEUECTL_HOME": str(self.home), **(env or {})}
        result = run_cli(
            *args, env=environment, cwd=cwd or self.files, timeout=timeout, input=input
        )
        if check:
            assert result.returncode == 0, f"queuectl {' '.join(args)} failed: {result}"
            assert "Traceback" not in result.stderr, result
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def configure(self, **settings: str | float) -> None:
        for key, value in settings.items():
            self.cli("config", "set", key, str(value))

    def enqueue(self, command: str, **fields: Any) -> str:
        job_id = self.cli("enqueue", json.dumps({"command": command, **fields})).stdout.strip()
        assert job_id, "enqueue printed no id"
        return job_id

    def enqueue_many(self, specs: Sequence[dict[str, Any]]) -> list[str]:
        lines = "\n".join(json.dumps(spec) for spec in specs) + "\n"
        return list(json.loads(self.cli("enqueue", "--file", "-", "--json", input=lines).stdout))

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.json("show", job_id))

    def status(self) -> dict[str, Any]:
        return dict(self.json("status"))

    def counts(self) -> dict[str, int]:
        return dict(self.status()["jobs"])

    def worker_pids(self) -> list[int]:
        return sorted(w["pid"] for w in self.status()["workers"])

    # workers
    def start(self, count: int = 1, env: dict[str, str | None] | None = None) -> list[int]:
        result = self.cli("worker", "start", "--count", str(count), env=env, timeout=30)
        pids = parse_pids(result.stdout)
        assert len(pids) == count, result
        return pids

    def foreground(self, count: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """`worker start --foreground` as a child of the test, output to a file."""
        environment = {**os.environ, "QUEUECTL_HOME": str(self.home), **(env or {})}
        with open(self.files / "foreground.out", "ab") as out:
            process = subprocess.Popen(
                [queuectl_executable(), "worker", "start", "--count", str(count), "--foreground"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=self.files,
            )
        self.popens.append(process)
        return process

    # waiting
    def wait(self, predicate: Callable[[], T | None], timeout: float = 15, what: str = "") -> T:
        """wait_until, with the worker logs in the message when it times out."""
        try:
            result = wait_until(predicate, timeout=timeout, interval=0.05, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker logs ---\n{self.worker_logs()}") from None
        assert result is not None
        return result

    def wait_job(
        self, job_id: str, states: str | Sequence[str], timeout: float = 15
    ) -> dict[str, Any]:
        wanted = (states,) if isinstance(states, str) else tuple(states)

        def reached() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["state"] in wanted else None

        return self.wait(reached, timeout, f"job {job_id} to be {'/'.join(wanted)}")

    def wait_workers(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        def reached() -> list[dict[str, Any]] | None:
            workers = list(self.status()["workers"])
            return workers if len(workers) == count else None

        return self.wait(reached, timeout, f"{count} live worker(s) in status")

    def worker_logs(self) -> str:
        logs = self.home / "logs"
        parts = []
        if logs.is_dir():
            for path in sorted(logs.iterdir()):
                parts.append(f"== {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        foreground = self.files / "foreground.out"
        if foreground.exists():
            parts.append(f"== foreground\n{foreground.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts) or "(none)"

    # teardown
    def cleanup(self) -> list[int]:
        """Stop every worker, then kill whatever is left; return the pids that had to be killed."""
        if processes_of_home(self.home):
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.cli("worker", "stop", "--force", "--timeout", "10", check=False, timeout=30)
        for process in self.popens:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        leftovers = processes_of_home(self.home)
        kill_quietly(leftovers)
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not processes_of_home(self.home), timeout=5)
        return leftovers


def stream_lines(path: Path) -> list[str]:
    """The lines a job (or many) appended to `path`; empty if it does not exist yet."""
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"process {process.pid} still running after {timeout}s") from None


_template: list[Path] = []


def _template_database() -> Path:
    """A database with FAST_CONFIG, set up once through the CLI and copied for each test."""
    if not _template:
        directory = Path(tempfile.mkdtemp(prefix="queuectl-e2e-template-"))
        atexit.register(shutil.rmtree, directory, True)
        home = directory / "home"
        for key, value in FAST_CONFIG.items():
            result = run_cli("config", "set", key, value, env={"QUEUECTL_HOME": str(home)})
            assert result.returncode == 0, result
        assert not (home / "queue.db-wal").exists(), "the template is not checkpointed"
        _template.append(home / "queue.db")
    return _template[0]


@contextlib.contextmanager
def fresh_queue(home: Path, files: Path) -> Iterator[Queue]:
    """A queue with FAST_CONFIG; on exit every worker is stopped and every process killed."""
    home.mkdir(mode=0o700)
    shutil.copyfile(_template_database(), home / "queue.db")
    (home / "queue.db").chmod(0o600)
    queue = Queue(home, files)
    try:
        yield queue
    finally:
        queue.cleanup()


def assert_stays(predicate: Callable[[], object], seconds: float, what: str) -> None:
    """Fail as soon as `predicate` turns false within `seconds` (a negative check needs a window)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), f"no longer true: {what}"
        time.sleep(0.05)


def unique_token() -> str:
    """A fraction for `sleep N.TOKEN`: makes a job's processes findable by command line."""
    return f"{random.randrange(10**6):06d}"
