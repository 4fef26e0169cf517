"""The domain: job states, jobs, runs, outcomes, workers. Plain values, no I/O."""

from __future__ import annotations

import enum
from datetime import datetime

from queuectl.records import NamedTuple
from queuectl.timeutil import format_timestamp

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see queuectl.records)
if TYPE_CHECKING:
    from typing import Any

MASKED = "***"


class JobState(str, enum.Enum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    DEAD = "dead"

    def __str__(self) -> str:
        return self.value


# States a worker may claim from (a failed job waits for its run_at).
RUNNABLE_STATES = (JobState.PENDING, JobState.FAILED)
FINAL_STATES = (JobState.COMPLETED, JobState.DEAD)


class Job(NamedTuple):
    id: str
    command: str
    state: JobState
    attempts: int
    max_retries: int
    priority: int
    run_at: datetime
    timeout: float
    cwd: str
    env: dict[str, str]
    created_at: datetime
    updated_at: datetime
    exit_code: int | None
    last_error: str | None
    worker_id: str | None
    runs_total: int

    @property
    def max_runs(self) -> int:
        """A job runs at most max(max_retries, 1) times: 3 means 3 runs."""
        return max(self.max_retries, 1)

    def to_json(self, *, show_env: bool = False) -> dict[str, Any]:
        env = dict(self.env) if show_env else {key: MASKED for key in self.env}
        return {
            "id": self.id,
            "command": self.command,
            "state": self.state.value,
            "attempts": self.attempts,
            "max_retries": self.max_retries,
            "priority": self.priority,
            "run_at": format_timestamp(self.run_at),
            "timeout": _number(self.timeout),
            "cwd": self.cwd,
            "env": env,
            "created_at": format_timestamp(self.created_at),
            "updated_at": format_timestamp(self.updated_at),
            "exit_code": self.exit_code,
            "last_error": self.last_error,
            "worker_id": self.worker_id,
        }


class Run(NamedTuple):
    """One attempt of a job, numbered 1.. over the job's whole life."""

    job_id: str
    n: int
    started_at: datetime
    finished_at: datetime | None
    exit_code: int | None
    signal: int | None
    error: str | None
    worker_id: str | None

    @property
    def duration(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "started_at": format_timestamp(self.started_at),
            "finished_at": format_timestamp(self.finished_at) if self.finished_at else None,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "error": self.error,
            "worker_id": self.worker_id,
        }


class OutcomeKind(str, enum.Enum):
    SUCCEEDED = "succeeded"
    EXITED = "exited"  # non-zero exit status
    SIGNALED = "signaled"  # killed by a signal it did not get from us
    TIMED_OUT = "timed_out"
    FAILED_TO_START = "failed_to_start"
    INTERRUPTED = "interrupted"  # forced stop of the worker
    WORKER_LOST = "worker_lost"


class Outcome(NamedTuple):
    """How one attempt ended. Only SUCCEEDED completes the job."""

    kind: OutcomeKind
    exit_code: int | None = None
    signal: int | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.kind is OutcomeKind.SUCCEEDED

    @classmethod
    def from_wait_status(cls, returncode: int) -> Outcome:
        """From subprocess's returncode: negative means killed by that signal."""
        if returncode == 0:
            return cls(OutcomeKind.SUCCEEDED, exit_code=0)
        if returncode < 0:
            return cls(
                OutcomeKind.SIGNALED, signal=-returncode, error=f"killed by signal {-returncode}"
            )
        return cls(OutcomeKind.EXITED, exit_code=returncode, error=f"exited with code {returncode}")


class Claim(NamedTuple):
    """A job a worker holds: `run_no` fences every later write for this run."""

    job: Job
    run_no: int
    started_at: datetime


class RunOutput(NamedTuple):
    """Captured output of one run: the kept tail, and how much was written in all."""

    n: int
    data: bytes
    total_bytes: int
    finished: bool


class FinishResult(NamedTuple):
    recorded: bool  # False: the lease was lost and another worker owns the job now
    next_claim: Claim | None = None


class FinishedRun(NamedTuple):
    """A run that ended and whose outcome the worker has yet to record (see Store.settle)."""

    claim: Claim
    outcome: Outcome
    output: bytes | None
    output_total: int | None
    started_at: datetime
    finished_at: datetime


class Settled(NamedTuple):
    claims: list[Claim]  # newly claimed, in the order to run them
    discarded: list[FinishedRun]  # lease lost: another worker owns these jobs now


class LostRun(enum.Enum):
    """What recovery learned of a lost worker's job (see Store.recover_expired)."""

    LOST = "lost"  # it may have run: a failed attempt, "worker lost"
    NOT_STARTED = "not_started"  # claimed but never started: runnable again, no attempt


class WorkerInfo(NamedTuple):
    id: str
    host: str
    pid: int
    pid_start_time: int  # kernel start time in clock ticks since boot; tells pid reuse
    started_at: datetime
    heartbeat_at: datetime
    job_id: str | None = None
    # Asked to stop (`worker stop`, a signal, the store's flag): finishing its job, if any.
    stopping: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "started_at": format_timestamp(self.started_at),
            "heartbeat_at": format_timestamp(self.heartbeat_at),
            "job_id": self.job_id,
            "stopping": self.stopping,
        }


class HeartbeatReply(str, enum.Enum):
    """What the store tells a worker that renews its lease."""

    CONTINUE = "continue"
    STOP = "stop"  # someone asked this worker to finish and exit (any host)
    UNKNOWN = "unknown"  # registration gone (recovered as lost): register again


class RecoveredJob(NamedTuple):
    """A job taken back from a worker whose lease expired."""

    job_id: str
    run_no: int
    worker_id: str | None
    worker_host: str | None
    worker_pid: int | None = None  # with its start time: is the lost worker still alive?
    worker_pid_start_time: int | None = None


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


class Diagnostic(NamedTuple):
    """One check of `queuectl doctor`."""

    name: str
    ok: bool
    detail: str
    advice: str  # what to do when not ok
