"""Starting and stopping workers: background and foreground, graceful and forced stops,
`worker stop` flags, and pid-reuse safety."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from queuectl.domain import WorkerInfo
from queuectl.paths import resolve_database
from queuectl.store import open_store
from queuectl.worker.runtime import host_name
from tests.e2e.worker_helpers import (
    Queue,
    assert_stays,
    group_members,
    is_running,
    parse_pids,
    sleepers,
    start_time,
    unique_token,
    wait_exit,
)
from tests.helpers import queuectl_executable, wait_until


def _running_job(queue: Queue, command: str, **fields: object) -> tuple[str, int]:
    """Start one worker and wait until it runs `command`; return the job id and worker pid."""
    job_id = queue.enqueue(command, **fields)
    [pid] = queue.start(1)
    queue.wait_job(job_id, "processing")
    return job_id, pid


# --- graceful and forced stop ------------------------------------------------------------
# `worker stop` sometimes interrupts the running job (the race that
# test_graceful_worker_stop_lets_the_running_job_finish pins down), so the tests that need
# a job to survive a graceful stop send the signal themselves.
def test_graceful_stop_finishes_the_job_and_claims_nothing_new(queue: Queue) -> None:
    out = queue.files / "out"
    first = queue.enqueue(f"sleep 1; echo ok > {out}", priority=10)
    second = queue.enqueue("true")
    [pid] = queue.start(1)
    queue.wait_job(first, "processing")

    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not is_running(pid), timeout=10)
    job = queue.job(first)
    assert (job["state"], job["exit_code"], job["attempts"]) == ("completed", 0, 1)
    assert out.read_text() == "ok\n"
    after = queue.job(second)
    assert (after["state"], after["attempts"], after["runs"]) == ("pending", 0, [])
    assert queue.status()["workers"] == []


def test_worker_stop_waits_until_the_worker_recorded_its_job_and_exited(queue: Queue) -> None:
    first = queue.enqueue("sleep 4", priority=10)  # outlasts a slow `worker stop` start-up
    second = queue.enqueue("true")
    [pid] = queue.start(1)
    queue.wait_job(first, "processing")

    stop = queue.cli("worker", "stop", timeout=30)
    assert parse_pids(stop.stdout) == [pid]
    assert "Stopped 1 worker(s)." in stop.stdout
    assert not is_running(pid)
    assert queue.job(first)["state"] != "processing"
    assert queue.job(second)["state"] == "pending"
    assert queue.status()["workers"] == []


def test_force_stop_interrupts_the_job_and_its_whole_group(queue: Queue) -> None:
    token = unique_token()
    leader = queue.files / "leader"
    job_id, pid = _running_job(queue, f"echo $$ > {leader}; sleep 31.{token} & sleep 30.{token}")
    queue.wait(lambda: len(sleepers(token)) == 2, 5, "the job's sleeps")

    began = time.monotonic()
    queue.cli("worker", "stop", "--force", "--timeout", "10", timeout=30)
    assert time.monotonic() - began < 5
    job = queue.job(job_id)
    assert (job["state"], job["attempts"], job["exit_code"]) == ("failed", 1, None)
    assert job["last_error"] == "interrupted"
    assert job["runs"][0]["error"] == "interrupted"
    assert group_members(int(leader.read_text())) == []
    assert sleepers(token) == []
    assert not is_running(pid)


def test_a_second_stop_signal_interrupts_the_job(queue: Queue) -> None:
    token = unique_token()
    job_id, pid = _running_job(queue, f"sleep 30.{token}")
    os.kill(pid, signal.SIGTERM)
    assert_stays(
        lambda: queue.job(job_id)["state"] == "processing" and sleepers(token),
        0.5,
        "a graceful stop leaves the running job alone",
    )

    began = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not is_running(pid), timeout=5)
    assert time.monotonic() - began < 5
    job = queue.job(job_id)
    assert (job["state"], job["last_error"]) == ("failed", "interrupted")
    assert sleepers(token) == []


def test_graceful_worker_stop_lets_the_running_job_finish(queue: Queue) -> None:
    # In the wild the heartbeat wins the race in a few percent of graceful stops; here the
    # window is held open: the stop flag `worker stop` writes first is set and seen by the
    # heartbeat thread, then `worker stop` runs (flag again, then SIGTERM).
    job_id, _pid = _running_job(queue, "sleep 3")
    worker_id = queue.status()["workers"][0]["id"]
    store = open_store(resolve_database())
    try:
        store.request_stop([worker_id])
    finally:
        store.close()
    log = queue.home / "logs" / f"worker-{worker_id}.log"
    queue.wait(lambda: "stop requested through the store" in log.read_text(), 5, "heartbeat")
    queue.cli("worker", "stop", "--timeout", "10", timeout=30)
    job = queue.job(job_id)
    assert (job["state"], job["last_error"]) == ("completed", None)


# --- worker stop flags ------------------------------------------------------------------------
def test_stop_without_workers(queue: Queue) -> None:
    result = queue.cli("worker", "stop")
    assert result.stdout.strip() == "No workers running."


# The job ignores SIGTERM: even if the race above turns the stop into an interruption,
# the worker then waits KILL_GRACE_SECONDS (2 s) before it kills the job and exits.
STUBBORN = "trap '' TERM; sleep 30.{token}"


def test_stop_timeout_exits_1_while_a_worker_is_still_busy(queue: Queue) -> None:
    _job_id, pid = _running_job(queue, STUBBORN.format(token=unique_token()))
    began = time.monotonic()
    result = queue.cli("worker", "stop", "--timeout", "0.5", check=False)
    assert result.returncode == 1
    assert time.monotonic() - began < 3
    assert "Error:" in result.stderr and str(pid) in result.stderr
    assert is_running(pid)


def test_stop_no_wait_returns_at_once(queue: Queue) -> None:
    _job_id, pid = _running_job(queue, STUBBORN.format(token=unique_token()))
    began = time.monotonic()
    stop = queue.cli("worker", "stop", "--no-wait")
    assert time.monotonic() - began < 2
    assert parse_pids(stop.stdout) == [pid]
    assert is_running(pid)
    assert queue.cli("worker", "stop", "--no-wait", "--timeout", "1", check=False).returncode == 2


# --- worker start --------------------------------------------------------------------------------
def test_start_returns_at_once_in_a_command_substitution_and_a_pipe(queue: Queue) -> None:
    exe = queuectl_executable()
    began = time.monotonic()
    substituted = subprocess.run(
        ["bash", "-c", 'x=$("$0" worker start --count 2); echo "got: $x"', exe],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=queue.files,
    )
    assert substituted.returncode == 0, substituted
    assert time.monotonic() - began < 8
    first = parse_pids(substituted.stdout)
    assert substituted.stdout.startswith("got: ") and len(first) == 2

    began = time.monotonic()
    piped = subprocess.run(
        ["bash", "-c", '"$0" worker start --count 2 | cat', exe],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=queue.files,
    )
    assert piped.returncode == 0, piped
    assert time.monotonic() - began < 8
    second = parse_pids(piped.stdout)

    assert queue.worker_pids() == sorted(first + second)
    logs = queue.home / "logs"
    for pid in first + second:
        assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
        for fd in (1, 2):
            assert os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(logs))


# --- pid reuse -----------------------------------------------------------------------------------
def _register(pid: int, start: int, worker_id: str) -> None:
    now = datetime.now(timezone.utc)
    store = open_store(resolve_database())
    try:
        store.register_worker(WorkerInfo(worker_id, host_name(), pid, start, now, now))
    finally:
        store.close()


def test_stop_never_signals_a_reused_pid_or_a_zombie(queue: Queue) -> None:
    [real] = queue.start(1)
    bystander = subprocess.Popen(["sleep", "30"])
    zombie = subprocess.Popen(["true"])
    try:
        real_start = start_time(bystander.pid)
        assert real_start is not None
        _register(bystander.pid, real_start + 1000, "w-reused-pid")
        wait_until(lambda: not is_running(zombie.pid), timeout=5)  # exited, not reaped
        zombie_start = start_time(zombie.pid)
        assert zombie_start is not None
        _register(zombie.pid, zombie_start, "w-zombie")

        stop = queue.cli("worker", "stop", "--force", "--timeout", "10")
        assert parse_pids(stop.stdout) == [real]
        assert queue.cli("worker", "stop").stdout.strip() == "No workers running."
        assert bystander.poll() is None, "worker stop signalled an unrelated process"

        # The control: with its true start time the same registration is signalled.
        _register(bystander.pid, real_start, "w-same-pid")
        queue.cli("worker", "stop", "--timeout", "5")
        assert bystander.wait(timeout=5) == -signal.SIGTERM
    finally:
        for process in (bystander, zombie):
            process.kill()
            process.wait()


# --- foreground --------------------------------------------------------------------------------
def test_foreground_restarts_a_dead_worker_and_stops_gracefully_on_sigterm(
    queue: Queue,
) -> None:
    parent = queue.foreground(2)
    first = sorted(w["pid"] for w in queue.wait_workers(2))
    for pid in first:
        assert int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == (
            parent.pid
        )
    victim, survivor = first
    os.kill(victim, signal.SIGKILL)

    def replaced() -> list[int] | None:
        pids = queue.worker_pids()
        return pids if len(pids) == 2 and survivor in pids and victim not in pids else None

    [replacement] = [pid for pid in queue.wait(replaced, 15, "a replacement") if pid != survivor]
    assert is_running(replacement)

    out = queue.files / "out"
    job_id = queue.enqueue(f"sleep 1; echo done > {out}")
    queue.wait_job(job_id, "processing")
    parent.send_signal(signal.SIGTERM)
    assert wait_exit(parent, 15) == 0
    job = queue.job(job_id)
    assert (job["state"], job["exit_code"]) == ("completed", 0)
    assert out.read_text() == "done\n"
    assert not is_running(survivor) and not is_running(replacement)
    assert queue.status()["workers"] == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_foreground_stops_on(queue: Queue, signum: signal.Signals) -> None:
    parent = queue.foreground(1)
    [worker] = queue.wait_workers(1)
    parent.send_signal(signum)
    assert wait_exit(parent, 15) == 0
    assert not is_running(worker["pid"])


def test_worker_stop_stops_foreground_workers_for_good(queue: Queue) -> None:
    parent = queue.foreground(2)
    queue.wait_workers(2)
    queue.cli("worker", "stop", "--timeout", "10")
    assert_stays(
        lambda: queue.status()["workers"] == [],
        2.5,
        "no worker comes back after `worker stop`",
    )
    assert wait_exit(parent, 5) == 0
