"""Process identity: a pid plus its start time, so a reused pid is never signalled.

Linux /proc only (start time in clock ticks since boot, field 22 of /proc/PID/stat).
"""

from __future__ import annotations

import os
import signal


def start_time(pid: int) -> int | None:
    """The process's start time, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[19])


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].split()[0].decode()


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


def kill_process_group(leader_pid: int, expected_start: int | None) -> bool:
    """SIGKILL a job's whole process group, if its leader is still the same process.

    The group outlives its leader while any member lives; without a start time
    to check we only act if the group still exists under that number.
    """
    if expected_start is not None and start_time(leader_pid) not in (None, expected_start):
        return False  # the number was reused by an unrelated process
    try:
        os.killpg(leader_pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True
