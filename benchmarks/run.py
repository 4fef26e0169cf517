"""Print every benchmark figure of queuectl in one table, measured in one run.

    .venv/bin/python benchmarks/run.py [--quick] [--runs N] [--backend sqlite|postgresql|both]
                                       [--pg-url URL] [--only 1,2,...]

Each figure is the median of several runs ([min-max] across runs beside it).
Not a test: nothing here passes or fails. Everything runs in temporary
QUEUECTL_HOME directories (and, on PostgreSQL, in databases created and
dropped here); workers are stopped even on Ctrl-C. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import FrameType

# The repository root, last: `tests.helpers` holds the one lookup of the queuectl
# executable that tests and benchmarks share; an installed queuectl still comes first.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from _backends import QUEUECTL, Backend, PostgresBackend, SqliteBackend
from _util import Plan, Row, Table, progress
from sections import (
    capture,
    ceiling,
    claims,
    dashboard,
    end_to_end,
    enqueue,
    memory,
    pickup,
    purge,
    recovery,
    scale,
    schedule,
    stats,
    wakeups,
)

import queuectl

Section = Callable[[Plan, Backend], list[Row]]

BOTH = frozenset({"sqlite", "postgresql"})
SQLITE = frozenset({"sqlite"})
POSTGRESQL = frozenset({"postgresql"})

# (number, title, measure, the backends it runs on); section 1 involves no queue.
SECTIONS: list[tuple[str, str, Section, frozenset[str]]] = [
    ("2", "2. end-to-end", end_to_end.measure, BOTH),
    ("3", "3. pick-up latency", pickup.measure, BOTH),
    ("4", "4. enqueue", enqueue.measure, SQLITE),
    ("5", "5. scale", scale.measure, BOTH),
    ("6", "6. worker memory", memory.measure, SQLITE),
    ("7", "7. claim latency", claims.measure, BOTH),
    ("8", "8. PostgreSQL wake-ups (PostgreSQL only)", wakeups.measure, POSTGRESQL),
    ("9", "9. recovery after SIGKILL", recovery.measure, BOTH),
    ("10", "10. scheduled jobs' lateness", schedule.measure, BOTH),
    ("11", "11. output capture per job", capture.measure, BOTH),
    ("12", "12. purge under load", purge.measure, BOTH),
    ("13", "13. stats on a big history (SQLite only)", stats.measure, SQLITE),
    ("14", "14. dashboard response times (SQLite only)", dashboard.measure, SQLITE),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 run, smaller sizes")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3; --quick: 1)")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql", "both"), default="sqlite", help="store(s)"
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("QUEUECTL_TEST_PG_URL"),
        help="PostgreSQL server URL (default $QUEUECTL_TEST_PG_URL); a database is created "
        "on it for each measurement and dropped after",
    )
    parser.add_argument("--only", help="comma-separated section numbers, e.g. 1,2")
    return parser.parse_args()


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _git_revision() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_header(backends: list[Backend], plan: Plan) -> list[str]:
    cpuinfo = _read("/proc/cpuinfo")
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or "unknown CPU",
    )
    mem_kib = next(
        (
            int(line.split()[1])
            for line in _read("/proc/meminfo").splitlines()
            if "MemTotal" in line
        ),
        0,
    )
    servers = [b.version for b in backends if isinstance(b, PostgresBackend) and b.version]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return [
        f"queuectl benchmarks, {now}",
        f"machine: {model}, {os.cpu_count()} cores, {mem_kib / 1024**2:.1f} GiB RAM, "
        f"Linux {platform.release()}",
        f"software: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
        + "".join(f", {server}" for server in servers)
        + f", queuectl {queuectl.__version__} ({_git_revision()}), {QUEUECTL}",
        f"load average at start: {_load()}",
        f"runs per figure: {plan.runs} (median shown, [min-max] across runs beside it)",
    ]


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so every `finally` stops its workers and removes its files


def measure_all(
    plan: Plan, backends: list[Backend], only: set[str] | None, table: Table, notes: list[str]
) -> None:
    """Run the sections into `table`; a failed section leaves its error there and in `notes`."""
    if only is None or "1" in only:
        rows = _guarded("1", partial(ceiling.measure, plan), notes)
        for backend in backends:  # no queue involved: the same figures for every column
            _record(table, backend.name, "1", "1. ceiling", rows)
    for number, title, measure, runs_on in SECTIONS:
        if only is not None and number not in only:
            continue
        for backend in backends:
            if backend.name not in runs_on:
                table.fill(backend.name, number, title, "-")
                continue
            if backend.unavailable is not None:
                table.fill(backend.name, number, title, backend.unavailable)
                continue
            rows = _guarded(number, partial(measure, plan, backend), notes)
            _record(table, backend.name, number, title, rows)


def _guarded(number: str, measure: Callable[[], list[Row]], notes: list[str]) -> list[Row] | str:
    """The section's rows, or the text of its failure: the other sections still run."""
    try:
        return measure()
    except Exception as exc:
        progress(f"section {number} failed:\n{traceback.format_exc()}")
        notes.append(f"section {number} failed: {type(exc).__name__}: {exc}")
        return f"error: {type(exc).__name__} (see below)"


def _record(table: Table, column: str, number: str, title: str, rows: list[Row] | str) -> None:
    if isinstance(rows, str):
        table.fill(column, number, title, rows)
    else:
        table.add(column, rows)


def main() -> int:
    args = parse_args()
    plan = Plan.quick() if args.quick else Plan.full()
    if args.runs:
        plan = dataclasses.replace(plan, runs=args.runs)
    only = set(args.only.split(",")) if args.only else None
    backends: list[Backend] = []
    if args.backend in ("sqlite", "both"):
        backends.append(SqliteBackend())
    if args.backend in ("postgresql", "both"):
        backends.append(PostgresBackend(args.pg_url))
    # Explicitly: a shell starts background jobs with SIGINT ignored, and Python keeps that.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    header = machine_header(backends, plan)
    table = Table([b.name for b in backends])
    notes: list[str] = []
    interrupted = False
    try:
        measure_all(plan, backends, only, table, notes)
    except KeyboardInterrupt:
        interrupted = True
        notes.append("interrupted: the figures above are those measured before the interruption")
    print("\n".join(header))
    print(f"load average at end: {_load()}")
    print()
    print(table.render())
    print()
    print(
        "-: not measured on this backend (sections 4, 6, 13, 14 and the CLI rows of 5 are "
        "SQLite only; 8 is PostgreSQL only)"
    )
    if notes:
        print("\n".join(notes))
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
