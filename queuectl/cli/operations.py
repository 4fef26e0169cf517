"""`queuectl purge`, `backup` and `doctor`: keeping a long-running queue healthy."""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta

from queuectl.cli.context import open_cli_store
from queuectl.cli.output import print_json, print_table
from queuectl.domain import JobState
from queuectl.escape import escape_text
from queuectl.timeutil import humanize_age, parse_duration

# Jobs per transaction: each batch holds the write lock for a few milliseconds only.
PURGE_BATCH = 100
# Free pages given back per transaction afterwards, for the same reason.
RECLAIM_PAGES = 500


def purge(args: argparse.Namespace) -> int:
    states = [JobState(s) for s in (args.state or ["completed", "dead"])]
    age = parse_duration(args.older_than)
    store = open_cli_store(args)
    before = store.now() - timedelta(seconds=age)
    if args.dry_run:
        counts = store.purgeable_counts(states, before)
        detail = ", ".join(f"{state.value}: {n}" for state, n in counts.items())
        print(
            f"Would purge {sum(counts.values())} job(s) ({detail}) last updated before "
            f"{before.isoformat(timespec='seconds')}."
        )
        return 0
    total = 0
    started = time.monotonic()
    while True:
        deleted = store.purge(states, before, PURGE_BATCH)
        total += deleted
        if deleted < PURGE_BATCH:
            break
    while store.reclaim_space(max_pages=RECLAIM_PAGES):
        pass
    print(f"Purged {total} job(s) in {time.monotonic() - started:.1f}s.")
    return 0


def backup(args: argparse.Namespace) -> int:
    destination = os.path.abspath(args.path)
    store = open_cli_store(args)
    started = time.monotonic()
    store.backup(destination)
    size = os.path.getsize(destination)
    print(
        f"Backed up {escape_text(store.description)} to {escape_text(destination)} "
        f"({size / 1024 / 1024:.1f} MiB, {time.monotonic() - started:.1f}s)."
    )
    return 0


def doctor(args: argparse.Namespace) -> int:
    from queuectl.worker import procinfo
    from queuectl.worker.runtime import host_name

    store = open_cli_store(args)
    checks = store.diagnostics()
    rows = [[c.name, "ok" if c.ok else "PROBLEM", c.detail] for c in checks]
    advice = [f"{c.name}: {c.advice}" for c in checks if not c.ok and c.advice]

    lease = store.config().lease_seconds
    now = store.now()
    here = host_name()
    stale, gone = [], []
    for worker in store.list_workers():
        age = (now - worker.heartbeat_at).total_seconds()
        if worker.host == here and not procinfo.is_alive(worker.pid, worker.pid_start_time):
            gone.append(f"{worker.id} (pid {worker.pid})")
        elif age > lease:
            stale.append(f"{worker.id} on {worker.host} (silent {humanize_age(age)})")
    rows.append(
        [
            "workers",
            "ok" if not (stale or gone) else "PROBLEM",
            f"{len(store.list_workers())} registered",
        ]
    )
    if gone:
        advice.append(
            "workers whose process is gone: "
            + ", ".join(gone)
            + "; their jobs are recovered after lease_seconds by any live worker"
        )
    if stale:
        advice.append(
            "workers not heart-beating: "
            + ", ".join(stale)
            + "; start a worker so their jobs are recovered"
        )
    if args.json:
        checks_json = [{"name": n, "ok": status == "ok", "detail": d} for n, status, d in rows]
        print_json(
            {
                "database": store.description,
                "healthy": not advice,
                "checks": checks_json,
                "advice": advice,
            }
        )
        return 1 if advice else 0
    print(f"Database: {escape_text(store.description)}")
    print_table(("CHECK", "STATUS", "DETAIL"), rows)
    if advice:
        print()
        for line in advice:
            print(f"- {escape_text(line)}")  # worker ids and hosts as they registered
        return 1
    print("\nEverything looks healthy.")
    return 0
