"""14. The dashboard's response times on a big history (SQLite).

`queuectl dashboard` serves section 13's database (built the same way, with
fewer jobs); each path is fetched once to warm the server's store and caches,
then timed, one connection per request, with the token in an Authorization
header as a script would send it. Median of `requests` requests per run.
"""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import urllib.request

from _backends import QUEUECTL, Backend, Database
from _util import Plan, Row, number, progress, summary, wait_until

from sections.stats import build_history, median_seconds

PATHS = (
    "/",
    "/api/jobs?limit=50",
    "/api/jobs?state=dead&limit=50",
    "/api/jobs?limit=50&offset=50000",
    "/api/jobs?q=report-4242&limit=50",
    "/api/jobs/job-0004242",
    "/api/stats",
    "/api/workers",
    "/metrics",
)
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Dashboard:
    """`queuectl dashboard` on a free loopback port, with a token of our own."""

    def __init__(self, db: Database) -> None:
        self.token = secrets.token_urlsafe(24)
        self.base = f"http://127.0.0.1:{free_port()}"
        env = db.installed_env()
        env["QUEUECTL_DASHBOARD_TOKEN"] = self.token  # kept out of `ps`
        self.process = subprocess.Popen(
            [QUEUECTL, "dashboard", "--port", self.base.rsplit(":", 1)[1]],
            env=env,
            cwd=db.home,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def get(self, path: str) -> bytes:
        request = urllib.request.Request(
            self.base + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body: bytes = response.read()
        return body

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"queuectl dashboard exited {self.process.returncode}")
        try:
            self.get("/api/workers")
        except OSError:
            return False
        return True

    def wait_ready(self) -> None:
        wait_until(self._answers, START_TIMEOUT, "the dashboard to answer")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def measure(plan: Plan, backend: Backend) -> list[Row]:
    figures: dict[str, list[float]] = {path: [] for path in PATHS}
    with backend.fresh() as db:
        progress(f"14. dashboard {backend.name}: building {number(plan.dashboard_jobs)} jobs")
        build_history(db, plan.dashboard_jobs)
        dashboard = Dashboard(db)
        try:
            dashboard.wait_ready()
            for path in PATHS:
                dashboard.get(path)  # warm this path's queries and the server's caches
            for run in range(plan.runs):
                progress(f"14. dashboard {backend.name} run {run + 1}/{plan.runs}")
                for path in PATHS:

                    def fetch(path: str = path) -> bytes:
                        return dashboard.get(path)

                    figures[path].append(1000 * median_seconds(fetch, plan.requests))
        finally:
            dashboard.stop()
    jobs = number(plan.dashboard_jobs)
    return [
        Row("14", f"14. GET {path}, {jobs} jobs", summary(values, "ms", 1))
        for path, values in figures.items()
    ]
