"""The wall clock jumps (NTP steps it, a VM resumes, someone sets the date).

The system clock is never changed here. Instead, the store's clock is injected
(SqliteStore(clock=...)) and, for workers run in this process, time.time itself is
made to jump, so any worker code that measured a duration on the wall clock would
show it. What is covered:

- Durations on the worker side run on time.monotonic: job timeouts, the heartbeat
  (lease renewal) cadence, idle waiting. A jump of hours in either direction neither
  stretches nor shortens them (a static check keeps time.time out of queuectl/worker).
- Leases are wall-clock instants in the database. A forward jump past lease_seconds
  makes live workers look lost: their jobs are recovered ("worker lost") and run again,
  and the fence discards the late outcome, so execution stays at-least-once and no job
  sticks. A backward jump must not strand a dead worker's job until the clock catches
  up: a heartbeat more than a lease in the future counts as written now.
- run_at and backoff are wall-clock instants by design (a job scheduled for 09:00 runs
  at 09:00 by the clock): a forward jump makes waiting jobs due early; a backward jump
  of D delays them by D, jobs due "now" included. This is documented, not prevented.

PostgreSQL takes its times from the database server's clock, which can jump too: its
backward-jump case is tests/postgres/test_clock_step.py. Not covered: a jump on one
host but not another (SQLite is one host).
"""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import queuectl.worker
from queuectl.domain import JobState
from queuectl.store.sqlite import SqliteStore
from queuectl.worker.runtime import Worker
from tests.e2e.worker_helpers import sleepers, unique_token
from tests.helpers import SUCCESS, fail, live_worker_info, new_job, wait_until, worker_info
from tests.reliability.helpers import JumpClock

HOURS = 3600.0
LEASE = 30.0


@pytest.fixture
def clock() -> JumpClock:
    return JumpClock()


@pytest.fixture
def stores(tmp_path: Path, clock: JumpClock) -> Iterator[Callable[[], SqliteStore]]:
    opened: list[SqliteStore] = []

    def open_store() -> SqliteStore:
        store = SqliteStore(tmp_path / "queue.db", durable=False, clock=clock)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


# --- run_at and backoff: wall-clock instants ------------------------------------------------
def test_run_at_is_a_wall_clock_instant(
    stores: Callable[[], SqliteStore], clock: JumpClock
) -> None:
    store = stores()
    store.register_worker(worker_info("w"))
    store.enqueue([new_job("later", delay=60)])
    assert store.claim("w") is None
    clock.jump(2 * HOURS)  # a forward jump: the job is due early
    claim = store.claim("w")
    assert claim is not None and claim.job.id == "later"


def test_a_backward_jump_delays_due_jobs_by_the_jump(
    stores: Callable[[], SqliteStore], clock: JumpClock
) -> None:
    store = stores()
    store.register_worker(worker_info("w"))
    store.enqueue([new_job("now")])
    clock.jump(-HOURS)
    assert store.claim("w") is None, "documented: due jobs wait until the clock catches up"
    clock.jump(HOURS)
    assert store.claim("w") is not None


def test_backoff_is_fixed_from_the_store_clock_when_the_failure_is_recorded(
    stores: Callable[[], SqliteStore], clock: JumpClock
) -> None:
    store = stores()
    store.set_config("backoff_base", "10")
    store.register_worker(worker_info("w"))
    store.enqueue([new_job("flaky", max_retries=3)])
    claim = store.claim("w")
    assert claim is not None
    clock.jump(5 * HOURS)  # the run "took" five hours by the wall clock
    assert store.finish(claim, fail()).recorded
    job = store.get_job("flaky")
    assert job is not None and job.state is JobState.FAILED
    assert job.run_at - job.updated_at == timedelta(seconds=10)
    assert store.claim("w") is None
    clock.jump(11)
    assert store.claim("w") is not None


# --- leases --------------------------------------------------------------------------------
def test_a_forward_jump_past_the_lease_recovers_but_the_fence_holds(
    stores: Callable[[], SqliteStore], clock: JumpClock
) -> None:
    busy, rescuer = stores(), stores()
    busy.register_worker(live_worker_info("w-busy"))
    busy.enqueue([new_job("j", max_retries=3)])
    claim = busy.claim("w-busy")
    assert claim is not None
    clock.jump(2 * HOURS)
    [lost] = rescuer.recover_expired(LEASE, lambda job: None)
    assert (lost.job_id, lost.run_no) == ("j", 1)
    # The busy worker finishes after the jump: its outcome is fenced out.
    assert not busy.finish(claim, SUCCESS).recorded
    job = busy.get_job("j")
    assert job is not None
    assert (job.state, job.last_error, job.attempts) == (JobState.FAILED, "worker lost", 1)
    rescuer.register_worker(worker_info("w-rescuer"))
    clock.jump(60)  # past the backoff
    again = rescuer.claim("w-rescuer")
    assert again is not None and again.run_no == 2
    assert rescuer.finish(again, SUCCESS).recorded
    done = rescuer.get_job("j")
    assert done is not None and done.state is JobState.COMPLETED


def test_a_backward_jump_does_not_strand_a_dead_workers_job(
    stores: Callable[[], SqliteStore], clock: JumpClock
) -> None:
    doomed, rescuer = stores(), stores()
    doomed.register_worker(worker_info("w-doomed"))
    doomed.enqueue([new_job("j", max_retries=3)])
    assert doomed.claim("w-doomed") is not None
    doomed.heartbeat("w-doomed")  # its last heartbeat; then it dies
    clock.jump(-5 * HOURS)  # ... and the clock steps back

    rescuer.register_worker(worker_info("w-rescuer"))
    recovered_after = None
    for step in range(1, 200):  # the rescuer's heartbeat ticks, one second apart
        clock.jump(1)
        rescuer.heartbeat("w-rescuer")
        if rescuer.recover_expired(LEASE, lambda job: None):
            recovered_after = step
            break
    assert recovered_after is not None, "stranded until the clock catches up (5 hours)"
    assert recovered_after <= 2 * LEASE + 1
    job = rescuer.get_job("j")
    assert job is not None and job.last_error == "worker lost"


# --- worker-side durations: time.monotonic ----------------------------------------------------
class InProcessWorker:
    """A real Worker in this process, on a store whose clock jumps; time.time jumps too."""

    def __init__(self, tmp_path: Path, clock: JumpClock, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(time, "time", clock)
        monkeypatch.delenv("QUEUECTL_DB", raising=False)
        self.path = tmp_path / "queue.db"
        self.clock = clock
        self.store = SqliteStore(self.path, clock=clock)
        # A lease far longer than the jumps: a forward jump then cannot make the worker's
        # own lease look expired (that case is test_a_forward_jump_..._fence_holds).
        self.store.set_config("lease_seconds", "100000")
        self.store.set_config("poll_interval", "0.2")
        self.scratch = tmp_path / "run"
        self.worker: Worker | None = None

    def make_worker(self) -> Worker:
        """In the thread that will run it: a store's connection stays in its thread."""
        self.worker = Worker(
            lambda: SqliteStore(self.path, durable=False, clock=self.clock), "w-clock", self.scratch
        )
        return self.worker

    def heartbeat_at(self, store: SqliteStore | None = None) -> datetime | None:
        workers = [w for w in (store or self.store).list_workers() if w.id == "w-clock"]
        return workers[0].heartbeat_at if workers else None

    def wait_for_heartbeat_after(
        self, moment: datetime, store: SqliteStore | None = None, timeout: float = 3.0
    ) -> None:
        def renewed() -> bool:
            beat = self.heartbeat_at(store)
            return beat is not None and beat >= moment

        wait_until(renewed, timeout=timeout, what="a heartbeat after the jump")

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def in_process(
    tmp_path: Path, clock: JumpClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InProcessWorker]:
    harness = InProcessWorker(tmp_path, clock, monkeypatch)
    yield harness
    harness.close()


@pytest.mark.parametrize("jump", [5 * HOURS, -5 * HOURS], ids=["forward-5h", "back-5h"])
def test_a_job_timeout_and_the_heartbeat_ignore_wall_clock_jumps(
    in_process: InProcessWorker, jump: float
) -> None:
    token = unique_token()
    long_ago = datetime(2000, 1, 1, tzinfo=timezone.utc)  # due whatever the jumps
    in_process.store.enqueue(
        [new_job("slow", f"sleep 30.{token}", timeout=1.5, run_at=long_ago, max_retries=1)]
    )
    problems: list[str] = []

    def jump_during_the_run() -> None:
        reader = SqliteStore(in_process.path, clock=in_process.clock)  # this thread's own
        try:
            wait_until(lambda: sleepers(token), timeout=10, what="the job to start")
            in_process.clock.jump(jump)
            in_process.wait_for_heartbeat_after(reader.now(), reader)
        except Exception as exc:
            problems.append(repr(exc))
        finally:
            reader.close()

    jumper = threading.Thread(target=jump_during_the_run)
    jumper.start()
    worker = in_process.make_worker()
    began = time.monotonic()
    assert worker.run(burst=True) == 1
    worker.store.close()
    elapsed = time.monotonic() - began
    jumper.join()

    assert problems == []
    job = in_process.store.get_job("slow")
    assert job is not None
    assert (job.state, job.last_error) == (JobState.DEAD, "timed out after 1.5s")
    assert 1.4 <= elapsed < 8, elapsed
    assert sleepers(token) == []


@pytest.mark.parametrize("jump", [5 * HOURS, -5 * HOURS], ids=["forward-5h", "back-5h"])
def test_an_idle_worker_picks_up_a_new_job_promptly_after_a_jump(
    in_process: InProcessWorker, jump: float
) -> None:
    ready = threading.Event()
    crashed: list[BaseException] = []

    def run() -> None:
        worker = in_process.make_worker()
        ready.set()
        try:
            worker.run()
        except BaseException as exc:
            crashed.append(exc)
        finally:
            worker.store.close()

    runner = threading.Thread(target=run)
    runner.start()
    ready.wait(10)
    try:
        wait_until(in_process.heartbeat_at, timeout=10, what="the worker to register")
        in_process.clock.jump(jump)
        in_process.wait_for_heartbeat_after(in_process.store.now())
        began = time.monotonic()
        in_process.store.enqueue([new_job("fresh", "true")])

        def completed() -> bool:
            job = in_process.store.get_job("fresh")
            return job is not None and job.state is JobState.COMPLETED

        wait_until(completed, timeout=10, what="the new job to complete")
        assert time.monotonic() - began < 3
    finally:
        assert in_process.worker is not None
        in_process.worker.flags.stop.set()
        runner.join(timeout=15)
    assert not runner.is_alive()
    assert crashed == []


# --- a static guard ---------------------------------------------------------------------------
# Wall-clock reads allowed in the worker package: comparing with file mtimes (wall clock too).
_WALL_CLOCK_ALLOWED = {("launcher.py", "remove_old_logs"), ("scratch.py", "_older_than")}


def test_worker_code_measures_durations_on_the_monotonic_clock() -> None:
    found = []
    for path in sorted(Path(queuectl.worker.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("time", "now", "utcnow")
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("time", "datetime")
                    and (path.name, function.name) not in _WALL_CLOCK_ALLOWED
                ):
                    found.append(f"{path.name}:{node.lineno} in {function.name}")
    assert found == [], "wall-clock reads in worker code (durations must use time.monotonic)"
