"""PostgreSQL beside SQLite: jobs/s of trivial jobs, and pick-up latency with LISTEN/NOTIFY
versus polling, all measured in one run and printed as one table.

    .venv/bin/python benchmarks/pg_measure.py --pg-url postgresql://postgres@127.0.0.1:5432/postgres
        [--runs 3] [--jobs 2000] [--workers 4] [--pickup-jobs 100] [--pickup-rate 10]
        [--poll-interval 1]

Throughput: JOBS bulk-enqueued `true` jobs drained by `queuectl worker start --count
WORKERS`, on a fresh SQLite file and on a fresh PostgreSQL database (created on the
--pg-url server, dropped after); jobs/s from the first run's start to the last run's
finish as the store recorded them, and by the wall clock from `worker start`. Every
job must end completed with exactly one run (duplicates / lost).

Pick-up latency: 2 idle workers; jobs enqueued one by one through the library at a
steady rate; each latency runs from the return of `store.enqueue()` to the moment the
job's command reads the clock (benchmarks/sections/pickup.py). On PostgreSQL once with
LISTEN/NOTIFY (the default) and once with QUEUECTL_PG_LISTEN=0, where idle workers
poll every poll_interval; SQLite for reference.

Each figure is the median over the runs, [min-max] beside it. Not a test. Progress
goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import sqlite3
import sys
import time
from collections.abc import Sequence
from types import FrameType

from _backends import Backend, Database, PostgresBackend, SqliteBackend
from _util import number, percentile, progress, summary
from sections.end_to_end import Drain, drain
from sections.pickup import IDLE_WORKERS, SETTLE_SECONDS, pickup_latencies, spawn_floor

import queuectl

SQLITE = "SQLite"
LISTEN = "PostgreSQL LISTEN/NOTIFY"
POLLING = "PostgreSQL polling"
COLUMNS = (SQLITE, LISTEN, POLLING)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("QUEUECTL_TEST_PG_URL"),
        help="PostgreSQL server URL (default $QUEUECTL_TEST_PG_URL); a database is created "
        "on it for each measurement and dropped after",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per drain (default 2000)")
    parser.add_argument("--workers", type=int, default=4, help="workers per drain (default 4)")
    parser.add_argument("--pickup-jobs", type=int, default=100, help="jobs per pick-up run")
    parser.add_argument("--pickup-rate", type=float, default=10.0, help="pick-up jobs per second")
    parser.add_argument(
        "--poll-interval", type=float, default=1.0, help="poll_interval setting (default 1)"
    )
    return parser.parse_args()


class Figures:
    """Per-run values for each (row, column); rendered as medians with their range."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, list[float]]] = {}
        self.texts: dict[str, dict[str, str]] = {}

    def add(self, row: str, column: str, value: float) -> None:
        self.values.setdefault(row, {}).setdefault(column, []).append(value)
        self.texts.setdefault(row, {})

    def text(self, row: str, column: str, value: str) -> None:
        self.texts.setdefault(row, {})[column] = value
        self.values.setdefault(row, {})

    def render(self, units: dict[str, tuple[str, int]]) -> str:
        header = ["figure", *COLUMNS]
        body = []
        for row in self.values:
            unit, decimals = units.get(row, ("", 0))
            cells = []
            for column in COLUMNS:
                if column in self.texts[row]:
                    cells.append(self.texts[row][column])
                elif column in self.values[row]:
                    cells.append(summary(self.values[row][column], unit, decimals))
                else:
                    cells.append("-")
            body.append([row, *cells])
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

        return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])


def connections_of(db: Database) -> int:
    """Sessions on this PostgreSQL database, this script's own one excepted."""
    import psycopg

    assert db.location.dsn is not None
    with psycopg.connect(db.location.dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


def measure_pickup(
    backend: Backend,
    column: str,
    args: argparse.Namespace,
    figures: Figures,
    labels: dict[str, str],
) -> None:
    with backend.fresh() as db:
        if column == POLLING:
            db.env["QUEUECTL_PG_LISTEN"] = "0"
        db.cli("config", "set", "poll_interval", f"{args.poll_interval:g}")
        db.start_workers(IDLE_WORKERS)
        time.sleep(SETTLE_SECONDS)  # both idle and (with LISTEN) listening
        if column != SQLITE:
            figures.add(labels["connections"], column, connections_of(db) / IDLE_WORKERS)
        latencies, never = pickup_latencies(db, args.pickup_jobs, args.pickup_rate)
        db.stop_workers()
    if latencies:
        figures.add(labels["p50"], column, percentile(latencies, 0.50))
        figures.add(labels["p99"], column, percentile(latencies, 0.99))
        figures.add(labels["max"], column, max(latencies))
    figures.add(labels["never"], column, never)


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    sqlite_backend = SqliteBackend()
    pg_backend = PostgresBackend(args.pg_url)
    if pg_backend.unavailable:
        print(f"Error: PostgreSQL {pg_backend.unavailable}", file=sys.stderr)
        return 2

    drain_label = f"{number(args.jobs)} `true` jobs, {args.workers} workers"
    pickup_label = f"{args.pickup_jobs} jobs at {args.pickup_rate:g}/s, {IDLE_WORKERS} idle workers"
    labels = {
        "rate": f"jobs/s, first start to last finish ({drain_label})",
        "wall": "jobs/s, wall clock from `worker start`",
        "bad": "duplicates / lost",
        "p50": f"pick-up p50 ({pickup_label})",
        "p99": "pick-up p99",
        "max": "pick-up max",
        "never": "pick-up: jobs never started",
        "connections": "connections per idle worker",
        "floor": "floor: Popen to the command's start, no queue",
    }
    units = {
        labels["rate"]: ("/s", 0),
        labels["wall"]: ("/s", 0),
        labels["p50"]: ("ms", 1),
        labels["p99"]: ("ms", 1),
        labels["max"]: ("ms", 1),
        labels["connections"]: ("", 0),
        labels["floor"]: ("ms", 1),
    }
    figures = Figures()
    for label in labels.values():  # row order
        figures.values.setdefault(label, {})
        figures.texts.setdefault(label, {})
    started_load = _load()
    bad: dict[str, list[Drain]] = {SQLITE: [], LISTEN: []}
    interrupted = False
    try:
        for run in range(1, args.runs + 1):
            for column, backend in ((SQLITE, sqlite_backend), (LISTEN, pg_backend)):
                progress(f"drain {column} run {run}/{args.runs}")
                with backend.fresh() as db:
                    result = drain(db, args.jobs, args.workers)
                figures.add(labels["rate"], column, result.rate)
                figures.add(labels["wall"], column, result.wall_rate)
                bad[column].append(result)
            for column, backend in (
                (SQLITE, sqlite_backend),
                (LISTEN, pg_backend),
                (POLLING, pg_backend),
            ):
                progress(f"pick-up {column} run {run}/{args.runs}")
                measure_pickup(backend, column, args, figures, labels)
            floor = spawn_floor()
            for column in COLUMNS:
                figures.add(labels["floor"], column, floor)
    except KeyboardInterrupt:
        interrupted = True
    for column, results in bad.items():
        if results:
            duplicates = sum(r.duplicates for r in results)
            lost = sum(r.lost for r in results)
            figures.text(labels["bad"], column, f"{duplicates} / {lost}")

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    print(f"queuectl {queuectl.__version__}: PostgreSQL beside SQLite, {now}")
    print(
        f"machine: {os.cpu_count()} cores, Linux {platform.release()}, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, {pg_backend.version}"
    )
    print(f"load average at start: {started_load}; at end: {_load()}")
    print(
        f"runs: {args.runs} (median, [min-max] across runs); poll_interval "
        f"{args.poll_interval:g} s in the pick-up runs"
    )
    print()
    print(figures.render(units))
    if interrupted:
        print("\ninterrupted: the figures are those measured before the interruption")
    return 130 if interrupted else 0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so every `finally` stops its workers and drops its database


if __name__ == "__main__":
    sys.exit(main())
