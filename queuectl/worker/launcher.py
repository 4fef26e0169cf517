"""Starting and stopping worker processes: background, foreground supervisor, stop.

Each worker is `python -m queuectl worker run --id ID`, its own process. The
database address travels in the environment (QUEUECTL_DB), never in argv,
where `ps` would show a password.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from queuectl.domain import WorkerInfo
from queuectl.paths import DatabaseLocation, ensure_private_dir, queuectl_home
from queuectl.store.base import Store
from queuectl.worker import procinfo
from queuectl.worker.runtime import (
    FORCE_SIGNAL,
    STOP_SIGNALS,
    host_name,
)
from queuectl.worker.scratch import DATABASE_FILE, RUN_FILE

REGISTRATION_TIMEOUT = 20.0
# A worker still alive and registered this long after it registered has started: what
# kills a worker at start-up (no scratch space, no heartbeat) does so within milliseconds.
SETTLE_SECONDS = 0.5
LOG_RETENTION_SECONDS = 7 * 86_400
# A foreground worker that dies sooner than this after starting is restarted with backoff.
_QUICK_DEATH_SECONDS = 10.0
_MAX_RESTART_DELAY = 30.0


def new_worker_id() -> str:
    return "w-" + secrets.token_hex(4)


def log_directory() -> Path:
    return Path(ensure_private_dir(os.path.join(ensure_private_dir(queuectl_home()), "logs")))


def _worker_command(worker_id: str, log_file: Path | None = None) -> list[str]:
    command = [sys.executable, "-m", "queuectl", "worker", "run", "--id", worker_id]
    return [*command, "--log-file", str(log_file)] if log_file else command


def remove_old_logs(logs: Path, max_age_seconds: float = LOG_RETENTION_SECONDS) -> None:
    """Worker logs untouched for a week belong to workers long gone."""
    cutoff = time.time() - max_age_seconds
    for path in logs.glob("worker-*.log*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass


def _worker_environment(location: DatabaseLocation) -> dict[str, str]:
    env = dict(os.environ)
    env["QUEUECTL_DB"] = location.dsn or location.path or ""
    return env


@dataclass(frozen=True)
class FailedStart:
    """A worker that `worker start` launched and that did not start."""

    worker_id: str
    pid: int
    reason: str
    log_tail: str


@dataclass(frozen=True)
class StartReport:
    pids: list[int]  # the workers that started
    failed: list[FailedStart]


def start_background(store: Store, location: DatabaseLocation, count: int) -> StartReport:
    """Start `count` detached workers; report which started, once each has settled."""
    logs = log_directory()
    remove_old_logs(logs)
    started: dict[str, subprocess.Popen[bytes]] = {}
    env = _worker_environment(location)
    for _ in range(count):
        worker_id = new_worker_id()
        log_path = logs / f"worker-{worker_id}.log"
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # Own session, no inherited stdio: `$(queuectl worker start)` returns at once
            # and a closed terminal does not reach the worker.
            started[worker_id] = subprocess.Popen(
                _worker_command(worker_id, log_path),
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            os.close(fd)
    failed = _await_registration(store, started, logs)
    gone = {failure.worker_id for failure in failed}
    pids = [process.pid for worker_id, process in started.items() if worker_id not in gone]
    return StartReport(pids, failed)


def _await_registration(
    store: Store, started: dict[str, subprocess.Popen[bytes]], logs: Path
) -> list[FailedStart]:
    """Wait until every worker registered or exited; then check, SETTLE_SECONDS later,
    that the registered ones are still alive and registered. Returns those that failed.

    A worker that registered and then exited with status 0 did start: it was stopped
    at once (`worker stop`, or a job of its own that ran `worker stop`)."""
    deadline = time.monotonic() + REGISTRATION_TIMEOUT
    failed: dict[str, str] = {}
    registered_at: dict[str, float] = {}
    # Registered, then gone from the registry while still running: exiting, or lost.
    vanished_at: dict[str, float] = {}
    stopped: set[str] = set()

    def exited(worker_id: str) -> bool:
        code = started[worker_id].poll()
        if code is None:
            return False
        if code == 0 and worker_id in registered_at:
            stopped.add(worker_id)
            return True
        when = "after registering" if worker_id in registered_at else "at start-up"
        failed[worker_id] = f"exited {when} with code {code}"
        return True

    def settled(worker_id: str, now: float) -> bool:
        if worker_id in vanished_at:
            return False
        return now - registered_at.get(worker_id, now) >= SETTLE_SECONDS

    while True:
        now = time.monotonic()
        pending = [w for w in started if w not in failed and w not in stopped]
        unsettled = [w for w in pending if not settled(w, now)]
        if not unsettled:
            break
        if now > deadline:
            for worker_id in unsettled:
                if worker_id not in registered_at and not exited(worker_id):
                    # Unregistered, it is invisible to `status` and `worker stop`: end it.
                    started[worker_id].terminate()
                    failed[worker_id] = (
                        f"did not register within {REGISTRATION_TIMEOUT:.0f}s; stopped it"
                    )
            break
        registered = {worker.id for worker in store.list_workers()}
        for worker_id in unsettled:
            if exited(worker_id):
                continue
            if worker_id in registered:
                registered_at.setdefault(worker_id, now)
                vanished_at.pop(worker_id, None)
            elif (
                worker_id in registered_at
                and now - vanished_at.setdefault(worker_id, now) >= SETTLE_SECONDS
            ):
                failed[worker_id] = "lost its registration right after registering"
        time.sleep(0.02)
    return [
        FailedStart(w, started[w].pid, reason, _tail(logs / f"worker-{w}.log"))
        for w, reason in failed.items()
    ]


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- foreground supervisor --------------------------------------------------------------
@dataclass
class _Slot:
    process: subprocess.Popen[bytes]
    started: float
    restart_delay: float = 1.0


def run_foreground(location: DatabaseLocation, count: int) -> int:
    """Run workers under this process until SIGINT/SIGTERM/SIGHUP; restart ones that die."""
    env = _worker_environment(location)
    stopping = threading.Event()
    forcing = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stopping.is_set():
            forcing.set()
        stopping.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)

    def spawn() -> _Slot:
        # Own session: a Ctrl-C on the terminal reaches only this parent, which passes
        # on exactly one graceful stop (a second signal to a worker would force it).
        process = subprocess.Popen(
            _worker_command(new_worker_id()),
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        return _Slot(process, time.monotonic())

    slots = [spawn() for _ in range(count)]
    print(
        f"Started {count} worker(s) in the foreground with PIDs: {[s.process.pid for s in slots]}",
        flush=True,
    )
    signalled_stop = signalled_force = False
    while True:
        if stopping.is_set() and not signalled_stop:
            _signal_all(slots, signal.SIGTERM)
            signalled_stop = True
        if forcing.is_set() and not signalled_force:
            _signal_all(slots, FORCE_SIGNAL)
            signalled_force = True
        alive = 0
        for index, slot in enumerate(slots):
            code = slot.process.poll()
            if code is None:
                alive += 1
                continue
            if stopping.is_set() or code == 0:
                continue  # a clean exit was asked for (`worker stop`): not a crash
            lived = time.monotonic() - slot.started
            delay = slot.restart_delay if lived < _QUICK_DEATH_SECONDS else 1.0
            print(
                f"worker pid {slot.process.pid} exited with {code}; restarting in {delay:.0f}s",
                file=sys.stderr,
                flush=True,
            )
            if stopping.wait(delay):
                continue
            fresh = spawn()
            fresh.restart_delay = min(delay * 2, _MAX_RESTART_DELAY)
            slots[index] = fresh
            alive += 1
        if alive == 0:
            return 0
        stopping.wait(0.1) if not stopping.is_set() else forcing.wait(0.1)


def _signal_all(slots: Sequence[_Slot], signum: int) -> None:
    for slot in slots:
        if slot.process.poll() is None:
            slot.process.send_signal(signum)


# --- stop --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LocalWorker:
    """A worker process of this host: a pid and its start time (pid reuse)."""

    id: str
    pid: int
    pid_start_time: int
    # Already asked to stop, as the store says (unknown without it: False).
    stopping: bool = False


def local_live_workers(
    workers: Sequence[WorkerInfo], scratch_root: Path, database: str
) -> list[LocalWorker]:
    """This host's live workers of `database`: the registered ones whose process is still
    the one that registered, and those found by their scratch directory (see
    scratch_workers), which finds them when the database cannot be reached or their
    registration was lost."""
    host = host_name()
    found = {
        w.id: LocalWorker(w.id, w.pid, w.pid_start_time, w.stopping)
        for w in workers
        if w.host == host and procinfo.is_alive(w.pid, w.pid_start_time)
    }
    for worker in scratch_workers(scratch_root, database):
        found.setdefault(worker.id, worker)
    return list(found.values())


def scratch_workers(scratch_root: Path, database: str) -> list[LocalWorker]:
    """Live workers of `database` found without the database: each holds an flock on the
    run file of its scratch directory for life and names its database there."""
    found = []
    try:
        entries = list(os.scandir(scratch_root))
    except OSError:
        return []
    for entry in entries:
        try:
            if Path(entry.path, DATABASE_FILE).read_text() != database:
                continue
        except OSError:
            continue
        pid = procinfo.flock_holder(Path(entry.path, RUN_FILE))
        started = procinfo.start_time(pid) if pid is not None else None
        if pid is not None and started is not None:
            found.append(LocalWorker(entry.name, pid, started))
    return found


def signal_workers(workers: Sequence[LocalWorker], force: bool) -> list[LocalWorker]:
    signum = FORCE_SIGNAL if force else signal.SIGTERM
    return [w for w in workers if procinfo.signal_process(w.pid, w.pid_start_time, signum)]


def wait_for_exit(workers: Sequence[LocalWorker], timeout: float | None) -> list[LocalWorker]:
    """Wait until the processes are gone; return those still running at the timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    remaining = list(workers)
    while remaining:
        remaining = [w for w in remaining if procinfo.is_alive(w.pid, w.pid_start_time)]
        if not remaining or (deadline is not None and time.monotonic() >= deadline):
            break
        time.sleep(0.02)
    return remaining
