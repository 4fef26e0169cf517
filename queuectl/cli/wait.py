"""`queuectl wait ID... | --all`: block until jobs are final, and say which did not complete."""

from __future__ import annotations

import argparse
import sys
import time

from queuectl.cli.context import live_workers, open_cli_store
from queuectl.cli.output import print_json
from queuectl.domain import FINAL_STATES, JobState
from queuectl.errors import InvalidInput
from queuectl.escape import escape_text
from queuectl.store.base import Store

# The longest sleep between checks; the store's change check ends it early.
_POLL_SECONDS = 0.5
# Ids named in the timeout message (`wait --all` may wait for thousands).
_NAMED_AT_MOST = 10
NO_WORKER = "no worker is running for this database"


def wait(args: argparse.Namespace) -> int:
    """Exit 0 if every job completed, 1 if one is dead or unknown, 124 on timeout."""
    if args.all == bool(args.ids):
        raise InvalidInput("give job ids or --all (not both)")
    store = open_cli_store(args)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    # --all: a snapshot, so jobs enqueued from now on (by jobs, or by cron) cannot keep it waiting.
    ids = store.unfinished_job_ids() if args.all else list(dict.fromkeys(args.ids))
    states: dict[str, JobState | None] = {}  # None: no such job
    waiting = ids
    warned = False
    while True:
        found = store.job_states(waiting)
        for job_id in waiting:
            state = states[job_id] = found.get(job_id)
            if state is None or state is JobState.DEAD:
                _name_failure(store, job_id, state)
        waiting = [job_id for job_id in waiting if states[job_id] not in (None, *FINAL_STATES)]
        if not waiting:
            break
        if not warned and not live_workers(store):
            warned = True
            sys.stderr.write(f"Warning: {NO_WORKER}; start one with queuectl worker start\n")
        if deadline is not None and time.monotonic() >= deadline:
            _report(args.json, ids, states, timed_out=True)
            _timed_out(store, waiting)
            return 124
        pause = _POLL_SECONDS
        if deadline is not None:
            pause = max(0.0, min(pause, deadline - time.monotonic()))
        store.wait_for_jobs(pause, lambda: False)
    _report(args.json, ids, states, timed_out=False)
    failed = sum(1 for job_id in ids if states[job_id] is not JobState.COMPLETED)
    if failed:
        sys.stderr.write(f"Error: {failed} of {len(ids)} job(s) did not complete\n")
        return 1
    return 0


def _name_failure(store: Store, job_id: str, state: JobState | None) -> None:
    """One stderr line for a job that ended without completing, as soon as it is seen."""
    if state is None:
        sys.stderr.write(f"job {escape_text(job_id)}: not found\n")
        return
    job = store.get_job(job_id)
    error = job.last_error if job is not None else None
    detail = f" (last error: {error})" if error else ""
    sys.stderr.write(f"job {escape_text(job_id)}: {state.value}{escape_text(detail)}\n")


def _report(
    as_json: bool, ids: list[str], states: dict[str, JobState | None], timed_out: bool
) -> None:
    """With --json: each job's state at the end (null: no such job), in the order given."""
    if not as_json:
        return
    jobs: dict[str, str | None] = {}
    for job_id in ids:
        state = states[job_id]
        jobs[job_id] = None if state is None else state.value
    print_json({"jobs": jobs, "timed_out": timed_out})


def _timed_out(store: Store, waiting: list[str]) -> None:
    named = ", ".join(escape_text(job_id) for job_id in waiting[:_NAMED_AT_MOST])
    if len(waiting) > _NAMED_AT_MOST:
        named += f" and {len(waiting) - _NAMED_AT_MOST} more"
    count = len(live_workers(store))
    workers = NO_WORKER if count == 0 else f"{count} worker{'s' if count > 1 else ''} running"
    sys.stderr.write(f"Error: timed out waiting for {len(waiting)} job(s): {named}; {workers}\n")
