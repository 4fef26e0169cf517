"""Workers on a PostgreSQL server that has too few connections for them.

A role with a CONNECTION LIMIT, owning a database of its own, stands for a server
whose max_connections is nearly used up (the server's own setting stays as it is).
Skipped without QUEUECTL_TEST_PG_URL.
"""

from __future__ import annotations

import os
import re
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.worker_helpers import Queue, is_running, processes_of_home
from tests.stores import PG_URL_VARIABLE, pg_test_url, temporary_database

_FAILED_RE = re.compile(r"worker (w-[0-9a-f]+) \(pid (\d+)\) ")


def _limited_url(admin_url: str, limit: int) -> Iterator[str]:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict

    name = (
        f"{conninfo_to_dict(admin_url).get('dbname') or 'queuectl'}_limited_{uuid.uuid4().hex[:8]}"
    )
    role = sql.Identifier(name)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT {}").format(role, sql.Literal(limit))
        )
    parts = urllib.parse.urlsplit(admin_url)
    host = parts.netloc.rpartition("@")[2]
    try:
        with temporary_database(admin_url, name, owner=name):
            yield urllib.parse.urlunsplit(parts._replace(netloc=f"{name}@{host}", path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))


@pytest.fixture
def limited(request: pytest.FixtureRequest, queuectl_home: Path, tmp_path: Path) -> Iterator[Queue]:
    """A queue whose database user may hold `request.param` connections at once."""
    url = pg_test_url("PostgreSQL connection limit tests")
    for db_url in _limited_url(url, request.param):
        queue = LimitedQueue(queuectl_home, tmp_path / "files", db_url)
        try:
            queue.configure(lease_seconds=2, poll_interval=0.2)
            yield queue
        finally:
            queue.cleanup()


class LimitedQueue(Queue):
    def __init__(self, home: Path, files: Path, db_url: str) -> None:
        home.mkdir(mode=0o700)
        super().__init__(home, files)
        self.db_url = db_url

    def raise_limit(self) -> None:
        import psycopg
        from psycopg import sql

        role = urllib.parse.urlsplit(self.db_url).username
        with psycopg.connect(os.environ[PG_URL_VARIABLE], autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 20").format(sql.Identifier(role)))

    def cli(self, *args: str, env: dict[str, str | None] | None = None, **kwargs: object):  # type: ignore[no-untyped-def, override]
        return super().cli(*args, env={"QUEUECTL_DB": self.db_url, **(env or {})}, **kwargs)  # type: ignore[arg-type]


def _started_and_failed(stdout: str, stderr: str) -> tuple[list[int], dict[str, int]]:
    match = re.search(r"PIDs: \[([0-9, ]*)\]", stdout)
    started = [int(p) for p in match.group(1).replace(",", " ").split()] if match else []
    return started, {worker: int(pid) for worker, pid in _FAILED_RE.findall(stderr)}


@pytest.mark.parametrize("limited", [2], indirect=True)
def test_a_worker_without_its_heartbeat_connection_fails_to_start_cleanly(
    limited: Queue,
) -> None:
    # `worker start` holds one connection and the worker's main connection takes the
    # other: the heartbeat's cannot open.
    result = limited.cli("worker", "start", check=False, timeout=60)
    assert result.returncode == 1, result
    assert "Started" not in result.stdout, result
    started, failed = _started_and_failed(result.stdout, result.stderr)
    assert started == [] and len(failed) == 1, result
    assert "too many connections" in result.stderr, result
    assert "Traceback" not in result.stderr + limited.worker_logs()
    limited.wait(lambda: not processes_of_home(limited.home), 10, "no process left")
    assert limited.status()["workers"] == []


@pytest.mark.parametrize("limited", [3], indirect=True)
def test_worker_start_names_every_worker_that_could_not_get_its_connections(
    limited: Queue,
) -> None:
    result = limited.cli("worker", "start", "--count", "4", check=False, timeout=60)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result
    started, failed = _started_and_failed(result.stdout, result.stderr)
    assert len(started) + len(failed) == 4 and len(failed) >= 2, result
    assert "too many connections" in result.stderr, result
    # The ones reported started run and are registered; no other process is left.
    # Room for the test's own commands (a started worker's LISTEN may take the last slot).
    limited.raise_limit()
    limited.wait(
        lambda: sorted(processes_of_home(limited.home)) == sorted(started),
        10,
        "only the started workers",
    )
    assert all(is_running(pid) for pid in started)
    assert sorted(w["pid"] for w in limited.status()["workers"]) == sorted(started)
    assert "Traceback" not in limited.worker_logs()
    stopped = limited.cli("worker", "stop", "--timeout", "20", timeout=60)
    assert f"Stopped {len(started)} worker(s)" in stopped.stdout or not started, stopped
