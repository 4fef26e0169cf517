"""Workers end to end: real `queuectl` processes running real jobs.

The scenarios users check first (a job completes, retries with backoff into the
DLQ, many workers without a double run, a missing command, restarts), claim
order, the job's process environment and `queuectl wait`. Recovery and fencing
are in test_worker_recovery.py, stopping and starting in test_worker_control.py.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from queuectl.paths import resolve_database
from queuectl.store import open_store
from tests.e2e.worker_helpers import (
    Queue,
    epoch,
    group_members,
    sleepers,
    stream_lines,
    unique_token,
)


# --- the five scenarios ----------------------------------------------------------------------
def test_a_job_completes(queue: Queue) -> None:
    job_id = queue.enqueue("echo Hello")
    [pid] = queue.start(1)
    job = queue.wait_job(job_id, "completed")
    assert (job["exit_code"], job["attempts"], job["last_error"]) == (0, 1, None)
    [run] = job["runs"]
    assert (run["n"], run["exit_code"], run["signal"], run["error"]) == (1, 0, None, None)
    [worker] = queue.status()["workers"]
    assert worker["pid"] == pid
    assert run["worker_id"] == job["worker_id"] == worker["id"]
    assert epoch(run["finished_at"]) >= epoch(run["started_at"])


def test_failing_job_backs_off_into_the_dlq_and_dlq_retry_runs_it_again(queue: Queue) -> None:
    base = 1.5
    queue.configure(backoff_base=base)
    fixed = queue.files / "fixed"
    job_id = queue.enqueue(f"test -e {fixed} || exit 3", max_retries=3)
    queue.start(1)

    # After the first failure: failed, runnable again base^1 s after the failure.
    failed = queue.wait_job(job_id, "failed")
    assert (failed["attempts"], failed["exit_code"]) == (1, 3)
    assert failed["last_error"] == "exited with code 3"
    delay = epoch(failed["run_at"]) - epoch(failed["runs"][0]["finished_at"])
    assert delay == pytest.approx(base, abs=0.001)

    dead = queue.wait_job(job_id, "dead", timeout=20)
    assert (dead["attempts"], dead["exit_code"]) == (3, 3)
    runs = dead["runs"]
    assert [run["n"] for run in runs] == [1, 2, 3]
    assert all(run["exit_code"] == 3 for run in runs)
    for n in (1, 2):  # the n-th failure delays the next run by base^n, never less
        gap = epoch(runs[n]["started_at"]) - epoch(runs[n - 1]["finished_at"])
        assert base**n - 0.001 <= gap <= base**n + 1.5, (n, gap)

    assert [job["id"] for job in queue.json("dlq", "list")] == [job_id]
    row = next(line for line in queue.cli("dlq", "list").stdout.splitlines() if job_id in line)
    assert "dead" in row.split() and "3/3" in row.split()

    queue.cli("worker", "stop", "--timeout", "10")
    fixed.touch()
    queue.cli("dlq", "retry", job_id)
    pending = queue.job(job_id)
    assert (pending["state"], pending["attempts"]) == ("pending", 0)
    assert queue.json("dlq", "list") == []

    queue.start(1)
    done = queue.wait_job(job_id, "completed")
    assert (done["attempts"], done["exit_code"]) == (1, 0)
    assert [run["n"] for run in done["runs"]] == [1, 2, 3, 4]  # numbers are never reused
    assert done["runs"][3]["exit_code"] == 0


def test_max_retries_zero_means_exactly_one_run(queue: Queue) -> None:
    job_id = queue.enqueue("exit 1", max_retries=0)
    queue.start(1)
    job = queue.wait_job(job_id, "dead")
    assert (job["attempts"], job["exit_code"]) == (1, 1)
    assert [run["n"] for run in job["runs"]] == [1]


def test_many_workers_run_many_jobs_each_exactly_once(queue: Queue) -> None:
    ran = queue.files / "ran"
    queue.start(4)
    ids = queue.enqueue_many([{"command": f'echo "$QUEUECTL_JOB_ID" >> {ran}'} for _ in range(300)])
    queue.wait(lambda: queue.counts()["completed"] == 300, 90, "300 jobs completed")

    counts = Counter(stream_lines(ran))
    assert set(counts) == set(ids)
    assert [job_id for job_id, n in counts.items() if n != 1] == []
    jobs = queue.json("list")
    assert {(job["state"], job["attempts"]) for job in jobs} == {("completed", 1)}
    store = open_store(resolve_database())
    try:
        assert {len(store.get_runs(job_id)) for job_id in ids} == {1}
    finally:
        store.close()
    assert queue.counts() == {
        "pending": 0,
        "processing": 0,
        "completed": 300,
        "failed": 0,
        "dead": 0,
        "total": 300,
    }


def test_missing_command_fails_with_127_and_the_worker_keeps_going(queue: Queue) -> None:
    [pid] = queue.start(1)
    missing = queue.enqueue("nosuchcommand_xyz", max_retries=0)
    job = queue.wait_job(missing, "dead")
    assert job["exit_code"] == 127
    assert job["last_error"] == "exited with code 127"

    after = queue.enqueue("echo after")
    done = queue.wait_job(after, "completed")
    assert done["worker_id"] == job["worker_id"]
    assert queue.worker_pids() == [pid]


def test_everything_survives_restarts_of_workers_and_cli(queue: Queue) -> None:
    ran = queue.files / "ran"
    command = f'sleep 0.3; echo "$QUEUECTL_JOB_ID" >> {ran}'
    ids = queue.enqueue_many([{"command": command} for _ in range(10)])
    queue.start(2)
    queue.wait(lambda: queue.counts()["completed"] >= 2, 15, "2 jobs completed")
    queue.cli("worker", "stop", "--timeout", "10")

    counts = queue.counts()
    assert counts["processing"] == 0
    assert counts["pending"] > 0, "nothing left to test the restart with"
    assert queue.status()["workers"] == []
    assert "pending" in queue.cli("list").stdout
    assert "none running" in queue.cli("status").stdout

    ids += queue.enqueue_many([{"command": command} for _ in range(3)])
    queue.start(2)
    queue.wait(lambda: queue.counts()["completed"] == 13, 20, "13 jobs completed")
    assert sorted(stream_lines(ran)) == sorted(ids)
    # Not attempts == 1 for all: a graceful `worker stop` may interrupt a running job (see
    # test_graceful_worker_stop_lets_the_running_job_finish); such a job simply runs again.
    assert {job["state"] for job in queue.json("list")} == {"completed"}


# --- claim order -------------------------------------------------------------------------------
def test_one_worker_claims_by_priority_then_run_at_then_enqueue_order(queue: Queue) -> None:
    order = queue.files / "order"
    started = queue.files / "scheduled-started"
    an_hour_ago = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    specs: list[tuple[str, dict[str, Any]]] = [
        ("a", {}),
        ("b", {"priority": 5}),
        ("c", {}),
        ("d", {"priority": 5}),
        ("e", {"priority": -1}),
        ("f", {}),
        ("g", {"run_at": an_hour_ago}),  # enqueued last, but runnable an hour earlier
    ]
    for name, fields in specs:
        queue.enqueue(f"echo {name} >> {order}", id=name, **fields)
    scheduled = queue.enqueue(f"date +%s.%N > {started}", priority=100, delay=3)

    queue.start(1)
    queue.wait(lambda: len(stream_lines(order)) == 7, 15, "7 jobs run")
    assert stream_lines(order) == ["b", "d", "g", "a", "c", "f", "e"]
    assert queue.job(scheduled)["state"] == "pending"

    job = queue.wait_job(scheduled, "completed", timeout=15)
    run_at = epoch(job["run_at"])
    assert run_at - epoch(job["created_at"]) == pytest.approx(3, abs=0.001)
    assert float(started.read_text()) >= run_at
    assert epoch(job["runs"][0]["started_at"]) >= run_at


# --- how a job runs ------------------------------------------------------------------------------
def test_a_job_runs_via_sh_in_its_own_session_with_stdin_from_dev_null(queue: Queue) -> None:
    out = queue.files
    command = (
        f"cat > {out}/cat.out; echo $? > {out}/cat.rc; "
        f"readlink /proc/$$/fd/0 > {out}/stdin; readlink /proc/$$/fd/1 > {out}/stdout; "
        f"cat /proc/$$/stat > {out}/stat; tr '\\0' ' ' < /proc/$$/cmdline > {out}/cmdline"
    )
    [worker_pid] = queue.start(1)
    job_id = queue.enqueue(command)
    queue.wait_job(job_id, "completed")

    assert (out / "cat.rc").read_text().strip() == "0"  # `cat` read EOF at once
    assert (out / "stdin").read_text().strip() == "/dev/null"
    assert not (out / "stdout").read_text().startswith("pipe:")
    stat = (out / "stat").read_text()
    pid = int(stat.split()[0])
    ppid, pgrp, session = (int(x) for x in stat[stat.rindex(")") + 2 :].split()[1:4])
    assert pgrp == session == pid, "the job is not the leader of its own session"
    assert ppid == worker_pid
    assert (out / "cmdline").read_text().startswith("/bin/sh -c ")


def test_a_backgrounded_process_does_not_hang_the_worker_and_dies_with_the_job(
    queue: Queue,
) -> None:
    token = unique_token()
    queue.start(1)
    job_id = queue.enqueue(f"sleep 100.{token} & echo started")
    job = queue.wait_job(job_id, "completed", timeout=10)
    run = job["runs"][0]
    assert epoch(run["finished_at"]) - epoch(run["started_at"]) < 2
    assert sleepers(token) == []
    follower = queue.enqueue("true")
    queue.wait_job(follower, "completed")


def test_job_environment(queue: Queue) -> None:
    out = queue.files
    queue.start(
        1,
        env={
            "QUEUECTL_DB": str(queue.db_path),
            "E2E_FROM_WORKER": "worker",
            "E2E_OVERRIDDEN": "worker",
        },
    )
    job_id = queue.enqueue(
        f'env > {out}/env.$QUEUECTL_ATTEMPT; [ "$QUEUECTL_ATTEMPT" -ge 2 ]',
        env={"E2E_FROM_JOB": "a b=c", "E2E_OVERRIDDEN": "job"},
        max_retries=3,
    )
    queue.wait_job(job_id, "completed", timeout=15)
    for attempt in (1, 2):
        lines = (out / f"env.{attempt}").read_text().splitlines()
        env = dict(line.split("=", 1) for line in lines if "=" in line)
        assert env["QUEUECTL_JOB_ID"] == job_id
        assert env["QUEUECTL_ATTEMPT"] == str(attempt)
        assert env["E2E_FROM_WORKER"] == "worker"
        assert env["E2E_FROM_JOB"] == "a b=c"
        assert env["E2E_OVERRIDDEN"] == "job"
        assert "QUEUECTL_DB" not in env, "the database address leaked into a job"


def test_job_cwd(queue: Queue) -> None:
    given = queue.files / "given dir"
    given.mkdir()
    here = queue.files / "enqueued here"
    here.mkdir()
    queue.start(1)

    explicit = queue.enqueue(f"pwd > '{queue.files}/pwd.explicit'", cwd=str(given))
    implicit = queue.cli(
        "enqueue", f'{{"command": "pwd > \'{queue.files}/pwd.implicit\'"}}', cwd=here
    ).stdout.strip()
    missing = queue.enqueue("true", cwd="/nonexistent/queuectl-e2e", max_retries=0)

    queue.wait_job(explicit, "completed")
    assert (queue.files / "pwd.explicit").read_text().strip() == str(given)
    assert queue.wait_job(implicit, "completed")["cwd"] == str(here)
    assert (queue.files / "pwd.implicit").read_text().strip() == str(here)
    job = queue.wait_job(missing, "dead")
    assert "/nonexistent/queuectl-e2e" in job["last_error"]
    assert "does not exist" in job["last_error"]
    assert job["runs"][0]["error"] == job["last_error"]
    assert job["exit_code"] is None


def test_timeout_ends_the_whole_process_group(queue: Queue) -> None:
    token = unique_token()
    leader = queue.files / "leader"
    queue.start(1)
    job_id = queue.enqueue(
        f"echo $$ > {leader}; sleep 31.{token} & sleep 30.{token}", timeout=0.5, max_retries=0
    )
    job = queue.wait_job(job_id, "dead", timeout=10)
    assert "timed out" in job["last_error"]
    assert group_members(int(leader.read_text())) == []
    assert sleepers(token) == []


# --- queuectl wait -------------------------------------------------------------------------------
def test_wait_exit_codes(queue: Queue) -> None:
    queue.start(1)
    slow = queue.enqueue("sleep 1")
    assert queue.cli("wait", slow).returncode == 0
    assert queue.job(slow)["state"] == "completed"

    dead = queue.enqueue("exit 1", max_retries=0)
    assert queue.cli("wait", slow, dead, check=False).returncode == 1
    assert queue.job(dead)["state"] == "dead"

    unknown = queue.cli("wait", slow, "no-such-job", check=False)
    assert unknown.returncode == 1
    assert "no-such-job" in unknown.stderr and "Error:" in unknown.stderr

    later = queue.enqueue("true", delay=60)
    began = time.monotonic()
    timed_out = queue.cli("wait", later, "--timeout", "0.5", check=False)
    assert timed_out.returncode == 124
    assert "Error:" in timed_out.stderr
    assert time.monotonic() - began < 5


def test_a_slow_job_does_not_keep_the_jobs_its_worker_claimed_with_it(queue: Queue) -> None:
    # Short jobs are claimed several at a time; the slow one in the middle must not hold
    # the ones claimed after it: they go back, the other worker runs them meanwhile.
    before = queue.enqueue_many([{"command": "true"} for _ in range(60)])
    slow = queue.enqueue("sleep 8")
    after = queue.enqueue_many([{"command": "true"} for _ in range(60)])
    queue.start(2)
    started = time.monotonic()
    queue.wait(
        lambda: queue.counts()["completed"] == len(before) + len(after) or None,
        timeout=15,
        what="every short job to complete",
    )
    assert time.monotonic() - started < 7, "short jobs waited for the slow one"
    assert queue.job(slow)["state"] == "processing"
    for job_id in before + after:
        job = queue.job(job_id)
        assert (job["attempts"], len(job["runs"])) == (1, 1), job
