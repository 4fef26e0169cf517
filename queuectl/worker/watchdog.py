"""A worker's watchdog: ends the running job's processes the moment its worker dies.

A worker killed outright (SIGKILL, the OOM killer, a crash) cannot end the job it
runs, and the job's lease only expires a lease later: meanwhile another worker,
perhaps on another host, may recover the job and run it again beside the orphan.
So each worker starts this small process and keeps the write end of a pipe to it.
The worker writes nothing to it (no cost per job); the pipe closes only when the
worker exits, however it exits. The watchdog then reads the worker's run note
(which run it started last), finds that run's shell in /proc and ends its process
group, as recovery does. After a clean exit no job runs and it finds nothing.

Daemons a job deliberately detached into a session of their own (`setsid cmd &`)
are out of reach, as they are of timeouts.

It runs as `python -m queuectl.worker.watchdog FD SCRATCH`: a separate program,
not a fork, so that it holds none of the worker's locks, connections or memory,
and so that nothing mistakes it for a worker (`ps`, `worker stop`).
"""

from __future__ import annotations

import os
import signal
import sys
import time

from queuectl.worker.scratch import end_leftover_run


def start(scratch: str) -> int:
    """Start the watchdog of the worker whose scratch directory this is; returns the
    write end of its pipe, which the worker keeps open (close-on-exec) for life."""
    import subprocess  # here: the watchdog itself imports as little as it can (~RSS)

    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        # Started through a shell that exits at once, so that the watchdog is not the
        # worker's child: the worker has no process of its own between jobs (nothing
        # for it to reap, nothing a look at its children mistakes for a job's).
        launcher = subprocess.Popen(
            ["/bin/sh", "-c", _DETACH, sys.executable, str(read_end), scratch],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=(read_end,),
            # Its own session: a signal to the worker's process group does not reach it.
            start_new_session=True,
            # Nothing of the worker's environment (QUEUECTL_DB and the rest): it needs
            # none, and whatever looks for a queue's processes by QUEUECTL_HOME finds
            # the worker and its jobs only. Where this queuectl is imported from is
            # given, so that it needs neither an install nor the worker's directory.
            env=_environment(),
            cwd="/",  # holds no directory of the user's busy
        )
        launcher.wait()
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return write_end


def _environment() -> dict[str, str]:
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [package_root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    environment = {"PYTHONPATH": os.pathsep.join(paths)}
    if "PYTHONHOME" in os.environ:
        environment["PYTHONHOME"] = os.environ["PYTHONHOME"]
    return environment


# $0 is the Python interpreter; "$@" the pipe's read end and the scratch directory.
_DETACH = 'exec "$0" -m queuectl.worker.watchdog "$@" </dev/null >/dev/null &'


def _watch(fd: int, scratch: str) -> None:
    # Stop signals are the worker's business: this process lives exactly as long as it.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    while True:
        try:
            if not os.read(fd, 64):
                break  # end of file: the worker has exited
        except InterruptedError:
            continue
    if end_leftover_run(scratch):
        # Into the worker's log (the watchdog's stderr is the worker's), in its format.
        when = time.strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{when} WARNING [{os.path.basename(scratch)}] the worker died: its watchdog ended the "
            "processes of the job it ran",
            file=sys.stderr,
            flush=True,
        )


if __name__ == "__main__":
    _watch(int(sys.argv[1]), sys.argv[2])
