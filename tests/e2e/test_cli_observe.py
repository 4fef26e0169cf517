"""Watching jobs from the command line, through the real executable: `wait` (ids or --all,
dead and unknown jobs named, the no-worker warning, --json), `status --watch` on a
pseudo-terminal and piped, the output tail of `show`, and `--json` on `doctor`,
`config get` and `dlq retry`. Where the store matters, on both backends.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

import pytest

from tests.e2e.worker_helpers import FAST_CONFIG, Queue, fresh_queue, wait_exit
from tests.helpers import CliResult, assert_error, queuectl_executable, read_until_closed
from tests.reliability.helpers import cli_database
from tests.stores import StoreFactory

NO_WORKER = "Warning: no worker is running for this database; start one with queuectl worker start"


class Backend(NamedTuple):
    """A queue on one backend: CLI calls carry QUEUECTL_DB."""

    queue: Queue
    env: dict[str, str | None]
    name: str

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> CliResult:
        return self.queue.cli(*args, env=self.env, check=check, timeout=timeout)

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def enqueue(self, command: str, **fields: Any) -> str:
        return self.cli("enqueue", json.dumps({"command": command, **fields})).stdout.strip()

    def state(self, job_id: str) -> str:
        return str(self.json("show", job_id)["state"])

    def popen(self, *args: str) -> subprocess.Popen[str]:
        environment = {**os.environ, "QUEUECTL_HOME": str(self.queue.home)}
        environment.update({k: v for k, v in self.env.items() if v is not None})
        process = subprocess.Popen(
            [queuectl_executable(), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        return process


@pytest.fixture
def backend(queuectl_home: Path, tmp_path: Path, store_factory: StoreFactory) -> Iterator[Backend]:
    store = store_factory()
    for key, value in FAST_CONFIG.items():
        store.set_config(key, value)
    env: dict[str, str | None] = {"QUEUECTL_DB": cli_database(store_factory.location)}
    with fresh_queue(queuectl_home, tmp_path / "files") as queue:
        yield Backend(queue, env, store_factory.backend)
        queue.cli("worker", "stop", "--force", "--timeout", "20", env=env, check=False, timeout=40)


def read_line_within(stream: IO[str], seconds: float) -> str:
    """The next line of a child's pipe, or fail after `seconds`."""
    ready, _, _ = select.select([stream], [], [], seconds)
    assert ready, f"no line within {seconds}s"
    return stream.readline()


def read_until(fd: int, predicate: Callable[[str], bool], text: str = "") -> str:
    """`text` and what the pipe `fd` gives, until `predicate` holds or the pipe ends; fail
    after 20 s. Straight from the descriptor: select() cannot see a file object's buffer."""
    deadline = time.monotonic() + 20
    while not predicate(text):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"not seen in 20 s: {text!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            text += chunk.decode()
    return text


# --- wait --------------------------------------------------------------------------------------
def test_wait_all_waits_for_the_jobs_unfinished_when_it_started(backend: Backend) -> None:
    slow = backend.enqueue("sleep 0.5")
    dead = backend.enqueue("exit 3", max_retries=0)
    waiter = backend.popen("wait", "--all", "--json", "--timeout", "60")
    try:
        assert waiter.stderr is not None
        # The warning comes after the snapshot of ids: what is enqueued now is not in it.
        assert read_line_within(waiter.stderr, 30).rstrip("\n") == NO_WORKER
        late = backend.enqueue("true", delay=3600)
        backend.queue.start(1, env=backend.env)
        stdout, stderr = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 1, stderr
    assert json.loads(stdout) == {"jobs": {slow: "completed", dead: "dead"}, "timed_out": False}
    assert f"job {dead}: dead (last error: exited with code 3)" in stderr.splitlines()
    assert stderr.count("Warning:") == 0  # said once, read above
    assert stderr.splitlines()[-1].startswith("Error: ")
    assert "Traceback" not in stderr
    assert backend.state(late) == "pending"


def test_wait_names_dead_and_unknown_jobs(backend: Backend) -> None:
    backend.queue.start(1, env=backend.env)
    good = backend.enqueue("true")
    dead = backend.enqueue("echo boom >&2; exit 4", max_retries=0)
    result = backend.cli("wait", good, dead, "no-such-job", "--json", check=False)
    assert result.returncode == 1, result
    assert json.loads(result.stdout) == {
        "jobs": {good: "completed", dead: "dead", "no-such-job": None},
        "timed_out": False,
    }
    lines = result.stderr.splitlines()
    assert f"job {dead}: dead (last error: exited with code 4)" in lines
    assert "job no-such-job: not found" in lines
    assert lines[-1].startswith("Error: ")
    assert "Warning" not in result.stderr  # a worker runs
    assert backend.cli("wait", good).returncode == 0
    assert backend.cli("wait", "--all", "--json").stdout.strip() == (
        '{\n  "jobs": {},\n  "timed_out": false\n}'
    )


def test_wait_timeout_says_whether_a_worker_runs(backend: Backend) -> None:
    job = backend.enqueue("true")
    result = backend.cli("wait", job, "--timeout", "0.5", "--json", check=False)
    assert result.returncode == 124, result
    assert json.loads(result.stdout) == {"jobs": {job: "pending"}, "timed_out": True}
    assert result.stderr.count(NO_WORKER) == 1, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("Error: timed out") and job in last
    assert "no worker is running" in last

    backend.queue.start(1, env=backend.env)
    later = backend.enqueue("true", delay=3600)
    result = backend.cli("wait", later, "--timeout", "0.5", check=False)
    assert result.returncode == 124, result
    assert "Warning" not in result.stderr
    assert "1 worker running" in result.stderr.splitlines()[-1]


def test_wait_needs_ids_or_all(queue: Queue) -> None:
    assert_error(queue.cli("wait", check=False), 2)
    assert_error(queue.cli("wait", "x", "--all", check=False), 2)


# --- --json on doctor, config get, dlq retry ---------------------------------------------------
def test_dlq_retry_json_prints_the_ids_moved_back(backend: Backend) -> None:
    backend.queue.start(1, env=backend.env)
    dead = [backend.enqueue(f"exit {n}", max_retries=0) for n in (1, 2, 3)]
    assert backend.cli("wait", *dead, check=False).returncode == 1
    assert backend.json("dlq", "retry", dead[0], dead[0]) == [dead[0]]
    assert backend.cli("wait", dead[0], check=False).returncode == 1  # dead again
    backend.cli("worker", "stop")
    assert sorted(backend.json("dlq", "retry", "--all")) == sorted(dead)
    assert backend.json("dlq", "retry", "--all") == []  # pending now, none dead
    assert "0 job(s) moved" in backend.cli("dlq", "retry", "--all").stdout


def test_config_get_json(queue: Queue) -> None:
    queue.cli("config", "set", "backoff-base", "2.5")
    assert json.loads(queue.cli("config", "get", "backoff_base", "--json").stdout) == {
        "backoff_base": 2.5
    }
    assert json.loads(queue.cli("config", "get", "max-retries", "--json").stdout) == {
        "max_retries": 3
    }
    assert queue.cli("config", "get", "max_retries").stdout == "3\n"  # bare, for scripts
    assert_error(queue.cli("config", "get", "nope", "--json", check=False), 2)


def test_doctor_json(backend: Backend) -> None:
    result = backend.cli("doctor", "--json")
    document = json.loads(result.stdout)
    assert set(document) == {"database", "healthy", "checks", "advice"}
    assert document["healthy"] is True and document["advice"] == []
    assert {"name", "ok", "detail"} <= set(document["checks"][0])
    assert all(check["ok"] for check in document["checks"])
    assert "workers" in [check["name"] for check in document["checks"]]
    text = backend.cli("doctor").stdout
    assert all(check["name"] in text for check in document["checks"])


# --- status --watch ------------------------------------------------------------------------------
WATCH_HEADER = "Every 0.2s: queuectl status"


def test_status_watch_piped_prints_frames_one_after_another_until_sigint(queue: Queue) -> None:
    backend = Backend(queue, {}, "sqlite")
    watcher = backend.popen("status", "--watch", "0.2")
    try:
        assert watcher.stdout is not None and watcher.stderr is not None
        stdout = watcher.stdout.fileno()
        received = read_until(stdout, lambda text: text.count(WATCH_HEADER) >= 2)
        backend.enqueue("true")
        received = read_until(stdout, lambda text: "pending     1\n" in text, received)
        watcher.send_signal(signal.SIGINT)
        assert wait_exit(watcher, 10) == 0  # type: ignore[arg-type]
        output = read_until(stdout, lambda text: False, received)
        stderr = read_until(watcher.stderr.fileno(), lambda text: False)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert "\x1b" not in output  # plain frames for a log, no cursor movement
    assert stderr == ""
    frames = output.split(WATCH_HEADER)[1:]
    assert len(frames) >= 3
    assert all("Jobs:" in frame and "Workers: none running" in frame for frame in frames)
    assert all(frame.endswith("\n\n") for frame in frames)  # a blank line after each


def test_status_watch_redraws_in_place_on_a_terminal_and_exits_0_on_sigint(queue: Queue) -> None:
    environment = {**os.environ, "QUEUECTL_HOME": str(queue.home)}
    leader, follower = pty.openpty()
    try:
        watcher = subprocess.Popen(
            [queuectl_executable(), "status", "--watch", "0.2"],
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=follower,
            env=environment,
        )
    finally:
        os.close(follower)
    received = b""
    try:
        deadline = time.monotonic() + 20
        while received.count(b"\x1b[H") < 3:
            assert time.monotonic() < deadline, f"3 frames not drawn in 20 s: {received!r}"
            ready, _, _ = select.select([leader], [], [], 1)
            if ready:
                received += os.read(leader, 65536)
        watcher.send_signal(signal.SIGINT)
        assert wait_exit(watcher, 10) == 0
        received += read_until_closed(leader)
    finally:
        os.close(leader)
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    text = received.decode()
    assert "Traceback" not in text and "Error" not in text, text
    frames = text.split("\x1b[H")[1:]
    assert all(WATCH_HEADER in frame and "Jobs:" in frame for frame in frames[:3])
    assert all("\x1b[J" in frame for frame in frames[:3])  # the rest of the screen cleared


def test_status_watch_rejects_a_bad_interval(queue: Queue) -> None:
    for bad in ("0", "-1", "soon"):
        assert_error(queue.cli("status", "--watch", bad, check=False), 2)


# --- show: the output tail -----------------------------------------------------------------------
def test_show_ends_with_the_last_lines_of_the_latest_run(backend: Backend) -> None:
    backend.queue.start(1, env=backend.env)
    script = "for i in $(seq 1 15); do echo line $i; done; printf '\\033[31mred\\tx\\n'; exit 1"
    job = backend.enqueue(script, max_retries=2)
    quiet = backend.enqueue("true")
    assert backend.cli("wait", job, quiet, check=False).returncode == 1
    size = sum(len(f"line {i}\n") for i in range(1, 16)) + len("\x1b[31mred\tx\n")

    lines = backend.cli("show", job).stdout.splitlines()
    header = f"output (last 10 lines of run 2, {size} bytes; queuectl logs {job} for all):"
    assert lines[-11:] == [header, *(f"line {i}" for i in range(7, 16)), "\\x1b[31mred\\tx"]
    assert lines[-12] == ""
    assert lines[-13].startswith("2 ")  # the runs table comes before

    shown = backend.cli("show", job, "--no-output").stdout
    assert "output" not in shown and "line 15" not in shown
    assert shown.splitlines()[-1].startswith("2 ")
    assert "output" not in backend.json("show", job)  # --json: logs --json has no place here
    assert backend.cli("show", quiet).stdout.splitlines()[-1] == "output of run 1: none"


def test_show_prints_a_short_output_whole(queue: Queue) -> None:
    job = queue.enqueue("echo one; echo two")
    queue.cli("worker", "run", "--burst")
    lines = queue.cli("show", job).stdout.splitlines()
    assert lines[-3:] == ["output of run 1 (8 bytes):", "one", "two"]
