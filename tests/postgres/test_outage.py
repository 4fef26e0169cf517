"""A PostgreSQL outage: the server refuses every connection for a while, then comes back.

The module makes a database of its own on the test server (named after the test
URL's database) so that refusing connections (`ALTER DATABASE ... ALLOW_CONNECTIONS
false`, then `pg_terminate_backend` of its sessions) cuts off only this module.
Skipped without QUEUECTL_TEST_PG_URL.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from queuectl.domain import HeartbeatReply, JobState
from queuectl.errors import StoreUnavailable
from queuectl.store.postgres import PostgresStore
from tests.e2e.worker_helpers import Queue, is_running, stream_lines
from tests.helpers import SUCCESS, CliResult, new_job, worker_info
from tests.stores import pg_test_url, temporary_database

LEASE = 1.0
# Scheduling slack on a loaded two-CPU machine.
MARGIN = 3.0


class Outage:
    """This module's database, and the switch that makes its server refuse it."""

    def __init__(self, admin_url: str, dbname: str) -> None:
        from psycopg.conninfo import make_conninfo

        self.admin_url = admin_url
        self.dbname = dbname
        self.dsn = make_conninfo(admin_url, dbname=dbname)

    def admin(self, query: Any, params: Any = None, *, here: bool = False) -> None:
        """Run `query` on the test URL's database, or with `here` on this module's."""
        import psycopg

        with psycopg.connect(self.dsn if here else self.admin_url, autocommit=True) as conn:
            conn.execute(query, params)

    def begin(self) -> None:
        """Refuse new connections and end the open ones."""
        from psycopg import sql

        self.admin(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(self.dbname))
        )
        self.admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (self.dbname,),
        )

    def end(self) -> None:
        from psycopg import sql

        self.admin(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(self.dbname))
        )

    @contextlib.contextmanager
    def lasting(self, seconds: float) -> Iterator[None]:
        """An outage that ends `seconds` after it began, whatever the test does meanwhile."""
        self.begin()
        timer = threading.Timer(seconds, self.end)
        timer.start()
        try:
            yield
        finally:
            timer.join()


@pytest.fixture(scope="module")
def outage() -> Iterator[Outage]:
    url = pg_test_url("PostgreSQL outage tests")
    from psycopg.conninfo import conninfo_to_dict

    dbname = f"{conninfo_to_dict(url).get('dbname') or 'queuectl'}_outage_{uuid.uuid4().hex[:8]}"
    with temporary_database(url, dbname):
        yield Outage(url, dbname)


@pytest.fixture
def schema(outage: Outage) -> Iterator[str]:
    """A fresh schema of the module's database."""
    from psycopg import sql

    schema = f"outage_{uuid.uuid4().hex[:12]}"
    outage.end()  # a failed test may have left it refusing
    outage.admin(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)), here=True)
    try:
        yield schema
    finally:
        outage.end()
        outage.admin(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)), here=True
        )


@pytest.fixture
def schema_dsn(outage: Outage, schema: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(outage.dsn, options=f"-c search_path={schema}")


class DatabaseQueue(Queue):
    """A Queue whose every command names the database through QUEUECTL_DB."""

    def __init__(self, home: Path, files: Path, db_url: str) -> None:
        super().__init__(home, files)
        self.db_url = db_url

    def cli(  # type: ignore[override]
        self, *args: str, env: dict[str, str | None] | None = None, **kwargs: Any
    ) -> CliResult:
        return super().cli(*args, env={"QUEUECTL_DB": self.db_url, **(env or {})}, **kwargs)


@pytest.fixture
def queue(
    outage: Outage, schema: str, queuectl_home: Path, tmp_path: Path
) -> Iterator[DatabaseQueue]:
    """A queue in the fresh schema, driven through the CLI (lease 2 s, poll 0.2 s)."""
    parts = urllib.parse.urlsplit(outage.admin_url)
    options = urllib.parse.quote(f"-c search_path={schema}")
    url = urllib.parse.urlunsplit(
        parts._replace(path=f"/{outage.dbname}", query=f"options={options}")
    )
    queuectl_home.mkdir(mode=0o700)
    queue = DatabaseQueue(queuectl_home, tmp_path / "files", url)
    try:
        queue.configure(lease_seconds=2, poll_interval=0.2, backoff_base=1)
        yield queue
    finally:
        outage.end()
        queue.cleanup()


def _store(
    dsn: str, give_up_after: float | None, stop: threading.Event | None = None
) -> PostgresStore:
    return PostgresStore(
        dsn,
        display_url="postgresql://test",
        give_up_after=give_up_after,
        stop_waiting=stop.is_set if stop else None,
    )


def test_a_workers_store_waits_out_an_outage_a_commands_store_gives_up_on(
    schema_dsn: str, outage: Outage
) -> None:
    command, worker = _store(schema_dsn, give_up_after=1.0), _store(schema_dsn, None)
    try:
        with outage.lasting(4.0):
            began = time.monotonic()
            with pytest.raises(StoreUnavailable, match="could not reconnect"):
                command.now()
            assert time.monotonic() - began < 1.0 + MARGIN
            worker.now()  # waits for the database to come back
            assert time.monotonic() - began > 3.0
        command.now()  # a command's store works again once the database is back
    finally:
        command.close()
        worker.close()


def test_a_workers_store_stops_waiting_when_the_worker_stops(
    schema_dsn: str, outage: Outage
) -> None:
    stop = threading.Event()
    worker = _store(schema_dsn, None, stop)
    try:
        with outage.lasting(4.0):
            threading.Timer(0.5, stop.set).start()
            began = time.monotonic()
            with pytest.raises(StoreUnavailable, match="stopped reconnecting"):
                worker.now()
            assert time.monotonic() - began < 0.5 + MARGIN
    finally:
        worker.close()


def test_recovery_waits_a_lease_after_a_reconnect_so_live_workers_renew_first(
    schema_dsn: str, outage: Outage
) -> None:
    busy, rescuer = _store(schema_dsn, None), _store(schema_dsn, None)
    try:
        for worker_id in ("w-busy", "w-dead"):
            busy.register_worker(worker_info(worker_id))
        busy.enqueue([new_job("busy"), new_job("dead")])
        claim = busy.claim("w-busy")
        assert claim is not None and claim.job.id == "busy"
        assert busy.claim("w-dead") is not None  # a worker that dies during the outage
        with outage.lasting(2.5 * LEASE):
            rescuer.now()  # the rescuer is back first: every lease looks expired
        assert rescuer.recover_expired(LEASE, lambda job: None) == []
        # The busy worker reconnects and renews its lease; the dead one never does.
        recovered = []
        began = time.monotonic()
        while time.monotonic() - began < 2 * LEASE + MARGIN and not recovered:
            assert busy.heartbeat("w-busy") is HeartbeatReply.CONTINUE
            recovered = rescuer.recover_expired(LEASE, lambda job: None)
            time.sleep(0.05)
        assert [job.job_id for job in recovered] == ["dead"]
        assert time.monotonic() - began >= LEASE * 0.9
        assert busy.finish(claim, SUCCESS).recorded
        job = busy.get_job("busy")
        assert job is not None and job.state is JobState.COMPLETED
        assert [run.exit_code for run in busy.get_runs("busy")] == [0]
    finally:
        busy.close()
        rescuer.close()


def test_workers_ride_out_an_outage_longer_than_a_lease_and_record_each_run_once(
    queue: DatabaseQueue, outage: Outage
) -> None:
    out = queue.files / "ran"
    pids = queue.start(2)
    ids = [queue.enqueue(f"sleep 2; echo $QUEUECTL_JOB_ID >> {out}") for _ in range(2)]
    for job_id in ids:
        queue.wait_job(job_id, "processing")
    with outage.lasting(6.0):  # three leases; the jobs end while it lasts
        queue.wait(lambda: len(stream_lines(out)) == 2, 15, "the jobs to end")
    for job_id in ids:
        job = queue.wait_job(job_id, "completed", timeout=20)
        assert job["attempts"] == 1, job
        assert [run["exit_code"] for run in job["runs"]] == [0], job
    assert sorted(stream_lines(out)) == sorted(ids)
    assert all(is_running(pid) for pid in pids), queue.worker_logs()
    assert sorted(queue.worker_pids()) == sorted(pids)
    logs = queue.worker_logs()
    assert "reconnected to postgresql://" in logs and "worker lost" not in logs, logs
    assert "Traceback" not in logs


def test_worker_stop_stops_this_hosts_workers_while_the_database_is_unreachable(
    queue: DatabaseQueue, outage: Outage
) -> None:
    pids = queue.start(2)
    outage.begin()
    result = queue.cli("worker", "stop", "--timeout", "20", timeout=60)
    assert "Warning: cannot connect to PostgreSQL" in result.stderr, result
    assert "Stopped 2 worker(s)" in result.stdout, result
    assert not any(is_running(pid) for pid in pids)
    assert "Traceback" not in queue.worker_logs()
