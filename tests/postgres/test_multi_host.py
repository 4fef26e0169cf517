"""Several hosts on one PostgreSQL queue, end to end through the real `queuectl` executable.

Two worker groups play two hosts: each has its own QUEUECTL_HOSTNAME and its own
QUEUECTL_HOME (logs, scratch space), and both point QUEUECTL_DB at the same
PostgreSQL schema. The URL carries a password (trust authentication ignores it)
that must never show anywhere.

Skipped with a reason unless QUEUECTL_TEST_PG_URL names a server; in CI a skip is a
failure, as for every PostgreSQL test. The module creates a database of its own on
that server (so "terminate every connection of the database" ends only this
module's connections) and gives each test a fresh schema in it, selected through
`?options=-c search_path=...` in the URL.
"""

from __future__ import annotations

import collections
import concurrent.futures
import getpass
import json
import shlex
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from queuectl.domain import Job, JobState, Run
from queuectl.paths import resolve_database
from queuectl.store import Store, open_store
from tests.e2e.worker_helpers import (
    Queue,
    is_running,
    kill_quietly,
    processes_of_home,
    stream_lines,
)
from tests.helpers import CliResult, new_job, run_cli_concurrently, wait_until
from tests.stores import pg_test_url, temporary_database

# Used as the URL's password unless QUEUECTL_TEST_PG_URL has one of its own.
DEFAULT_SECRET = "s3cretpw"
POLL = 0.2
# lease_seconds where a worker is killed on purpose: recovery comes quickly.
SHORT_LEASE = 2.0
# lease_seconds elsewhere: no heartbeat of a live worker can lapse on a loaded machine.
LONG_LEASE = 10.0
# Scheduling slack on a loaded two-CPU machine (other test suites share it).
MARGIN = 3.0
# A recovered job waits backoff_base^1 = 1 s in `failed` before it runs again.
BACKOFF = 1.0
WORKERS_PER_HOST = 2
HOST_NAMES = ("host-a", "host-b")


@dataclass(frozen=True)
class Server:
    """This module's database on the test server."""

    params: dict[str, Any]  # QUEUECTL_TEST_PG_URL's connection parameters
    dbname: str

    @property
    def secret(self) -> str:
        return str(self.params.get("password") or DEFAULT_SECRET)

    def admin(self, query: Any, params: Any = None) -> list[tuple[Any, ...]]:
        import psycopg
        from psycopg.conninfo import make_conninfo

        dsn = make_conninfo("", **{**self.params, "dbname": self.dbname})
        with psycopg.connect(dsn, autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def url(self, schema: str) -> str:
        """postgresql://user:password@host:port/db?options=-c search_path=SCHEMA&..."""
        params = dict(self.params)
        user = urllib.parse.quote(str(params.pop("user", None) or getpass.getuser()), safe="")
        params.pop("password", None)
        host = urllib.parse.quote(str(params.pop("host", None) or ""), safe="")
        port = params.pop("port", None)
        params.pop("dbname", None)
        options = f"{params.pop('options', None) or ''} -c search_path={schema}".strip()
        query = {**{k: str(v) for k, v in params.items()}, "options": options}
        encoded = "&".join(
            f"{key}={urllib.parse.quote(value, safe='')}" for key, value in query.items()
        )
        secret = urllib.parse.quote(self.secret, safe="")
        address = f"{host}:{port}" if port else host
        return f"postgresql://{user}:{secret}@{address}/{self.dbname}?{encoded}"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    url = pg_test_url("PostgreSQL multi-host tests")
    from psycopg.conninfo import conninfo_to_dict

    dbname = f"queuectl_multihost_{uuid.uuid4().hex[:12]}"
    with temporary_database(url, dbname):
        yield Server(conninfo_to_dict(url), dbname)


@pytest.fixture
def db_url(server: Server) -> Iterator[str]:
    """QUEUECTL_DB for one test: a fresh schema of the module's database, with a password."""
    from psycopg import sql

    schema = f"multihost_{uuid.uuid4().hex[:12]}"
    server.admin(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield server.url(schema)
    finally:
        server.admin(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


class Host(Queue):
    """One "host": CLI calls with its own QUEUECTL_HOSTNAME and QUEUECTL_HOME."""

    def __init__(self, name: str, home: Path, files: Path, db_url: str) -> None:
        super().__init__(home, files)
        self.name = name
        self.env: dict[str, str | None] = {
            "QUEUECTL_DB": db_url,
            "QUEUECTL_HOSTNAME": name,
            "QUEUECTL_PG_LISTEN": None,
            "QUEUECTL_DEBUG": None,
        }

    def cli(  # type: ignore[override]
        self, *args: str, env: dict[str, str | None] | None = None, **kwargs: Any
    ) -> CliResult:
        return super().cli(*args, env={**self.env, **(env or {})}, **kwargs)

    def cli_many(self, *commands: list[str]) -> list[CliResult]:
        """Read-only commands at once: importing psycopg makes each call slow on a busy machine."""
        return run_cli_concurrently(*commands, env={"QUEUECTL_HOME": str(self.home), **self.env})

    def worker_ids(self, store: Store) -> set[str]:
        return {w.id for w in store.list_workers() if w.host == self.name}

    def log_texts(self) -> dict[str, str]:
        logs = self.home / "logs"
        return {p.name: p.read_text(errors="replace") for p in sorted(logs.glob("worker-*.log*"))}


@pytest.fixture
def hosts(db_url: str, tmp_path: Path) -> Iterator[tuple[Host, Host]]:
    files = tmp_path / "files"
    a, b = (Host(name, tmp_path / f"home-{name}", files, db_url) for name in HOST_NAMES)
    try:
        yield a, b
    finally:
        for host in (a, b):
            host.cleanup()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """The test's own view of the queue, through the library: fast enough to time a kill."""
    opened = open_store(resolve_database(db_url))
    try:
        yield opened
    finally:
        opened.close()


def echo_jobs(prefix: str, count: int, out: Path) -> list[dict[str, Any]]:
    command = f"echo $QUEUECTL_JOB_ID >> {shlex.quote(str(out))}"
    return [{"id": f"{prefix}-{index:04d}", "command": command} for index in range(count)]


def start_both(a: Host, b: Host, count: int = WORKERS_PER_HOST) -> tuple[list[int], list[int]]:
    """`worker start` on both hosts at once."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        a_pids, b_pids = pool.map(lambda host: host.start(count), (a, b))
    return a_pids, b_pids


def configure(store: Store, **settings: float) -> None:
    """Settings through the library: each CLI call costs a psycopg import."""
    for key, value in settings.items():
        store.set_config(key, str(value))


def wait_all_finished(host: Host, store: Store, total: int, timeout: float) -> None:
    def finished() -> bool:
        counts = store.counts()
        return (
            counts[JobState.COMPLETED] + counts[JobState.DEAD] == total
            and sum(counts.values()) == total
        )

    host.wait(finished, timeout, f"all {total} jobs completed or dead")


def histories(store: Store) -> dict[str, tuple[Job, list[Run]]]:
    return {job.id: (job, store.get_runs(job.id)) for job in store.list_jobs()}


def assert_no_secret(secret: str, texts: dict[str, str]) -> None:
    leaks = [name for name, text in texts.items() if secret in text]
    assert not leaks, f"the password shows in: {leaks}"


# --- tests -------------------------------------------------------------------------------------


def test_two_hosts_run_2000_jobs_exactly_once_and_stop_per_host(
    hosts: tuple[Host, Host], store: Store, server: Server
) -> None:
    a, b = hosts
    configure(store, lease_seconds=LONG_LEASE, poll_interval=POLL)
    out = a.files / "ran"
    a_pids, b_pids = start_both(a, b)
    ids = a.enqueue_many(echo_jobs("j", 2000, out))
    assert len(ids) == 2000
    wait_all_finished(a, store, 2000, timeout=180)

    # Every job ran once: one line each in the shared file, one run each in the store.
    assert collections.Counter(stream_lines(out)) == dict.fromkeys(ids, 1)
    a_ids, b_ids = a.worker_ids(store), b.worker_ids(store)
    ran_on: collections.Counter[str] = collections.Counter()
    for job_id, (job, runs) in histories(store).items():
        assert job.state is JobState.COMPLETED, (job_id, job, runs)
        assert [(r.n, r.exit_code, r.error) for r in runs] == [(1, 0, None)], (job_id, runs)
        ran_on["host-a" if runs[0].worker_id in a_ids else "host-b"] += 1
        assert runs[0].worker_id in a_ids | b_ids
    assert ran_on["host-a"] > 0 and ran_on["host-b"] > 0, ran_on

    # `status` shows both hosts' workers, from either host.
    as_json, as_text = b.cli_many(["status", "--json"], ["status"])
    hosts_seen = collections.Counter(w["host"] for w in json.loads(as_json.stdout)["workers"])
    assert hosts_seen == dict.fromkeys(HOST_NAMES, WORKERS_PER_HOST)
    for name in HOST_NAMES:
        assert as_text.stdout.count(name) == WORKERS_PER_HOST, as_text

    # `worker stop` on host-a stops host-a's workers only.
    stopped = a.cli("worker", "stop", "--timeout", "30")
    assert f"Stopped {WORKERS_PER_HOST} worker(s)." in stopped.stdout
    assert not any(is_running(pid) for pid in a_pids)
    assert all(is_running(pid) for pid in b_pids)
    assert {w.host for w in store.list_workers()} == {"host-b"}
    assert a.cli("worker", "stop").stdout.strip() == "No workers running."
    assert all(is_running(pid) for pid in b_pids)

    # `--all-hosts` asks host-b's workers (through the store) to finish and exit.
    everywhere = a.cli("worker", "stop", "--all-hosts", "--timeout", "30")
    assert f"and {WORKERS_PER_HOST} on other hosts" in everywhere.stdout, everywhere
    assert f"Stopped {WORKERS_PER_HOST} worker(s)." in everywhere.stdout
    wait_until(lambda: not any(is_running(pid) for pid in b_pids), timeout=10)
    assert store.list_workers() == []
    for host in hosts:
        assert_no_secret(server.secret, host.log_texts())


def test_a_host_killed_mid_run_has_its_jobs_finished_by_the_other(
    hosts: tuple[Host, Host], store: Store
) -> None:
    a, b = hosts
    configure(store, lease_seconds=SHORT_LEASE, poll_interval=POLL, backoff_base=1)
    total = 600
    out = a.files / "ran"
    a_pids, b_pids = start_both(a, b)
    b_ids = b.worker_ids(store)
    a.enqueue_many(echo_jobs("k", total, out))

    def held_by_b() -> list[Job]:
        return [j for j in store.list_jobs(JobState.PROCESSING) if j.worker_id in b_ids]

    # Kill host-b while its workers hold jobs and little is left for host-a, so that
    # everything is done soon after host-b's jobs are back in the queue.
    a.wait(
        lambda: store.counts()[JobState.PENDING] <= 150 and len(held_by_b()) == WORKERS_PER_HOST,
        60,
        "host-b busy with fewer than 150 jobs pending",
    )
    kill_quietly(b_pids)  # the workers first, so they start nothing new; then their jobs
    killed_at = time.time()
    started = time.monotonic()
    wait_until(lambda: not any(is_running(pid) for pid in b_pids), timeout=5)
    while leftovers := processes_of_home(b.home):
        kill_quietly(leftovers)
        time.sleep(0.01)
    victims = {job.id for job in held_by_b()}
    assert victims, "host-b held no job when it was killed"

    wait_all_finished(a, store, total, timeout=SHORT_LEASE + POLL + BACKOFF + MARGIN + 30)
    elapsed = time.monotonic() - started
    assert elapsed <= SHORT_LEASE + POLL + BACKOFF + MARGIN, f"finished {elapsed:.1f}s after"

    counts = store.counts()
    assert counts[JobState.PROCESSING] == counts[JobState.PENDING] == 0
    lines = collections.Counter(stream_lines(out))
    for job_id, (job, runs) in histories(store).items():
        lost = [run for run in runs if run.error == "worker lost"]
        if job.state is JobState.DEAD:  # its retries ran out
            assert job.last_error == "worker lost", (job_id, job, runs)
        else:
            assert job.state is JobState.COMPLETED, (job_id, job, runs)
            assert runs[-1].exit_code == 0
        if job_id in victims:
            [victim_run] = [run for run in lost if run.worker_id in b_ids]
            assert victim_run.finished_at is not None
            recovered_after = epoch_of(victim_run) - killed_at
            assert recovered_after <= SHORT_LEASE + POLL + MARGIN, (job_id, recovered_after)
        if not lost:
            assert len(runs) == 1 and lines[job_id] == 1, (job_id, runs, lines[job_id])
        else:  # at-least-once: the lost run may have appended its line before the kill
            assert 1 <= lines[job_id] <= len(runs), (job_id, runs, lines[job_id])
    assert all(is_running(pid) for pid in a_pids), "host-a's workers must live on"
    # Only host-a's workers are live now; host-b's expired with their lease.
    assert {w["host"] for w in a.status()["workers"]} == {"host-a"}


def epoch_of(run: Run) -> float:
    assert run.finished_at is not None
    return run.finished_at.timestamp()


def test_workers_reconnect_after_every_connection_is_terminated(
    hosts: tuple[Host, Host], store: Store, server: Server
) -> None:
    a, b = hosts
    configure(store, lease_seconds=LONG_LEASE, poll_interval=POLL)
    total = 1000
    out = a.files / "ran"
    a_pids, b_pids = start_both(a, b)
    a.enqueue_many(echo_jobs("c", total, out))

    def terminate_all() -> int:
        rows = server.admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (server.dbname,),
        )
        return len(rows)

    for done in (total // 5, total // 2):  # twice while the workers are busy
        a.wait(lambda d=done: store.counts()[JobState.COMPLETED] >= d, 120, f"{done} jobs done")
        assert store.counts()[JobState.PENDING] > 0, "too late: nothing left to run"
        # Each worker holds at least its job connection and its heartbeat's.
        assert terminate_all() >= 2 * 2 * WORKERS_PER_HOST

    wait_all_finished(a, store, total, timeout=120)
    lines = collections.Counter(stream_lines(out))
    for job_id, (job, runs) in histories(store).items():
        lost = [run for run in runs if run.error == "worker lost"]
        assert job.state is JobState.COMPLETED, (job_id, job, runs)
        assert [run.exit_code for run in runs if run not in lost] == [0], (job_id, runs)
        if lost:  # at-least-once: a run whose lease lapsed may have run too
            assert 1 <= lines[job_id] <= len(runs), (job_id, runs, lines[job_id])
        else:
            assert len(runs) == 1 and lines[job_id] == 1, (job_id, runs, lines[job_id])
    assert len(lines) == total

    # No worker died; each logged the loss, naming the database without its password.
    assert all(is_running(pid) for pid in a_pids + b_pids)
    for host in hosts:
        logs = host.log_texts()
        assert len(logs) == WORKERS_PER_HOST
        for name, text in logs.items():
            assert "WARNING" in text and "lost the connection to postgresql://" in text, (
                name,
                text[-2000:],
            )
            assert ":***@" in text, name
        assert_no_secret(server.secret, logs)


def test_the_password_never_shows(hosts: tuple[Host, Host], server: Server) -> None:
    a, b = hosts
    secret = server.secret
    assert secret in (a.env["QUEUECTL_DB"] or "")  # the test does use a password
    [a_pid], [b_pid] = start_both(a, b, count=1)
    env_file = a.files / "job-env"
    good, bad = a.enqueue_many(
        [
            {"command": f"env > {shlex.quote(str(env_file))}"},
            {"command": "echo oops; exit 3", "max_retries": 1},
        ]
    )
    waited = b.cli("wait", good, bad, "--timeout", "30", check=False)
    assert waited.returncode == 1, waited  # `bad` is dead

    outputs = {"wait": waited.stdout + waited.stderr}
    commands = [
        ["status"],
        ["status", "--json"],
        ["list"],
        ["list", "--json"],
        ["show", good, "--json"],
        ["show", bad],
        ["logs", bad],
        ["dlq", "list"],
        ["config", "list"],
        ["init-db"],
        ["doctor"],
        ["show", "no-such-job"],
    ]
    for host, group in ((a, commands), (b, commands[:3])):
        for command, result in zip(group, host.cli_many(*group), strict=True):
            outputs[f"{host.name} {' '.join(command)}"] = result.stdout + result.stderr
            assert "Traceback" not in result.stderr, (command, result)
    assert "***" in outputs["host-a doctor"]  # it names the database, redacted
    assert "***" in outputs["host-a init-db"]
    assert "no-such-job" in outputs["host-a show no-such-job"]

    job_env = env_file.read_text()
    assert "QUEUECTL_JOB_ID=" in job_env
    assert "QUEUECTL_DB" not in job_env
    outputs["a job's environment"] = job_env
    for pid in (a_pid, b_pid):  # what `ps` shows
        outputs[f"/proc/{pid}/cmdline"] = Path(f"/proc/{pid}/cmdline").read_bytes().decode()

    stop = a.cli("worker", "stop", "--all-hosts", "--timeout", "30")
    outputs["worker stop --all-hosts"] = stop.stdout + stop.stderr
    for host in hosts:
        logs = host.log_texts()
        assert logs
        outputs.update({f"{host.name} {name}": text for name, text in logs.items()})
    assert_no_secret(secret, outputs)


def test_a_schema_in_the_url_is_honoured(hosts: tuple[Host, Host], server: Server) -> None:
    """The URL's search_path is where queuectl keeps its tables: nothing leaks elsewhere."""
    a, _ = hosts
    job_id = a.enqueue("true")
    url = a.env["QUEUECTL_DB"] or ""
    schema = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["options"][0].split("=")[-1]
    rows = server.admin(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'jobs'"
    )
    assert rows == [(schema,)]
    assert server.admin(f'SELECT id FROM "{schema}".jobs') == [(job_id,)]


def test_queuectl_pg_listen_0_makes_idle_workers_poll(
    db_url: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The switch benchmark section 8 uses to compare wake-ups with polling."""
    store.enqueue([new_job("runnable")])
    for value, waits in (("1", False), ("0", True)):
        monkeypatch.setenv("QUEUECTL_PG_LISTEN", value)
        idle = open_store(resolve_database(db_url))
        try:
            started = time.monotonic()
            idle.wait_for_jobs(1.0, lambda: False)
            elapsed = time.monotonic() - started
        finally:
            idle.close()
        # Listening, it sees the runnable job at once; polling, it sleeps the full timeout.
        assert (elapsed >= 0.95) is waits, (value, elapsed)
