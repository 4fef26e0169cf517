"""`queuectl worker start|stop` and the hidden `worker run` each worker process executes."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path
from typing import Any

from queuectl.cli.context import live_workers, open_cli_store
from queuectl.domain import WorkerInfo
from queuectl.errors import InvalidInput, StoreUnavailable
from queuectl.escape import escape_lines, escape_text
from queuectl.paths import ensure_private_dir, queuectl_home, resolve_database
from queuectl.store import open_store
from queuectl.store.base import Store
from queuectl.worker import procinfo


def start(args: argparse.Namespace) -> int:
    from queuectl.worker import launcher

    location = resolve_database(args.db)
    store = open_cli_store(args)  # creates or migrates the schema once, before the workers
    if args.foreground:
        store.close()
        return launcher.run_foreground(location, args.count)
    report = launcher.start_background(store, location, args.count)
    if report.pids:
        print(f"Started {len(report.pids)} worker(s) in the background with PIDs: {report.pids}")
    if not report.failed:
        return 0
    lines = [f"Error: {len(report.failed)} of {args.count} worker(s) failed to start:"]
    for failure in report.failed:
        lines.append(f"  worker {failure.worker_id} (pid {failure.pid}) {failure.reason}; log:")
        lines.extend(f"    {line}" for line in escape_lines(failure.log_tail).splitlines())
    sys.stderr.write("\n".join(lines) + "\n")
    return 1


def stop(args: argparse.Namespace) -> int:
    from queuectl.worker import launcher

    if args.no_wait and args.timeout is not None:
        raise InvalidInput("--no-wait and --timeout exclude each other")
    location = resolve_database(args.db)
    store: Store | None = None
    try:
        store = open_cli_store(args)
    except StoreUnavailable as exc:
        if args.all_hosts:
            raise  # other hosts' workers are reached only through the database
        # This host's workers are found by their scratch directories; signals stop them.
        sys.stderr.write(
            f"Warning: {escape_text(str(exc))}; stopping this host's workers without it\n"
        )
    registered = store.list_workers() if store is not None else []
    database = store.description if store is not None else location.url
    local = launcher.local_live_workers(registered, scratch_root(), database)
    remote: list[WorkerInfo] = []
    if args.all_hosts and store is not None:
        local_ids = {w.id for w in local}
        remote = [w for w in live_workers(store, registered) if w.id not in local_ids]
    if not local and not remote:
        print("No workers running.")
        return 0
    # Run from inside a job (`queuectl worker stop` as a job's command): the worker
    # running it waits for the job, so waiting for that worker would never end.
    own = [w for w in local if w.pid in procinfo.ancestors(os.getpid())]
    if store is not None:
        # The flag in the store reaches every host's workers through their heartbeat.
        store.request_stop([w.id for w in local] + [w.id for w in remote])
    # A worker already stopping is not signalled again: a second stop signal would
    # interrupt the job it is finishing. Only --force does that.
    to_signal = local if args.force else [w for w in local if not w.stopping]
    signalled = launcher.signal_workers(to_signal, args.force)
    stopping = [w for w in local if w in signalled or (w.stopping and not args.force)]
    how = "Interrupting" if args.force else "Stopping"
    print(
        f"{how} {len(stopping) + len(remote)} worker(s) with PIDs: {[w.pid for w in stopping]}"
        + (f" and {len(remote)} on other hosts" if remote else ""),
        flush=True,
    )
    for worker in own:
        print(
            f"Not waiting for worker {worker.pid}: it runs this job, and stops once the job "
            "has ended.",
            flush=True,
        )
    if args.no_wait:
        return 0
    awaited = [w for w in stopping if w not in own]
    try:
        still_local = launcher.wait_for_exit(awaited, args.timeout)
        still_remote = _wait_remote(store, remote, args.timeout) if store is not None else []
    except KeyboardInterrupt:
        print("Stopped waiting; the workers are still stopping.", file=sys.stderr)
        return 130
    if still_local or still_remote:
        pids = [w.pid for w in still_local]
        sys.stderr.write(
            f"Error: {len(pids) + len(still_remote)} worker(s) still running "
            f"after {args.timeout:g}s: PIDs {pids}; they stop once their jobs end "
            "(`queuectl worker stop --force` interrupts the jobs)\n"
        )
        return 1
    print(f"Stopped {len(awaited) + len(remote)} worker(s).")
    return 0


def _wait_remote(store: Store, workers: list[WorkerInfo], timeout: float | None) -> list[str]:
    deadline = None if timeout is None else time.monotonic() + timeout
    ids = {w.id for w in workers}
    while ids:
        ids &= {w.id for w in store.list_workers()}
        if not ids or (deadline is not None and time.monotonic() >= deadline):
            break
        time.sleep(0.2)
    return sorted(ids)


LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 3


class _EscapingFormatter(logging.Formatter):
    """Log lines with control and bidi characters escaped: they quote job ids, hosts and errors.

    A traceback keeps its lines; only what is in them is escaped.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_text(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return escape_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return escape_lines(super().formatStack(stack_info))


def configure_logging(worker_id: str, log_file: str | None, max_bytes: int = LOG_MAX_BYTES) -> None:
    """Log to stderr, or to `log_file` rotated by size so months of work cannot fill the disk."""
    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    if log_file:
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=max_bytes, backupCount=LOG_BACKUPS
        )
    handler.setFormatter(_EscapingFormatter(f"%(asctime)s %(levelname)s [{worker_id}] %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def scratch_root() -> Path:
    """QUEUECTL_HOME/run: each worker's scratch directory is in it."""
    return Path(ensure_private_dir(os.path.join(ensure_private_dir(queuectl_home()), "run")))


def run_one(args: argparse.Namespace) -> int:
    """One worker process, in the foreground of whoever started it."""
    from queuectl.worker.launcher import new_worker_id
    from queuectl.worker.runtime import Worker

    worker_id = args.id or new_worker_id()
    configure_logging(worker_id, args.log_file)
    location = resolve_database(args.db)
    scratch = scratch_root()
    worker: Worker | None = None

    def stopping() -> bool:
        return worker is not None and worker.flags.stop.is_set()

    # A worker waits out a database outage of any length, unless it is asked to stop.
    worker = Worker(
        lambda: open_store(location, durable=False, reconnect_until=stopping), worker_id, scratch
    )
    worker.install_signal_handlers()
    worker.run(burst=args.burst)
    return 0
