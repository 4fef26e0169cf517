"""Helpers for the reliability suites: /proc inspection, mounts, a clock that jumps,
worker-log checks and the reports the suites leave behind.

The suites reuse tests/helpers.py and tests/e2e/worker_helpers.py (the Queue in a
private home, wait_until, processes_of_home); what is here is what they lack.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

import pytest

from queuectl.paths import DatabaseLocation
from tests.e2e.worker_helpers import Queue
from tests.helpers import CliResult, queuectl_executable

# Longer soaks (more jobs, longer chaos) run only when asked for.
SOAK = os.environ.get("QUEUECTL_SOAK", "") not in ("", "0")

REPORT_DIR = Path(tempfile.gettempdir()) / "queuectl-reliability"


def report(name: str, figures: Mapping[str, Any]) -> Path:
    """Print the figures (seen with `pytest -s`) and keep them in a JSON file in tmp."""
    REPORT_DIR.mkdir(exist_ok=True)
    path = REPORT_DIR / f"{name}.json"
    text = json.dumps(figures, indent=2, sort_keys=True, ensure_ascii=False)
    path.write_text(text + "\n")
    print(f"\n--- {name} (also in {path}) ---\n{text}")
    return path


# --- the environment of a CLI process started without waiting for it ------------------
def cli_environment(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """What tests.helpers.run_cli gives a CLI run, for Popen: this home, cached bytecode."""
    environment = dict(os.environ)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    environment.pop("QUEUECTL_DB", None)
    environment.setdefault(
        "PYTHONPYCACHEPREFIX",
        os.path.join(tempfile.gettempdir(), f"queuectl-tests-pycache-{os.getuid()}"),
    )
    environment["QUEUECTL_HOME"] = str(home)
    environment.update(extra or {})
    return environment


def popen_cli(
    home: Path, *args: str, output: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `queuectl ARGS` without waiting; stdout and stderr appended to `output`."""
    with open(output, "ab") as sink:
        return subprocess.Popen(
            [queuectl_executable(), *args],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=cli_environment(home, env),
        )


# --- /proc -----------------------------------------------------------------------------
class Proc(NamedTuple):
    pid: int
    ppid: int
    state: str
    comm: str


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def proc(pid: int) -> Proc | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    comm = data[data.index(b"(") + 1 : data.rindex(b")")].decode(errors="replace")
    fields = data[data.rindex(b")") + 2 :].split()
    return Proc(pid, int(fields[1]), fields[0].decode(), comm)


def environment_of(pid: int) -> dict[str, str] | None:
    try:
        data = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    pairs = (item.partition(b"=") for item in data.split(b"\0") if item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, _, value in pairs}


def cmdline_of(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


class JobProcess(NamedTuple):
    pid: int
    comm: str
    job_id: str
    attempt: int


def job_processes(home: Path) -> list[JobProcess]:
    """Running (not zombie) processes of jobs started by this home's workers."""
    found = []
    for pid in _all_pids():
        info = proc(pid)
        if info is None or info.state in ("Z", "X"):
            continue
        env = environment_of(pid)
        if not env or env.get("QUEUECTL_HOME") != str(home) or "QUEUECTL_JOB_ID" not in env:
            continue
        found.append(
            JobProcess(pid, info.comm, env["QUEUECTL_JOB_ID"], int(env.get("QUEUECTL_ATTEMPT", 0)))
        )
    return found


def worker_processes(home: Path) -> list[int]:
    """Running `python -m queuectl worker run` processes of this home."""
    found = []
    for pid in _all_pids():
        info = proc(pid)
        if info is None or info.state in ("Z", "X"):
            continue
        argv = cmdline_of(pid)
        if "queuectl" not in argv or "run" not in argv or "worker" not in argv:
            continue
        env = environment_of(pid)
        if env and env.get("QUEUECTL_HOME") == str(home) and "QUEUECTL_JOB_ID" not in env:
            found.append(pid)
    return found


def children(pid: int) -> list[Proc]:
    """Every child of `pid`, zombies included."""
    return [p for p in (proc(other) for other in _all_pids()) if p is not None and p.ppid == pid]


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> dict[int, str]:
    """fd -> what it points at."""
    result = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            result[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
    return result


# --- worker logs -------------------------------------------------------------------------
BAD_LOG_WORDS = ("Traceback", "locked", "ERROR", "unexpected")


def log_problems(home: Path, words: tuple[str, ...] = BAD_LOG_WORDS) -> list[str]:
    """Lines of the worker logs in $QUEUECTL_HOME/logs that contain any of `words`."""
    logs = home / "logs"
    found = []
    if logs.is_dir():
        for path in sorted(logs.iterdir()):
            for line in path.read_text(errors="replace").splitlines():
                if any(word in line for word in words):
                    found.append(f"{path.name}: {line}")
    return found


# --- mounts ------------------------------------------------------------------------------
def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


def _umount(path: Path) -> None:
    for _ in range(50):
        result = subprocess.run(["umount", str(path)], capture_output=True, text=True, timeout=30)
        if result.returncode == 0 or "not mounted" in result.stderr:
            return
        time.sleep(0.1)  # still busy: a process of the test is closing its files
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at `path`; the test skips (with the reason) where mount is denied."""
    path.mkdir(parents=True, exist_ok=True)
    result = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield path
    finally:
        _umount(path)


@contextlib.contextmanager
def bind_mount(source: Path, target: Path) -> Iterator[Path]:
    """`source` also visible at `target` (read-write until `make_read_only`)."""
    target.mkdir(parents=True, exist_ok=True)
    result = _mount("--bind", str(source), str(target))
    if result.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {result.stderr.strip()}")
    try:
        yield target
    finally:
        _umount(target)


def make_read_only(target: Path) -> subprocess.CompletedProcess[str]:
    """Remount a bind mount read-only: enforced even for root, unlike file modes."""
    return _mount("-o", "remount,ro,bind", str(target))


# --- a wall clock that jumps ---------------------------------------------------------------
class JumpClock:
    """time.time() plus an offset the test moves: a wall clock stepped by NTP or by hand."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._real = time.time
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._real() + self.offset

    def jump(self, seconds: float) -> None:
        with self._lock:
            self.offset += seconds


# --- CLI shortcuts the e2e Queue lacks (it is shared: not edited here) --------------------
def enqueue_file(
    queue: Queue,
    specs: Sequence[Mapping[str, Any]],
    env: Mapping[str, str | None] | None = None,
    check: bool = True,
) -> CliResult:
    """`enqueue --file -` with JSON Lines on stdin."""
    lines = "".join(json.dumps(spec) + "\n" for spec in specs)
    return queue.cli("enqueue", "--file", "-", env=dict(env or {}), input=lines, check=check)


def status(queue: Queue, env: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    return dict(json.loads(queue.cli("status", "--json", env=dict(env or {})).stdout))


def cli_database(location: DatabaseLocation) -> str:
    """QUEUECTL_DB for the executable: a path, or a postgresql:// URL. (The test stores'
    PostgreSQL address is a keyword=value conninfo, which the CLI takes for a file name.)"""
    if location.kind != "postgresql":
        return location.path or ""
    from psycopg.conninfo import conninfo_to_dict

    assert location.dsn is not None
    params = {key: str(value) for key, value in conninfo_to_dict(location.dsn).items()}
    user = quote(params.pop("user", ""), safe="")
    password = params.pop("password", None)
    credentials = (
        f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    )
    host = params.pop("host", "localhost")
    port = params.pop("port", "5432")
    dbname = quote(params.pop("dbname", ""), safe="")
    query = urlencode(params, quote_via=quote)
    return f"postgresql://{credentials}{host}:{port}/{dbname}" + (f"?{query}" if query else "")
