"""Figures of the observability issue (7): `stats` on 1,000,000 jobs, and the dashboard's
page and API response times on 100,000 jobs.

    .venv/bin/python benchmarks/dashboard_measure.py [--jobs-stats N] [--jobs-dashboard N]
                                                    [--requests N]

Each database is built in a temporary directory with SQL (mostly completed jobs, 1,000
pending, 1% dead), and one run per finished job recorded through the `runs` table, so the
statistics triggers fill run_minutes and run_totals exactly as workers would (finish
times spread over the last 24 hours, 8 workers). Not a test: it prints figures.
Each figure is the median of N (default 20) requests or runs, [min-max] beside it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from queuectl.domain import JobState  # noqa: E402
from queuectl.store.sqlite import SqliteStore  # noqa: E402

QUEUECTL = str(Path(sys.executable).parent / "queuectl")


def build(path: Path, jobs: int) -> float:
    """Create a database of `jobs` jobs; return the seconds it took."""
    started = time.perf_counter()
    SqliteStore(path).close()  # schema and migrations
    now = int(time.time() * 1_000_000)
    day = 86_400 * 1_000_000
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    conn.execute(
        f"""
        WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {jobs})
        INSERT INTO jobs (id, command, state, attempts, max_retries, priority, run_at, timeout,
                          cwd, env, created_at, updated_at, exit_code, last_error, worker_id,
                          runs_total)
        SELECT printf('job-%07d', i), 'echo report-' || i || ' --verbose',
               CASE WHEN i > {jobs} - 1000 THEN 'pending'
                    WHEN i % 100 = 0 THEN 'dead' ELSE 'completed' END,
               CASE WHEN i > {jobs} - 1000 THEN 0 ELSE 1 END,
               CASE WHEN i % 100 = 0 THEN 0 ELSE 3 END,
               i % 3, {now} - {day} + i * ({day} / {jobs}), 0, '/tmp', '{{}}',
               {now} - {day} + i * ({day} / {jobs}), {now} - {day} + i * ({day} / {jobs}),
               CASE WHEN i > {jobs} - 1000 THEN NULL WHEN i % 100 = 0 THEN 1 ELSE 0 END,
               CASE WHEN i % 100 = 0 AND i <= {jobs} - 1000 THEN 'exited with code 1' END,
               CASE WHEN i > {jobs} - 1000 THEN NULL ELSE 'w-' || (i % 8) END,
               CASE WHEN i > {jobs} - 1000 THEN 0 ELSE 1 END
        FROM c
        """
    )
    conn.execute(
        """
        INSERT INTO runs (job_id, n, worker_id, started_at, finished_at, exit_code, error,
                          output, output_total)
        SELECT id, 1, worker_id, updated_at - abs(random() % 2000000), updated_at, exit_code,
               last_error, CAST('output of ' || id AS BLOB), 16
        FROM jobs WHERE state IN ('completed', 'dead')
        """
    )
    # Pending jobs have no count trigger (schema 3): counted here, as enqueue does.
    conn.execute(f"UPDATE job_counts SET n = n + {min(jobs, 1000)} WHERE state = 'pending'")
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def median_of(samples: list[float]) -> str:
    return (
        f"{statistics.median(samples) * 1000:8.1f} ms  "
        f"[{min(samples) * 1000:.1f}-{max(samples) * 1000:.1f}]"
    )


def timed(action: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def environment(home: Path) -> dict[str, str]:
    """QUEUECTL_HOME set; bytecode cached (outside the repository), as an installed
    queuectl would have it, even where PYTHONDONTWRITEBYTECODE is set."""
    env = {**os.environ, "QUEUECTL_HOME": str(home)}
    env.pop("QUEUECTL_DB", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault(
        "PYTHONPYCACHEPREFIX",
        os.path.join(tempfile.gettempdir(), f"queuectl-bench-pycache-{os.getuid()}"),
    )
    return env


def cli(home: Path, *args: str) -> Callable[[], object]:
    env = environment(home)

    def run() -> object:
        return subprocess.run([QUEUECTL, *args], env=env, check=True, stdout=subprocess.DEVNULL)

    return run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure_stats(jobs: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        home.mkdir(mode=0o700)
        seconds = build(home / "queue.db", jobs)
        print(f"\n`stats` on {jobs:,} jobs (database built in {seconds:.0f} s)")
        store = SqliteStore(home / "queue.db")
        rows = [
            ("store.stats(1h), in process", lambda: store.stats(3600)),
            ("store.stats(7d), in process", lambda: store.stats(7 * 86400)),
            ("store.run_totals()", store.run_totals),
            ("store.oldest_pending_age()", store.oldest_pending_age),
            ("store.search_jobs(limit=50)", lambda: store.search_jobs(limit=50)),
            ("search_jobs(state=dead)", lambda: store.search_jobs(JobState.DEAD, limit=50)),
            ("search_jobs(text='report-99999')", lambda: store.search_jobs(text="report-99999")),
            ("search_jobs(text='no such text')", lambda: store.search_jobs(text="no such text")),
            ("queuectl stats (process wall time)", cli(home, "stats")),
            ("queuectl stats --json", cli(home, "stats", "--json")),
            ("queuectl stats --since 7d", cli(home, "stats", "--since", "7d")),
            (
                "python3 -c pass (baseline)",
                lambda: subprocess.run([sys.executable, "-c", "pass"], env=environment(home)),
            ),
            ("queuectl status (for comparison)", cli(home, "status")),
        ]
        for label, action in rows:
            count = runs if "text=" not in label else max(3, runs // 4)
            print(f"  {label:38} {median_of(timed(action, count))}")
        store.close()


def measure_dashboard(jobs: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        home.mkdir(mode=0o700)
        seconds = build(home / "queue.db", jobs)
        port = free_port()
        env = environment(home)
        server = subprocess.Popen(
            [QUEUECTL, "dashboard", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(base + "/api/workers", timeout=1).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            print(
                f"\nDashboard on {jobs:,} jobs (database built in {seconds:.0f} s), "
                f"median of {runs} requests, one connection each"
            )
            for path in (
                "/",
                "/api/jobs?limit=50",
                "/api/jobs?state=dead&limit=50",
                "/api/jobs?limit=50&offset=50000",
                "/api/jobs?q=report-4242&limit=50",
                "/api/jobs/job-0004242",
                "/api/stats",
                "/api/workers",
                "/metrics",
            ):

                def get(path: str = path) -> object:
                    return urllib.request.urlopen(base + path, timeout=30).read()

                get()  # warm this thread's store and caches
                print(f"  GET {path:34} {median_of(timed(get, runs))}")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs-stats", type=int, default=1_000_000)
    parser.add_argument("--jobs-dashboard", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    print(
        f"queuectl {ROOT.name}: {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at start"
    )
    measure_dashboard(args.jobs_dashboard, args.requests)
    measure_stats(args.jobs_stats, args.requests)


if __name__ == "__main__":
    main()
