"""Run one job's command: /bin/sh -c in its own session, output to a file, timeout, kill.

The command's stdout and stderr go to one file (never a pipe the worker must
drain, so `cmd &` cannot hang a worker); the worker waits on a pidfd, so it
learns of the exit at once and can still be woken by a signal meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from queuectl.domain import Job, Outcome, OutcomeKind
from queuectl.worker.output import OutputCapture

# A single argv string longer than this fails with E2BIG (MAX_ARG_STRLEN is 128 KiB on Linux).
_MAX_INLINE_COMMAND = 100_000
# How often a running job's output file is checked against its cap.
_CAP_CHECK_SECONDS = 0.1
# Between SIGTERM and SIGKILL when a job is timed out or interrupted.
KILL_GRACE_SECONDS = 2.0
# A job running this long is not a short one: `on_slow` is called (see Executor.run).
SLOW_SECONDS = 0.02

# Never passed to jobs: the database URL may hold a password, and the dashboard token is one.
_WITHHELD_VARIABLES = ("QUEUECTL_DB", "QUEUECTL_DASHBOARD_TOKEN")


def withhold_secrets_from_jobs() -> None:
    """Remove what jobs must not see from this (worker) process's environment.

    Call once the store is open: the worker needs QUEUECTL_DB only to connect.
    """
    for key in _WITHHELD_VARIABLES:
        os.environ.pop(key, None)


@contextmanager
def job_environment(job: Job, run_no: int) -> Iterator[None]:
    """The job's variables, set in this process's environment while the job is spawned.

    The child then inherits the environment as it is (Popen env=None), which
    spares encoding every variable for every job (about 100 us a job). Only
    the worker's main thread spawns jobs; the previous values come back after
    (QUEUECTL_JOB_ID left behind would mark whatever this process starts next
    as that job's, for recovery's /proc scan too).

    The two variables every job gets go straight to the C environment with
    putenv (os.environ's bookkeeping cost ~20 us a job); os.environ never holds
    them. A job's own variables, rarer, go through os.environ.
    """
    saved_env = {key: os.environ.get(key) for key in job.env}
    os.environ.update(job.env)
    os.putenv("QUEUECTL_JOB_ID", job.id)
    os.putenv("QUEUECTL_ATTEMPT", str(run_no))
    try:
        yield
    finally:
        for key, value in _OWN_VARIABLES_BEFORE.items():
            if value is None:
                os.unsetenv(key)
            else:
                os.putenv(key, value)
        for key, previous in saved_env.items():
            if previous is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = previous


def explicit_environment(job: Job, run_no: int) -> dict[str, str]:
    """The whole environment of a job with many variables, to pass to Popen as `env`.

    Setting variables one by one in this process (job_environment) costs a scan of
    the whole environment each (glibc's setenv and unsetenv): quadratic, 100,000
    variables took about 30 s of worker time. Building the dict is linear.
    """
    environment = dict(os.environ)
    environment.update(job.env)
    environment["QUEUECTL_JOB_ID"] = job.id
    environment["QUEUECTL_ATTEMPT"] = str(run_no)
    return environment


# Jobs with more variables than this get explicit_environment(); fewer, job_environment().
INHERITED_ENVIRONMENT_MAX_KEYS = 64


# What QUEUECTL_JOB_ID and QUEUECTL_ATTEMPT were when the worker started (set when a
# worker is started by a job): put back after each spawn.
_OWN_VARIABLES_BEFORE = {
    key: os.environ.get(key) for key in ("QUEUECTL_JOB_ID", "QUEUECTL_ATTEMPT")
}


class Executor:
    """Runs jobs for one worker; `scratch` is the worker's private directory."""

    def __init__(
        self,
        scratch: Path,
        capture: OutputCapture,
        wakeup_fd: int,
        force_requested: Callable[[], bool],
    ) -> None:
        self.scratch = scratch
        self.capture = capture
        self._wakeup_fd = wakeup_fd
        self._force_requested = force_requested
        # Opened once (Popen's DEVNULL opens and closes it for every job).
        self._devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        # Made once: each job only adds its pidfd (and takes it out after).
        self._poller = select.poll()
        self._poller.register(wakeup_fd, select.POLLIN)
        withhold_secrets_from_jobs()

    def close(self) -> None:
        os.close(self._devnull)

    def run(
        self,
        job: Job,
        run_no: int,
        on_slow: Callable[[], None] | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> Outcome:
        """Run the job to an outcome; its output is in `self.capture`.

        `on_started` is called once the command has started: the worker's own
        bookkeeping then runs while the job does, not between two jobs. `on_slow`
        is called once, while the job runs, if it runs SLOW_SECONDS: the worker
        then records what it has pending rather than hold it for the job's whole
        run.
        """
        try:
            output_fd = self.capture.open_for_job()
        except FileNotFoundError:
            # The scratch directory was removed under the worker (a cleaned-up
            # $QUEUECTL_HOME/run): make it again rather than crash.
            self.scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
            output_fd = self.capture.open_for_job()
        script: Path | None = None
        argv = ["/bin/sh", "-c", job.command]
        try:
            if len(job.command.encode("utf-8")) > _MAX_INLINE_COMMAND:
                script = self.scratch / "command.sh"
                script.write_text(job.command, encoding="utf-8")
                argv = ["/bin/sh", str(script)]
            if len(job.env) > INHERITED_ENVIRONMENT_MAX_KEYS:
                process = self._spawn(argv, job.cwd, output_fd, explicit_environment(job, run_no))
            else:
                with job_environment(job, run_no):
                    process = self._spawn(argv, job.cwd, output_fd, None)
        except OSError as exc:
            # The child's chdir failing comes back as an error on the directory
            # (checked here rather than by a stat before every job).
            if exc.filename == job.cwd and exc.errno in (errno.ENOENT, errno.ENOTDIR):
                error = f"could not start: working directory {job.cwd!r} does not exist"
            else:
                error = f"could not start: {exc.strerror}"
            return Outcome(OutcomeKind.FAILED_TO_START, error=error)
        finally:
            os.close(output_fd)
        try:
            if on_started is not None:
                on_started()
            return self._wait(process, job.timeout, on_slow)
        finally:
            if script is not None:
                script.unlink(missing_ok=True)

    def _spawn(
        self, argv: list[str], cwd: str, output_fd: int, env: dict[str, str] | None
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            stdin=self._devnull,
            stdout=output_fd,
            stderr=output_fd,
            cwd=cwd,
            env=env,
            start_new_session=True,  # its own process group: timeouts reach grandchildren
        )

    def _wait(
        self,
        process: subprocess.Popen[bytes],
        timeout: float,
        on_slow: Callable[[], None] | None,
    ) -> Outcome:
        started = time.monotonic()
        deadline = started + timeout if timeout > 0 else None
        slow_at = started + SLOW_SECONDS if on_slow is not None else None
        pidfd = os.pidfd_open(process.pid)
        poller = self._poller
        poller.register(pidfd, select.POLLIN)
        try:
            while True:
                if self._force_requested():
                    self._terminate(process, pidfd)
                    return Outcome(OutcomeKind.INTERRUPTED, error="interrupted")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self._terminate(process, pidfd)
                    return Outcome(OutcomeKind.TIMED_OUT, error=f"timed out after {timeout:g}s")
                # Wake now and then to keep a runaway job's output within its cap on disk.
                step = (
                    _CAP_CHECK_SECONDS if remaining is None else min(remaining, _CAP_CHECK_SECONDS)
                )
                if slow_at is not None:
                    step = min(step, max(0.0, slow_at - time.monotonic()))
                events = poller.poll(max(1, int(step * 1000) + 1))
                if pidfd in [fd for fd, _ in events]:
                    break
                if slow_at is not None and on_slow is not None and time.monotonic() >= slow_at:
                    slow_at = None
                    on_slow()
                _drain(self._wakeup_fd)
                self.capture.enforce_cap()
            # The leader has exited but is not reaped yet, so its number cannot be reused:
            # end whatever it left running in its group, then reap it.
            _kill_group(process.pid)
            return Outcome.from_wait_status(process.wait())
        finally:
            poller.unregister(pidfd)
            os.close(pidfd)

    def _terminate(self, process: subprocess.Popen[bytes], pidfd: int) -> None:
        """SIGTERM the whole group, SIGKILL after a grace period; no grandchild survives."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll(int(KILL_GRACE_SECONDS * 1000))
        _kill_group(process.pid)
        process.wait()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
