"""A worker's scratch directory, $QUEUECTL_HOME/run/WORKER_ID: the notes that tell a
recoverer on the same host what a dead worker was doing, and the sweep that removes
dead workers' directories.

Its files:
- current-run (RUN_FILE): "RUN 0 JOB_ID\\n" of the job started last, written before it
  starts (the 0 stands where the pid once was; what follows the line is stale). The
  worker holds an flock on it for life, frozen or not: a directory whose run file is
  not locked is a dead worker's.
- finished (FINISHED_FILE): the outcomes of runs that ended and are not yet recorded
  in the store, a line each, so that a recoverer records them should the worker die.
- output (OUTPUT_FILE): the running job's output, a new file for every run.
- database (DATABASE_FILE): which database the worker serves (one QUEUECTL_HOME may
  serve several), as the store describes it (no password).

The watchdog imports this module too: its top-level imports stay few (the watchdog's
memory), and what only a worker needs is imported where it is used.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from typing import TYPE_CHECKING

from queuectl.worker import procinfo

if TYPE_CHECKING:
    from collections.abc import Callable

    from queuectl.domain import FinishedRun, Outcome, RecoveredJob
    from queuectl.store.base import LostRunFate

RUN_FILE = "current-run"
FINISHED_FILE = "finished"
OUTPUT_FILE = "output"
DATABASE_FILE = "database"

# A scratch directory with no run file this long after it was made is a dead worker's.
HALF_MADE_SECONDS = 10.0
# A dead worker's scratch of another database this old is removed by any worker (as
# worker logs are): no recovery waits a week to read it.
ABANDONED_SECONDS = 7 * 86_400.0
# Worker ids are generated ("w-" and hex): anything else in a job row is not a name to
# join to a path.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class OwnNotes:
    """The notes of the worker that owns the directory: created at start, written as it
    runs jobs, closed as it exits."""

    def __init__(self, scratch: str, database: str) -> None:
        os.makedirs(scratch, mode=0o700, exist_ok=True)
        # The run file and its flock first: a scratch without them is one whose worker
        # died in the moment after mkdir, and the sweep removes it.
        self._run_file = os.open(
            os.path.join(scratch, RUN_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        fcntl.flock(self._run_file, fcntl.LOCK_EX)
        database_fd = os.open(
            os.path.join(scratch, DATABASE_FILE),
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
            0o600,
        )
        with open(database_fd, "w") as database_file:
            database_file.write(database)
        self._finished_file = os.open(
            os.path.join(scratch, FINISHED_FILE),
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC,
            0o600,
        )

    def starting(self, run_no: int, job_id: str) -> None:
        """Noted before the run starts: a recoverer then knows that the jobs this worker
        held and did not note never started. Its pid is not noted (two system calls a
        job): a recoverer finds the run's shell in /proc."""
        os.pwrite(self._run_file, f"{run_no} 0 {job_id}\n".encode(), 0)

    def finished(self, done: FinishedRun) -> None:
        """Should this fail, a recoverer would run the job again: at least once."""
        with contextlib.suppress(OSError):
            os.write(self._finished_file, _finished_line(done))

    def recorded(self) -> None:
        """Every finished run is in the store. Should this fail, the lines left name
        runs no longer processing: a recoverer skips them."""
        with contextlib.suppress(OSError):
            os.ftruncate(self._finished_file, 0)

    def close(self) -> None:
        """Releases the flock: from now on the directory is a dead worker's."""
        os.close(self._finished_file)
        os.close(self._run_file)


def read_run_note(scratch: str) -> tuple[int, str] | None:
    """(run number, job id) of the run a worker started last, if it started one."""
    try:
        with open(os.path.join(scratch, RUN_FILE), encoding="utf-8") as note:
            run_no, _pid, job_id = note.readline().rstrip("\n").split(" ", 2)
        return int(run_no), job_id
    except (OSError, ValueError):
        return None


def end_leftover_run(scratch: str) -> bool:
    """End the processes of the run a dead worker noted last, if they still run.
    True if a process group was ended."""
    noted = read_run_note(scratch)
    if noted is None:
        return False
    run_no, job_id = noted
    leader = procinfo.find_run_leader(os.path.join(scratch, OUTPUT_FILE), job_id, run_no)
    return leader is not None and procinfo.kill_job_group(leader, job_id, run_no)


def lost_run_fate(scratch_root: str, job: RecoveredJob) -> LostRunFate:
    """What a dead worker of this host left for a job it held: the outcome it noted as
    finished, or that the job never started, or (lost) after ending its processes."""
    from queuectl.domain import LostRun

    if not job.worker_id or not _SAFE_ID.fullmatch(job.worker_id):
        return LostRun.LOST
    scratch = os.path.join(scratch_root, job.worker_id)
    outcome = _finished_outcome(os.path.join(scratch, FINISHED_FILE), job.job_id, job.run_no)
    if outcome is not None:
        return outcome  # it ended; the worker died before recording it
    noted = read_run_note(scratch)
    if noted is not None and noted != (job.run_no, job.job_id):
        # The note is written before each start: this one was held, never started.
        return LostRun.NOT_STARTED
    # Its shell, if it started and outlived the worker (its watchdog normally ended it).
    leader = procinfo.find_run_leader(os.path.join(scratch, OUTPUT_FILE), job.job_id, job.run_no)
    if leader is not None:
        procinfo.kill_job_group(leader, job.job_id, job.run_no)
    return LostRun.LOST


class Sweeper:
    """Removes the scratch of workers that died, once recovered (a worker killed while
    idle has no job whose recovery would remove it), and ends what their last run left
    running on this host, whoever recovers the job.

    A live worker, even one frozen past its lease, holds the flock on its run file; a
    dead one still registered may yet be recovered, which reads its notes. Workers
    register before they create their scratch, so a starting worker is never mistaken
    for a dead one. Only workers of this database are removed at once: another's may
    still need its notes for its own recovery (after a week, anyone removes them).
    """

    def __init__(self, root: str, own_id: str, database: str) -> None:
        self._root = root
        self._own_id = own_id
        self._database = database
        # Dead workers' directories whose leftover processes were ended (once each).
        self._ended: set[str] = set()

    def sweep(self, registered_ids: Callable[[], set[str]]) -> list[str]:
        """One pass; returns the ids of dead workers whose leftovers it ended."""
        import shutil

        registered: set[str] | None = None
        ended: list[str] = []
        try:
            entries = list(os.scandir(self._root))
        except OSError:
            return ended  # the directory was removed under the worker: nothing to sweep
        for entry in entries:
            if entry.name == self._own_id:
                continue
            try:
                fd = os.open(os.path.join(entry.path, RUN_FILE), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                # No run file: its worker died between mkdir and creating it, so no job
                # ever started there and it holds nothing a recovery reads. A worker
                # still starting (of any database) makes the file within microseconds.
                if _older_than(entry.path, HALF_MADE_SECONDS):
                    shutil.rmtree(entry.path, ignore_errors=True)
                continue
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # alive
            finally:
                os.close(fd)
            if entry.name not in self._ended:
                self._ended.add(entry.name)
                if end_leftover_run(entry.path):
                    ended.append(entry.name)
            try:
                with open(os.path.join(entry.path, DATABASE_FILE)) as noted:
                    database = noted.read()
            except OSError:
                continue
            if database != self._database:
                # Another database's (or one named before addresses were redacted as
                # they are now): its own workers sweep it; after a week, anyone.
                if _older_than(entry.path, ABANDONED_SECONDS):
                    shutil.rmtree(entry.path, ignore_errors=True)
                continue
            if registered is None:
                registered = registered_ids()
            if entry.name not in registered:
                shutil.rmtree(entry.path, ignore_errors=True)
                self._ended.discard(entry.name)
        return ended


def _older_than(path: str, seconds: float) -> bool:
    try:
        return time.time() - os.stat(path).st_mtime > seconds
    except OSError:
        return False


def _finished_line(done: FinishedRun) -> bytes:
    outcome = done.outcome
    if outcome.succeeded:  # most lines: kept cheap to write
        return f"{done.claim.run_no} {done.claim.job.id}\n".encode()
    import json

    fields = [outcome.kind.value, outcome.exit_code, outcome.signal, outcome.error]
    return f"{done.claim.run_no} {done.claim.job.id} {json.dumps(fields)}\n".encode()


def _finished_outcome(path: str, job_id: str, run_no: int) -> Outcome | None:
    """The outcome a lost worker noted for this run before it died, if it did.

    Lines are "RUN JOB_ID" for a success, "RUN JOB_ID [kind, exit, signal, error]"
    otherwise (job ids hold no whitespace).
    """
    import json

    from queuectl.domain import Outcome, OutcomeKind

    try:
        with open(path, encoding="utf-8", errors="replace") as notes:
            lines = notes.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        noted_run, _, rest = line.partition(" ")
        noted_id, _, fields = rest.partition(" ")
        if (noted_id, noted_run) != (job_id, str(run_no)):
            continue
        if not fields:
            return Outcome(OutcomeKind.SUCCEEDED, exit_code=0)
        try:
            kind, exit_code, signal_no, error = json.loads(fields)
            return Outcome(OutcomeKind(kind), exit_code, signal_no, error)
        except (ValueError, TypeError):
            return None  # a line cut short by the kill
    return None
