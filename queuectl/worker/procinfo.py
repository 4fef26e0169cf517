"""Process identity: a pid plus its start time, so a reused pid is never signalled.

Linux /proc only (start time in clock ticks since boot, field 22 of /proc/PID/stat).
"""

from __future__ import annotations

import os
import signal


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/PID/stat from field 3 (state) on, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return data[data.rindex(b")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """The process's start time, or None if there is no such process."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def ancestors(pid: int) -> set[int]:
    """The pids of `pid`'s parent, its parent's parent, and so on up to init."""
    found: set[int] = set()
    while pid > 1:
        fields = _stat_fields(pid)
        if fields is None:
            break
        pid = int(fields[1])
        if pid in found:
            break
        found.add(pid)
    return found


def flock_holder(path: str | os.PathLike[str]) -> int | None:
    """The pid of the process holding an flock on the file at `path`, from /proc/locks."""
    try:
        info = os.stat(path)
        with open("/proc/locks") as handle:
            table = handle.read()
    except OSError:
        return None
    # "1: FLOCK  ADVISORY  WRITE PID MAJOR:MINOR:INODE 0 EOF"; "1: -> FLOCK ..." waits for it.
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            return int(fields[4])
    return None


def _state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return None if fields is None else fields[0].decode()


def is_alive(pid: int, expected_start: int) -> bool:
    """True if `pid` is still the process that started at `expected_start` and not a zombie."""
    if pid <= 0:
        return False
    started = start_time(pid)
    return started == expected_start and _state(pid) not in (None, "Z", "X")


def signal_process(pid: int, expected_start: int, signum: int) -> bool:
    """Send `signum` only if the pid still names the same process. True if sent."""
    if not is_alive(pid, expected_start):
        return False
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def _environment(pid: int) -> dict[bytes, bytes] | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    pairs = (item.partition(b"=") for item in data.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def find_run_leader(output_file: str | os.PathLike[str], job_id: str, run_no: int) -> int | None:
    """The shell of a run whose worker died before noting its pid, found by what it holds
    and carries: it leads its own session (the worker starts every job so), its stdout
    is that worker's output file, and its environment names this job and run. The one
    started first, should it have started more sessions. A scan of /proc, at recovery only.
    """
    target = os.path.realpath(output_file)
    want = (job_id.encode(), str(run_no).encode())
    found: tuple[int, int] | None = None
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            if os.readlink(f"/proc/{pid}/fd/1") != target or os.getsid(pid) != pid:
                continue
        except OSError:
            continue
        env = _environment(pid)
        started = start_time(pid)
        if env is None or started is None:
            continue
        if (env.get(b"QUEUECTL_JOB_ID"), env.get(b"QUEUECTL_ATTEMPT")) == want and (
            found is None or started < found[0]
        ):
            found = (started, pid)
    return None if found is None else found[1]


def kill_job_group(leader_pid: int, job_id: str, run_no: int) -> bool:
    """SIGKILL the process group of run `run_no` of a job, if it is still that run's.

    A pid cannot be reused while a process group of that number exists, so:
    if the leader is gone, any group left under its number is the job's; if a
    process has the number, its environment (set by the worker at spawn) must
    name this very run. Nothing is read on the hot path: this runs at recovery.
    """
    env = _environment(leader_pid)
    if env is not None and (
        env.get(b"QUEUECTL_JOB_ID") != job_id.encode()
        or env.get(b"QUEUECTL_ATTEMPT") != str(run_no).encode()
    ):
        return False  # the number now belongs to an unrelated process
    try:
        os.killpg(leader_pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True
