"""Commands that read jobs: init-db, list, show, status, logs, dlq."""

from __future__ import annotations

import argparse

from queuectl.cli.context import live_workers, open_cli_store
from queuectl.cli.output import print_jobs, print_json, print_table, short_time, shorten
from queuectl.domain import JobState
from queuectl.errors import InvalidInput, JobNotFound
from queuectl.escape import escape_text
from queuectl.store.base import Store
from queuectl.timeutil import humanize_age


def init_db(args: argparse.Namespace) -> int:
    store = open_cli_store(args)
    print(f"Database ready at {escape_text(store.description)}")
    return 0


def status(args: argparse.Namespace) -> int:
    store = open_cli_store(args)
    if args.watch is None:
        return print_status(store, args.json)
    from queuectl.cli.watch import watch

    return watch(
        lambda: print_status(store, args.json), args.watch, "queuectl status", plain=args.json
    )


def print_status(store: Store, as_json: bool) -> int:
    counts = store.counts()
    now = store.now()
    workers = live_workers(store)
    if as_json:
        jobs = {state.value: counts[state] for state in JobState}
        jobs["total"] = sum(counts.values())
        print_json({"jobs": jobs, "workers": [w.to_json() for w in workers]})
        return 0
    print("Jobs:")
    print_table(
        ("STATE", "COUNT"),
        [[state.value, str(counts[state])] for state in JobState]
        + [["total", str(sum(counts.values()))]],
    )
    print()
    if not workers:
        print("Workers: none running")
        return 0
    print(f"Workers: {len(workers)}")
    print_table(
        ("WORKER", "HOST", "PID", "JOB", "HEARTBEAT", "STARTED"),
        [
            [
                w.id,
                w.host,
                str(w.pid),
                w.job_id or "-",
                humanize_age((now - w.heartbeat_at).total_seconds()) + " ago",
                short_time(w.started_at),
            ]
            for w in workers
        ],
    )
    return 0


def list_jobs(args: argparse.Namespace) -> int:
    store = open_cli_store(args)
    state = JobState(args.state) if args.state else None
    jobs = store.list_jobs(state, args.limit)
    if args.json:
        print_json([job.to_json() for job in jobs])
    else:
        print_jobs(jobs, store.now())
    return 0


def show(args: argparse.Namespace) -> int:
    store = open_cli_store(args)
    job = store.get_job(args.id)
    if job is None:
        raise JobNotFound(args.id)
    runs = store.get_runs(job.id)
    if args.json:
        document = job.to_json(show_env=args.show_env)
        document["runs"] = [run.to_json() for run in runs]
        print_json(document)
        return 0
    details = job.to_json(show_env=args.show_env)
    for key in (
        "id",
        "state",
        "attempts",
        "max_retries",
        "priority",
        "run_at",
        "timeout",
        "cwd",
        "created_at",
        "updated_at",
        "exit_code",
        "last_error",
        "worker_id",
    ):
        value = details[key]
        print(f"{key + ':':<13} {escape_text(str(value)) if value is not None else '-'}")
    env = details["env"]
    pairs = " ".join(f"{k}={v}" for k, v in env.items())
    print(f"{'env:':<13} {escape_text(pairs) if env else '-'}")
    print(f"{'command:':<13} {escape_text(job.command)}")
    print()
    if not runs:
        print("No attempts yet.")
        return 0
    rows = []
    for run in runs:
        duration = run.duration
        if run.exit_code is not None:
            result = f"exit {run.exit_code}"
        elif run.signal is not None:
            result = f"signal {run.signal}"
        else:
            result = "running" if run.finished_at is None else "-"
        rows.append(
            [
                str(run.n),
                short_time(run.started_at),
                short_time(run.finished_at) if run.finished_at else "-",
                f"{duration:.3f}s" if duration is not None else "-",
                result,
                run.worker_id or "-",
                shorten(run.error or "-", 50),
            ]
        )
    print_table(("RUN", "STARTED", "FINISHED", "DURATION", "RESULT", "WORKER", "ERROR"), rows)
    if not args.no_output:
        from queuectl.cli.logs import print_tail

        print()
        print_tail(store, job.id)
    return 0


def logs(args: argparse.Namespace) -> int:
    from queuectl.cli.logs import show_logs

    return show_logs(open_cli_store(args), args.id, args.attempt, args.follow, args.raw)


def dlq_list(args: argparse.Namespace) -> int:
    store = open_cli_store(args)
    jobs = store.list_jobs(JobState.DEAD)
    if args.json:
        print_json([job.to_json() for job in jobs])
    else:
        print_jobs(jobs, store.now())
    return 0


def dlq_retry(args: argparse.Namespace) -> int:
    if args.all == bool(args.ids):
        raise InvalidInput("give job ids or --all (not both)")
    store = open_cli_store(args)
    if args.all:
        ids = store.retry_all_dead()
    else:
        ids = list(dict.fromkeys(args.ids))
        store.retry_dead(ids)
    if args.json:
        print_json(ids)
    elif args.all:
        print(f"{len(ids)} job(s) moved from the DLQ to pending.")
    else:
        for job_id in ids:
            print(f"Job {job_id!r} moved from the DLQ to pending.")
    return 0
