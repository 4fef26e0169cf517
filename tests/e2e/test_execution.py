"""Job execution end to end (issue 4): timeouts, captured output, scheduling, priority,
the job's environment, long commands and the attempt history, through the real
`queuectl` executable with real workers.

Every test has its own QUEUECTL_HOME; the `queue` fixture stops every worker it
started (`worker stop --force --timeout 10`) and kills whatever is left.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.e2e.execution_helpers import (
    Follower,
    PeakSize,
    cli_bytes,
    command_of,
    lateness_summary,
    padded_command,
    processes_of_job,
    split_not_kept_notice,
    wait_done,
)
from tests.e2e.worker_helpers import (
    Queue,
    epoch,
    sleepers,
    stream_lines,
    unique_token,
)
from tests.helpers import RUN_KEYS, assert_error, wait_until

DEFAULT_OUTPUT_LIMIT = 1024 * 1024


def duration(run: dict[str, object]) -> float:
    return epoch(str(run["finished_at"])) - epoch(str(run["started_at"]))


def iso(moment: float, offset: str = "Z") -> str:
    """`moment` (epoch seconds) as ISO 8601 with microseconds, in UTC or at a fixed offset."""
    if offset == "Z":
        return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sign = 1 if offset[0] == "+" else -1
    hours, minutes = (int(part) for part in offset[1:].split(":"))
    zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    return datetime.fromtimestamp(moment, zone).isoformat(timespec="microseconds")


def list_column(queue: Queue, job_id: str, column: str) -> str:
    """The value of `column` in the `list` text table row of `job_id`."""
    lines = queue.cli("list").stdout.splitlines()
    start = lines[0].index(column)
    row = next(line for line in lines[1:] if line.split()[0] == job_id)
    return row[start:].split("  ")[0].strip()


# --- timeouts ----------------------------------------------------------------------------------
def test_timeout_ends_children_and_grandchildren(queue: Queue) -> None:
    token, stubborn_token = unique_token(), unique_token()
    queue.start(2)
    job_id = queue.enqueue(
        f"sleep 30.{token} & (sleep 31.{token}; echo x) & sleep 32.{token}",
        timeout=1,
        max_retries=1,
    )
    # Ignores SIGTERM, and so do its children: only the SIGKILL after the grace ends them.
    stubborn = queue.enqueue(
        f"trap '' TERM; (sleep 40.{stubborn_token}; echo x) & sleep 41.{stubborn_token}",
        timeout=1,
        max_retries=0,
    )
    # The checks below can see the job's processes: all three sleeps, by name and by env.
    running: list[int] = queue.wait(
        lambda: found if len(found := sleepers(token)) == 3 else [], 10, "the job's 3 sleeps"
    )
    assert set(running) <= set(processes_of_job(job_id))
    assert wait_done(queue, job_id, stubborn, timeout=20) == 1

    job = queue.job(job_id)
    assert (job["state"], job["last_error"]) == ("dead", "timed out after 1s")
    assert job["exit_code"] is None
    [run] = job["runs"]
    assert run["error"] == "timed out after 1s"
    assert 1.0 <= duration(run) < 2.5, run  # SIGTERM is enough: no wait for the grace
    job = queue.job(stubborn)
    assert (job["state"], job["last_error"]) == ("dead", "timed out after 1s")
    assert 2.5 <= duration(job["runs"][0]) < 5.0  # the deadline plus the grace before SIGKILL

    def survivors() -> list[str]:
        pids = {*sleepers(token), *sleepers(stubborn_token)}
        pids |= {*processes_of_job(job_id), *processes_of_job(stubborn)}
        return [command_of(pid) for pid in pids]

    # SIGKILLed processes can take a moment to be torn down by the kernel, no more.
    wait_until(lambda: not survivors(), timeout=2, what="no process of the jobs left")


def test_job_timeout_setting_is_the_default_and_timeout_0_opts_out(queue: Queue) -> None:
    before = queue.enqueue("true")  # enqueued before the setting: keeps no timeout
    queue.cli("config", "set", "job_timeout", "1")
    defaulted = queue.enqueue("sleep 5", max_retries=0)
    opted_out = queue.enqueue("sleep 2", timeout=0, max_retries=0)
    timeouts = {job["id"]: job["timeout"] for job in queue.json("list")}
    assert timeouts == {before: 0, defaulted: 1, opted_out: 0}

    queue.start(2)
    wait_done(queue, before, defaulted, opted_out, timeout=20)
    slow = queue.job(defaulted)
    assert (slow["state"], slow["last_error"]) == ("dead", "timed out after 1s")
    kept = queue.job(opted_out)
    assert (kept["state"], kept["exit_code"]) == ("completed", 0)
    assert duration(kept["runs"][0]) >= 2.0  # ran past the 1 s default


# --- background processes and large output -----------------------------------------------------
def test_a_backgrounded_process_does_not_hang_the_worker(queue: Queue) -> None:
    token = unique_token()
    queue.start(1)
    job_id = queue.enqueue(f"sleep 100.{token} & exit 0")
    after = queue.enqueue("echo next")
    assert wait_done(queue, job_id, after, timeout=10) == 0
    job, following = queue.job(job_id), queue.job(after)
    assert duration(job["runs"][0]) < 2.0
    gap = epoch(following["runs"][0]["started_at"]) - epoch(job["runs"][0]["finished_at"])
    assert gap < 2.0, "the next job waited on the background process"
    assert sleepers(token) == [], "the background sleep outlived its job"


def test_20_mb_of_output_keeps_the_tail_and_the_worker_responsive(queue: Queue) -> None:
    queue.start(1)
    with PeakSize(queue.home / "run") as peak:
        big = queue.enqueue("head -c 20000000 /dev/zero | tr '\\0' x; echo END")
        assert wait_done(queue, big, timeout=30) == 0
        ok = queue.enqueue("echo ok")
        assert wait_done(queue, ok, timeout=10) == 0
    print(f"peak size of the scratch output file: {peak.peak} bytes")

    following = queue.job(ok)
    assert duration(following["runs"][0]) < 1.0
    assert epoch(following["updated_at"]) - epoch(following["created_at"]) < 3.0
    assert len(queue.status()["workers"]) == 1

    logs = cli_bytes(queue, "logs", big)
    assert logs.returncode == 0, logs.stderr
    dropped, kept = split_not_kept_notice(logs.stdout)
    assert len(kept) == DEFAULT_OUTPUT_LIMIT
    assert kept == b"x" * (DEFAULT_OUTPUT_LIMIT - 4) + b"END\n"
    assert dropped == 20_000_004 - DEFAULT_OUTPUT_LIMIT
    assert cli_bytes(queue, "logs", ok).stdout == b"ok\n"


def test_output_limit_setting_bounds_what_is_kept(queue: Queue) -> None:
    queue.cli("config", "set", "output_limit", "1000")
    queue.start(1)
    long = queue.enqueue("head -c 5000 /dev/zero | tr '\\0' x; echo END")
    short = queue.enqueue("printf 'short\\n'")
    assert wait_done(queue, long, short, timeout=15) == 0

    dropped, kept = split_not_kept_notice(cli_bytes(queue, "logs", long).stdout)
    assert kept == b"x" * 996 + b"END\n"
    assert dropped == 5004 - 1000
    assert cli_bytes(queue, "logs", short).stdout == b"short\n"  # no notice when all is kept


def flood(seconds: float, count_file: Path) -> str:
    """A job writing 8 MB blocks as fast as it can for `seconds`, then `END <blocks>`."""
    return (
        f"n=0; end=$(($(date +%s%N) + {int(seconds * 1e9)})); "
        f"while [ $(date +%s%N) -lt $end ]; do head -c 8000000 /dev/zero; n=$((n + 1)); done; "
        f"echo $n > {count_file}; echo END $n"
    )


def test_a_runaway_job_cannot_grow_its_output_file_far_past_the_cap(queue: Queue) -> None:
    queue.start(1)
    count_file = queue.files / "blocks"
    with PeakSize(queue.home / "run") as peak:
        job_id = queue.enqueue(flood(1.5, count_file))
        assert wait_done(queue, job_id, timeout=20) == 0
    written = int(count_file.read_text()) * 8_000_000
    rate = written / duration(queue.job(job_id)["runs"][0])
    if rate < 50e6:
        pytest.skip(f"the job wrote only {rate / 1e6:.0f} MB/s: too slow to tell")
    cap = max(8 * 1024 * 1024, 4 * DEFAULT_OUTPUT_LIMIT)  # where OutputCapture cuts the file
    # Checked about every 0.1 s, the file exceeds the cap by at most what 0.25 s adds.
    allowed = cap + rate * 0.25
    assert peak.peak <= allowed, (
        f"output file took {peak.peak / 1e6:.0f} MB on disk (cap {cap / 1e6:.1f} MB, "
        f"writer {rate / 1e6:.0f} MB/s, allowed {allowed / 1e6:.0f} MB)"
    )


def test_a_fast_writer_keeps_its_last_bytes_and_an_exact_count(queue: Queue) -> None:
    queue.start(1)
    count_file = queue.files / "blocks"
    job_id = queue.enqueue(flood(1.5, count_file))
    assert wait_done(queue, job_id, timeout=20) == 0
    blocks = int(count_file.read_text())
    last_line = f"END {blocks}\n".encode()
    dropped, kept = split_not_kept_notice(cli_bytes(queue, "logs", job_id).stdout)
    assert kept.endswith(last_line), f"the job's last line is lost: ...{kept[-40:]!r}"
    written = blocks * 8_000_000 + len(last_line)
    counted = (dropped or 0) + len(kept)
    assert counted == written, f"{written - counted} bytes written but never counted"


# --- logs ----------------------------------------------------------------------------------------
def test_logs_follow_streams_a_running_job_until_it_ends(queue: Queue) -> None:
    started = queue.files / "started"
    queue.start(1)
    job_id = queue.enqueue(f"touch {started}; for i in 1 2 3 4 5; do echo tick $i; sleep 0.4; done")
    queue.wait(started.exists, 10, "the job to start")
    follower = Follower.start(queue, job_id)
    try:
        code, stderr = follower.wait(timeout=20)
    finally:
        follower.kill()
    exited_at = time.time()
    assert code == 0, stderr
    assert [line.text for line in follower.lines] == [f"tick {i}" for i in range(1, 6)]

    job = queue.job(job_id)
    assert job["state"] == "completed"
    finished = epoch(job["runs"][0]["finished_at"])
    first = follower.lines[0].at
    assert first < finished - 0.4, f"first tick {finished - first:.2f}s before the job ended"
    assert exited_at - finished < 3.0, "logs --follow lingered after the job ended"


def test_logs_attempt_picks_an_earlier_run(queue: Queue) -> None:
    queue.start(1)
    job_id = queue.enqueue('echo "attempt $QUEUECTL_ATTEMPT"; exit 1', max_retries=2)
    assert wait_done(queue, job_id, timeout=15) == 1
    assert queue.cli("logs", job_id, "--attempt", "1").stdout == "attempt 1\n"
    assert queue.cli("logs", job_id, "--attempt", "2").stdout == "attempt 2\n"
    assert queue.cli("logs", job_id).stdout == "attempt 2\n"
    assert_error(queue.cli("logs", job_id, "--attempt", "3", check=False), 1)


def test_logs_of_a_run_lost_with_its_worker_keeps_what_was_published(queue: Queue) -> None:
    queue.start(2)
    job_id = queue.enqueue(f"echo before-crash; sleep 30.{unique_token()}", max_retries=1)
    queue.wait(
        lambda: queue.cli("logs", job_id, check=False).stdout == "before-crash\n",
        10,
        "the running job's output to be published",
    )
    [busy] = [w["pid"] for w in queue.status()["workers"] if w["job_id"] == job_id]
    os.kill(busy, signal.SIGKILL)
    job = queue.wait_job(job_id, "dead", timeout=15)
    assert job["runs"][0]["error"] == "worker lost"
    assert queue.cli("logs", job_id, "--attempt", "1").stdout == "before-crash\n"


def test_logs_of_an_unknown_or_unrun_job_is_an_error(queue: Queue) -> None:
    assert_error(queue.cli("logs", "no-such-job", check=False), 1)
    later = queue.enqueue("true", delay=3600)
    assert_error(queue.cli("logs", later, check=False), 1)


def test_invalid_utf8_output_is_passed_through_when_piped(queue: Queue) -> None:
    # On a terminal it is shown with U+FFFD instead (tests/e2e/test_terminal_escape.py).
    queue.start(1)
    job_id = queue.enqueue("printf '\\377\\376ok\\n'")
    mixed = queue.enqueue("echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2")
    assert wait_done(queue, job_id, mixed, timeout=10) == 0
    result = cli_bytes(queue, "logs", job_id)
    assert result.stdout == b"\xff\xfeok\n"
    assert b"Traceback" not in result.stderr
    # stdout and stderr interleaved as written
    assert queue.cli("logs", mixed).stdout == "out-1\nerr-1\nout-2\nerr-2\n"


# --- priority and scheduling -------------------------------------------------------------------
def test_one_worker_runs_the_high_priority_job_first(queue: Queue) -> None:
    order = queue.files / "order"
    record = f"echo $QUEUECTL_JOB_ID >> {order}"
    lows = queue.enqueue_many([{"id": f"low{i}", "command": record} for i in range(5)])
    queue.enqueue(record, id="high", priority=10)
    queue.start(1)
    queue.wait(lambda: len(stream_lines(order)) == 6, 15, "six jobs run")
    assert stream_lines(order) == ["high", *lows]


def test_a_later_high_priority_job_waits_for_the_running_one_then_goes_next(
    queue: Queue,
) -> None:
    order, started, gate = (queue.files / name for name in ("order", "started", "gate"))
    record = f"echo $QUEUECTL_JOB_ID >> {order}"
    queue.start(1)
    queue.enqueue(
        f"{record}; touch {started}; while [ ! -e {gate} ]; do sleep 0.05; done", id="run"
    )
    queue.wait(started.exists, 10, "the first job to start")
    queue.enqueue_many([{"id": "low-a", "command": record}, {"id": "low-b", "command": record}])
    queue.enqueue(record, id="high", priority=10)
    assert queue.job("run")["state"] == "processing"
    gate.touch()
    queue.wait(lambda: len(stream_lines(order)) == 4, 15, "four jobs run")
    assert stream_lines(order) == ["run", "high", "low-a", "low-b"]
    first = queue.job("run")
    assert (first["state"], first["attempts"], len(first["runs"])) == ("completed", 1, 1)


def test_scheduled_jobs_never_start_early(queue: Queue, tmp_path: Path) -> None:
    starts = queue.files / "starts"
    queue.start(2)
    queue.wait_workers(2)
    record = f'echo "$QUEUECTL_JOB_ID $(date +%s.%N)" >> {starts}'
    base = time.time()
    specs: list[dict[str, object]] = []
    given_run_at: dict[str, float] = {}
    for i in range(20):
        offset = 1.0 + 2.0 * i / 19
        spec: dict[str, object] = {"id": f"s{i:02d}", "command": record}
        if i % 2:
            spec["delay"] = offset  # counted from the enqueue
        else:
            given_run_at[f"s{i:02d}"] = base + offset
            spec["run_at"] = iso(base + offset, "Z" if i % 4 == 0 else "+05:30")
        specs.append(spec)
    specs.append({"id": "later", "command": "true", "delay": 3600})
    queue.enqueue_many(specs)

    queue.wait(lambda: len(stream_lines(starts)) == 20, 20, "20 scheduled jobs to start")
    jobs = {job["id"]: job for job in queue.json("list")}
    for job_id, run_at in given_run_at.items():
        assert epoch(jobs[job_id]["run_at"]) == pytest.approx(run_at, abs=1e-6)
    lateness_ms = []
    for line in stream_lines(starts):
        job_id, started_at = line.split()
        late = float(started_at) - epoch(jobs[job_id]["run_at"])
        assert late >= 0, f"{job_id} started {-late * 1000:.1f} ms before its run_at"
        lateness_ms.append(late * 1000)
    summary = lateness_summary(lateness_ms) + " (2 idle workers, poll_interval 0.2)"
    print(summary)
    (tmp_path / "lateness.txt").write_text(summary + "\n")

    assert list_column(queue, "later", "NEXT_RUN") == jobs["later"]["run_at"][:19] + "Z"
    assert list_column(queue, "s00", "NEXT_RUN") == ""  # ran: no next run


def test_list_shows_when_a_backed_off_job_runs_next(queue: Queue) -> None:
    queue.cli("config", "set", "backoff_base", "60")
    queue.start(1)
    job_id = queue.enqueue("exit 1", max_retries=3)
    job = queue.wait_job(job_id, "failed")
    assert epoch(job["run_at"]) - epoch(job["runs"][0]["finished_at"]) == pytest.approx(60, abs=1)
    assert list_column(queue, job_id, "NEXT_RUN") == job["run_at"][:19] + "Z"


# --- the job's environment and command ---------------------------------------------------------
def test_job_environment_and_working_directory(queue: Queue, tmp_path: Path) -> None:
    out = queue.files
    here = tmp_path / "enqueued here"
    given = tmp_path / "given dir"
    here.mkdir()
    given.mkdir()
    [worker_pid] = queue.start(1, env={"QUEUECTL_DB": str(queue.db_path)})
    # The worker really has QUEUECTL_DB, so the check that jobs lack it means something.
    worker_env = Path(f"/proc/{worker_pid}/environ").read_bytes().split(b"\0")
    assert f"QUEUECTL_DB={queue.db_path}".encode() in worker_env

    spec = {
        "command": f"pwd > '{out}/pwd.default'; env > '{out}/env'",
        "env": {"JOB_VAR": "a b=c", "PATH": "/usr/bin:/bin"},
    }
    implicit = queue.cli("enqueue", json.dumps(spec), cwd=here).stdout.strip()
    explicit = queue.enqueue(f"pwd > '{out}/pwd.explicit'", cwd=str(given))
    gone = tmp_path / "no such dir"
    missing = queue.enqueue("echo should not run", cwd=str(gone), max_retries=0)
    after = queue.enqueue("echo still working")
    assert wait_done(queue, implicit, explicit, missing, after, timeout=15) == 1

    assert (out / "pwd.default").read_text().strip() == str(here)
    assert queue.job(implicit)["cwd"] == str(here)
    assert (out / "pwd.explicit").read_text().strip() == str(given)
    env = dict(line.split("=", 1) for line in (out / "env").read_text().splitlines() if "=" in line)
    assert env["JOB_VAR"] == "a b=c"
    assert env["PATH"] == "/usr/bin:/bin"  # the job's env wins over the worker's
    assert env["QUEUECTL_JOB_ID"] == implicit
    assert env["QUEUECTL_ATTEMPT"] == "1"
    assert "QUEUECTL_DB" not in env, "the database address leaked into a job"

    failed = queue.job(missing)
    assert failed["state"] == "dead"
    assert re.fullmatch(
        r".*working directory .*no such dir.* does not exist.*", failed["last_error"]
    )
    assert failed["runs"][0]["error"] == failed["last_error"]
    assert failed["exit_code"] is None
    assert queue.job(after)["state"] == "completed"
    assert queue.worker_pids() == [worker_pid]


def test_an_env_value_the_spec_accepts_reaches_the_job(queue: Queue) -> None:
    spec = {"command": 'echo "${#BIG}"', "env": {"BIG": "x" * 200_000}, "max_retries": 0}
    result = queue.cli("enqueue", "--file", "-", "--json", input=json.dumps(spec), check=False)
    if result.returncode == 2:
        return  # refused up front (exit 2): fine too
    [job_id] = json.loads(result.stdout)
    queue.start(1)
    wait_done(queue, job_id, timeout=10)
    job = queue.job(job_id)
    assert job["state"] == "completed", job["last_error"]
    assert queue.cli("logs", job_id).stdout == "200000\n"


@pytest.mark.parametrize(
    "sizes", [pytest.param((100_000, 200_000, 1024 * 1024), id="100KB-200KB-1MiB")]
)
def test_long_commands_run(queue: Queue, sizes: tuple[int, ...]) -> None:
    commands = {f"cmd-{size}": padded_command(size) for size in sizes}
    path = queue.files / "long.jsonl"
    path.write_text(
        "".join(json.dumps({"id": job_id, "command": c}) + "\n" for job_id, c in commands.items())
    )
    assert queue.cli("enqueue", "--file", str(path)).stdout.strip() == str(len(commands))
    queue.start(1)
    assert wait_done(queue, *commands, timeout=20) == 0
    for job_id, command in commands.items():
        assert queue.cli("logs", job_id).stdout == "big-ok\n"
        assert queue.job(job_id)["command"] == command


# --- the attempt history -----------------------------------------------------------------------
def test_show_lists_every_attempt(queue: Queue) -> None:
    [worker] = queue.start(1)
    flaky = queue.enqueue('[ "$QUEUECTL_ATTEMPT" -ge 3 ] || exit 3', max_retries=3)
    killed = queue.enqueue("kill -9 $$", max_retries=1)
    assert wait_done(queue, flaky, killed, timeout=20) == 1
    worker_id = next(w["id"] for w in queue.status()["workers"] if w["pid"] == worker)

    job = queue.job(flaky)
    runs = job["runs"]
    assert all(set(run) >= RUN_KEYS for run in runs)
    assert [run["n"] for run in runs] == [1, 2, 3]
    assert [run["exit_code"] for run in runs] == [3, 3, 0]
    assert [run["signal"] for run in runs] == [None, None, None]
    assert [run["error"] for run in runs] == ["exited with code 3"] * 2 + [None]
    assert {run["worker_id"] for run in runs} == {worker_id}
    assert all(duration(run) >= 0 for run in runs)

    text = queue.cli("show", flaky, "--no-output").stdout.splitlines()
    header = next(i for i, line in enumerate(text) if line.startswith("RUN "))
    assert re.split(r"\s{2,}", text[header]) == [
        "RUN", "STARTED", "FINISHED", "DURATION", "RESULT", "WORKER", "ERROR"
    ]  # fmt: skip
    rows = [re.split(r"\s{2,}", line) for line in text[header + 1 :] if line.strip()]
    assert len(rows) == 3
    for row, run in zip(rows, runs, strict=True):
        n, started, finished, took, result, worker_cell, error = row
        assert n == str(run["n"])
        assert started == run["started_at"][:19] + "Z"
        assert finished == run["finished_at"][:19] + "Z"
        assert float(took.rstrip("s")) == pytest.approx(duration(run), abs=0.002)
        assert result == f"exit {run['exit_code']}"
        assert worker_cell == worker_id
        assert error == (run["error"] or "-")

    dead = queue.job(killed)
    [run] = dead["runs"]
    assert (run["signal"], run["exit_code"]) == (9, None)
    assert dead["exit_code"] is None
    assert "signal 9" in dead["last_error"]
    last_line = queue.cli("show", killed, "--no-output").stdout.splitlines()[-1]
    assert re.split(r"\s{2,}", last_line)[4] == "signal 9"
