"""Signals to workers and to the commands that start them.

tests/e2e/test_worker_control.py already covers: SIGTERM to a background worker
(graceful), a second SIGTERM half a second later (interrupts the job), SIGINT and
SIGHUP to a foreground parent, `worker stop` and `--force`. Covered here: SIGINT and
SIGHUP to a background worker; two different stop signals back to back (they cannot
merge); two SIGTERMs back to back (they may merge into one delivery: either outcome
is clean); SIGKILL of the `worker start` process while it waits for registration,
and of a foreground parent: the workers live on and stay stoppable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.e2e.worker_helpers import (
    Queue,
    assert_stays,
    is_running,
    parse_pids,
    sleepers,
    unique_token,
    wait_exit,
)
from tests.helpers import queuectl_executable, wait_until
from tests.reliability.helpers import cli_environment, log_problems, report, worker_processes


def _running_job(queue: Queue, command: str) -> tuple[str, int]:
    """One worker running `command` (priority 10) with a plain job queued behind it."""
    job_id = queue.enqueue(command, priority=10)
    queue.enqueue("true")
    [pid] = queue.start(1)
    queue.wait_job(job_id, "processing")
    return job_id, pid


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_a_background_worker_stops_gracefully_on(queue: Queue, signum: signal.Signals) -> None:
    out = queue.files / "out"
    job_id, pid = _running_job(queue, f"sleep 1; echo done > {out}")
    os.kill(pid, signum)
    wait_until(lambda: not is_running(pid), timeout=15, what="the worker to exit")
    job = queue.job(job_id)
    assert (job["state"], job["exit_code"], job["last_error"]) == ("completed", 0, None)
    assert out.read_text() == "done\n"
    assert queue.counts()["pending"] == 1, "it claimed (and kept) a job after the signal"
    assert queue.status()["workers"] == []
    assert log_problems(queue.home) == []


@pytest.mark.parametrize(
    "first, second",
    [(signal.SIGTERM, signal.SIGINT), (signal.SIGHUP, signal.SIGTERM)],
    ids=["TERM-then-INT", "HUP-then-TERM"],
)
def test_two_different_stop_signals_back_to_back_interrupt_the_job(
    queue: Queue, first: signal.Signals, second: signal.Signals
) -> None:
    token = unique_token()
    job_id, pid = _running_job(queue, f"sleep 30.{token}")
    began = time.monotonic()
    os.kill(pid, first)
    os.kill(pid, second)
    wait_until(lambda: not is_running(pid), timeout=10, what="the worker to exit")
    assert time.monotonic() - began < 8
    job = queue.job(job_id)
    assert (job["state"], job["last_error"], job["attempts"]) == ("failed", "interrupted", 1)
    assert sleepers(token) == []
    assert queue.counts()["processing"] == 0


def test_two_sigterms_back_to_back_stop_cleanly_either_way(queue: Queue) -> None:
    """The kernel may merge two SIGTERMs sent together into one delivery (why `worker stop
    --force` uses SIGUSR1): the job then finishes; otherwise it is interrupted. Either way
    nothing is left processing and the worker exits."""
    out = queue.files / "out"
    job_id, pid = _running_job(queue, f"sleep 2; echo done > {out}")
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not is_running(pid), timeout=15, what="the worker to exit")
    job = queue.job(job_id)
    outcome = (job["state"], job["last_error"])
    assert outcome in (("completed", None), ("failed", "interrupted")), job
    assert out.exists() == (job["state"] == "completed")
    assert queue.counts()["processing"] == 0
    report("signals-two-sigterms", {"outcome": "merged (graceful)" if out.exists() else "forced"})


def test_sigkill_of_worker_start_while_it_waits_leaves_workers_that_run_and_stop(
    queue: Queue,
) -> None:
    starter = subprocess.Popen(
        [queuectl_executable(), "worker", "start", "--count", "3"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cli_environment(queue.home),
        cwd=queue.files,
    )
    try:
        wait_until(
            lambda: len(worker_processes(queue.home)) == 3,
            timeout=20,
            interval=0.005,
            what="the three workers to be spawned",
        )
        registered_before_kill = len(queue.status()["workers"])
        starter.send_signal(signal.SIGKILL)
    finally:
        starter.wait(timeout=10)
    pids = sorted(worker_processes(queue.home))
    assert len(pids) == 3

    queue.wait_workers(3, timeout=20)
    assert queue.worker_pids() == pids
    ids = queue.enqueue_many([{"command": "true"} for _ in range(6)])
    queue.wait(lambda: queue.counts()["completed"] == len(ids), 20, "the jobs to complete")

    stop = queue.cli("worker", "stop", "--timeout", "20", timeout=40)
    assert sorted(parse_pids(stop.stdout)) == pids
    assert "Stopped 3 worker(s)." in stop.stdout
    assert not any(is_running(pid) for pid in pids)
    report("signals-killed-starter", {"registered_when_killed": registered_before_kill})


def test_sigkill_of_a_foreground_parent_leaves_workers_that_run_and_stop(queue: Queue) -> None:
    parent = queue.foreground(2)
    pids = sorted(w["pid"] for w in queue.wait_workers(2))
    parent.send_signal(signal.SIGKILL)
    assert wait_exit(parent, 10) == -signal.SIGKILL
    # The orphans keep their leases and their work.
    assert_stays(lambda: queue.worker_pids() == pids, 2.5, "both workers stay registered")
    job_id = queue.enqueue("true")
    queue.wait_job(job_id, "completed")

    stop = queue.cli("worker", "stop", "--timeout", "20", timeout=40)
    assert sorted(parse_pids(stop.stdout)) == pids
    assert not any(is_running(pid) for pid in pids)
    assert queue.status()["workers"] == []


def test_a_stop_signal_to_an_idle_worker_is_prompt(queue: Queue) -> None:
    [pid] = queue.start(1)
    began = time.monotonic()
    os.kill(pid, signal.SIGINT)
    wait_until(lambda: not is_running(pid), timeout=10, what="the idle worker to exit")
    assert time.monotonic() - began < 3
    assert queue.status()["workers"] == []
    assert not os.listdir(queue.home / "run")
