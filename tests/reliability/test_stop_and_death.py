"""What a worker's end does to the job it runs, with other workers alive.

A graceful stop keeps the job's lease until its outcome is recorded (a short lease,
another worker ready to recover it); a repeated `worker stop` only waits; a job that
runs `worker stop` does not deadlock its own worker; a worker that dies outright
takes its job's processes with it (its watchdog), and if the watchdog died too, a
live worker on the host ends them; a process a job left behind never writes into a
later run's output; a job with a huge environment costs the worker little.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from queuectl.store import Store
from tests.e2e.worker_helpers import FAST_CONFIG, Queue, is_running, sleepers, unique_token
from tests.helpers import queuectl_executable
from tests.reliability.helpers import cli_database, cmdline_of, log_problems
from tests.stores import StoreFactory


@dataclass
class Backend:
    """A queue on one backend: CLI calls take `env` (QUEUECTL_DB), `store` reads it."""

    queue: Queue
    store: Store
    env: dict[str, str | None]
    name: str

    def cli(self, *args: str, check: bool = True, host: str | None = None) -> str:
        env = {**self.env, **({"QUEUECTL_HOSTNAME": host} if host else {})}
        return self.queue.cli(*args, env=env, check=check).stdout

    def start(self, count: int = 1, host: str | None = None) -> list[int]:
        env = {**self.env, **({"QUEUECTL_HOSTNAME": host} if host else {})}
        return self.queue.start(count, env=env)

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json"))

    def job(self, job_id: str) -> dict[str, object]:
        job = self.store.get_job(job_id)
        assert job is not None
        return job.to_json()

    def worker_of(self, job_id: str) -> int | None:
        """The pid of the live worker that runs `job_id`, if one does."""
        for worker in self.store.list_workers():
            if worker.job_id == job_id:
                return worker.pid
        return None


@pytest.fixture
def backend(queue: Queue, store_factory: StoreFactory) -> Iterator[Backend]:
    store = store_factory()
    for key, value in FAST_CONFIG.items():
        store.set_config(key, value)
    env: dict[str, str | None] = {"QUEUECTL_DB": cli_database(store_factory.location)}
    yield Backend(queue, store, env, store_factory.backend)
    queue.cli("worker", "stop", "--force", "--timeout", "20", env=env, check=False, timeout=40)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _watchdogs(home: Path) -> dict[str, int]:
    """The watchdog processes of this home's workers: worker id -> pid."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        argv = [arg for arg in cmdline_of(int(name)) if arg]
        if "queuectl.worker.watchdog" not in argv:
            continue
        scratch = argv[-1]
        if os.path.dirname(scratch) == str(home / "run") and is_running(int(name)):
            found[os.path.basename(scratch)] = int(name)
    return found


# --- a graceful stop ------------------------------------------------------------------------
@pytest.mark.parametrize("hosts", [("a", "a"), ("a", "b")], ids=["one-host", "two-hosts"])
def test_a_stopping_worker_keeps_its_lease_until_its_job_is_recorded(
    backend: Backend, hosts: tuple[str, str]
) -> None:
    """SIGTERM to the worker running a job that outlasts the lease (2 s) several times,
    with another worker alive to recover it: the job runs once and its success stands."""
    if hosts[0] != hosts[1] and backend.name != "postgresql":
        pytest.skip("two hosts share a database on PostgreSQL only")
    out = backend.queue.files / "runs"
    command = f"echo start $QUEUECTL_ATTEMPT >> {out}; sleep 6; echo end $QUEUECTL_ATTEMPT >> {out}"
    backend.cli("enqueue", f'{{"id": "long", "command": "{command}"}}')
    backend.start(1, host=hosts[0])
    backend.queue.wait(lambda: _lines(out) == ["start 1"], 15, "the job to start")
    backend.start(1, host=hosts[1])  # the adversary: it recovers any expired lease
    holder = backend.worker_of("long")
    assert holder is not None
    os.kill(holder, signal.SIGTERM)
    backend.queue.wait(lambda: not is_running(holder), 20, "the stopped worker to exit")
    job = backend.job("long")
    assert (job["state"], job["attempts"], job["last_error"]) == ("completed", 1, None), job
    assert _lines(out) == ["start 1", "end 1"], "the job ran again while its worker stopped"
    assert [run.error for run in backend.store.get_runs("long")] == [None]
    assert log_problems(backend.queue.home, ("Traceback", "recovered from lost worker")) == []


def test_worker_stop_never_signals_a_worker_that_is_already_stopping(backend: Backend) -> None:
    out = backend.queue.files / "done"
    backend.cli("enqueue", f'{{"id": "slow", "command": "sleep 4; echo done > {out}"}}')
    [pid] = backend.start(1)
    backend.queue.wait(lambda: backend.worker_of("slow") == pid, 15, "the job to start")
    first = backend.queue.cli(
        "worker", "stop", "--timeout", "1", env=backend.env, check=False, timeout=30
    )
    assert first.returncode == 1, first
    assert "--force" in first.stderr, first
    second = backend.queue.cli("worker", "stop", env=backend.env, check=False, timeout=30)
    assert second.returncode == 0, second
    assert not is_running(pid)
    job = backend.job("slow")
    assert (job["state"], job["last_error"]) == ("completed", None), job
    assert out.read_text() == "done\n"


def test_worker_stop_after_a_stop_signal_waits_instead_of_interrupting(backend: Backend) -> None:
    """A worker stopping on an outside SIGTERM says so in the store within a heartbeat;
    a `worker stop` then must not be its second signal."""
    backend.cli("enqueue", '{"id": "slow", "command": "sleep 3"}')
    [pid] = backend.start(1)
    backend.queue.wait(lambda: backend.worker_of("slow") == pid, 15, "the job to start")
    os.kill(pid, signal.SIGTERM)
    backend.queue.wait(
        lambda: all(w.stopping for w in backend.store.list_workers()), 5, "stopping in the store"
    )
    assert backend.json("status")["workers"][0]["stopping"] is True
    backend.cli("worker", "stop")
    job = backend.job("slow")
    assert (job["state"], job["last_error"]) == ("completed", None), job


def test_a_job_that_runs_worker_stop_does_not_wait_for_its_own_worker(queue: Queue) -> None:
    """SQLite in QUEUECTL_HOME: a job does not see QUEUECTL_DB, so on PostgreSQL its
    `queuectl` would not reach the queue without the job's own env."""
    out = queue.files / "stop.out"
    stop = f"{queuectl_executable()} worker stop"
    queue.enqueue(f"{stop} > {out} 2>&1; echo exit $? >> {out}", id="stopper")
    queue.enqueue("true", id="after")
    [pid] = queue.start(1)
    queue.wait(lambda: not is_running(pid), 20, "the worker to stop after the job")
    assert queue.job("stopper")["state"] == "completed"
    assert queue.job("after")["state"] == "pending"
    text = out.read_text()
    assert "Not waiting for worker" in text and text.endswith("exit 0\n"), text


# --- a worker that dies ------------------------------------------------------------------
def test_the_job_of_a_killed_worker_ends_within_a_second(backend: Backend) -> None:
    """No other worker: nothing recovers the job, yet its processes end with the worker."""
    token = unique_token()
    backend.cli("enqueue", f'{{"id": "orphan", "command": "sleep 30.{token} & wait"}}')
    [pid] = backend.start(1)
    backend.queue.wait(lambda: len(sleepers(token)) == 1, 15, "the job to start")
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    backend.queue.wait(lambda: sleepers(token) == [], 3, "the job's processes to end")
    assert time.monotonic() - killed < 1.5
    backend.queue.wait(lambda: _watchdogs(backend.queue.home) == {}, 5, "the watchdog to exit")


def test_a_live_worker_ends_the_leftovers_of_a_dead_worker_on_its_host(backend: Backend) -> None:
    """The worker and its watchdog both SIGKILLed (the OOM killer, `kill -9` of both),
    with a lease long enough that recovery cannot be what ends them."""
    backend.store.set_config("lease_seconds", "60")
    token = unique_token()
    backend.cli("enqueue", f'{{"id": "orphan", "command": "sleep 30.{token}"}}')
    [victim] = backend.start(1)
    backend.queue.wait(lambda: len(sleepers(token)) == 1, 15, "the job to start")
    victim_id = next(w.id for w in backend.store.list_workers() if w.pid == victim)
    watchdog = _watchdogs(backend.queue.home)[victim_id]
    backend.start(1)
    os.kill(watchdog, signal.SIGKILL)
    os.kill(victim, signal.SIGKILL)
    backend.queue.wait(lambda: sleepers(token) == [], 5, "the live worker to end the leftovers")
    assert backend.job("orphan")["state"] == "processing", "recovered: the lease is 60 s"


def test_a_process_left_behind_never_writes_into_a_later_runs_output(backend: Backend) -> None:
    leak = "(sleep 1; echo LEAKED) &"
    # The pause lets `setsid` leave the job's process group before the job ends.
    backend.cli("enqueue", f'{{"id": "first", "command": "setsid sh -c \'{leak}\' & sleep 0.3"}}')
    backend.cli("enqueue", '{"id": "second", "command": "sleep 2; echo mine"}')
    backend.start(1)
    backend.queue.wait(lambda: backend.job("second")["state"] == "completed", 20, "both jobs")
    assert backend.cli("logs", "second") == "mine\n"


def test_a_job_with_a_huge_environment_costs_the_worker_little(backend: Backend) -> None:
    """100,000 variables: each set one by one took the worker ~30 s (glibc's setenv scans
    the whole environment); the job must see them all and its own two variables."""
    env = {f"K{n:05x}": "v" for n in range(100_000)}  # 900 KB, within the 1 MiB cap
    env["K00000"] = "first"
    spec = {"id": "big", "command": 'echo "$K00000 $K1869f $QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT"'}
    backend.queue.cli(
        "enqueue", "--file", "-", env=backend.env, input=json.dumps({**spec, "env": env})
    )
    backend.cli("enqueue", '{"id": "small", "command": "echo ${K00000-unset} $QUEUECTL_JOB_ID"}')
    backend.start(1)
    backend.queue.wait(lambda: backend.job("small")["state"] == "completed", 20, "both jobs")
    assert backend.cli("logs", "big") == "first v big 1\n"
    assert backend.cli("logs", "small") == "unset small\n", "the big job's variables leaked"
