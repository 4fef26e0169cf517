"""What only the PostgreSQL store has: NOTIFY wake-ups, the database clock, migrations
under concurrency, reconnection, and URLs whose password must never show.

Skipped unless QUEUECTL_TEST_PG_URL names a server (each test gets a fresh database).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from queuectl.domain import JobState
from queuectl.errors import InvalidInput, OperationFailed, StoreUnavailable
from queuectl.paths import DatabaseLocation, resolve_database
from queuectl.store import open_store
from tests.helpers import SUCCESS, fail, new_job, worker_info
from tests.stores import PG_URL_VARIABLE

psycopg = pytest.importorskip("psycopg")

from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: E402

from queuectl.store import postgres_connection  # noqa: E402
from queuectl.store.postgres import PostgresStore  # noqa: E402
from queuectl.store.postgres_schema import LATEST_VERSION  # noqa: E402

UTC = timezone.utc
SECRET = "secretpw"


@pytest.fixture
def location(postgres_location: DatabaseLocation) -> DatabaseLocation:
    """A fresh schema (dropped afterwards); no store opened on it yet."""
    return postgres_location


@pytest.fixture
def stores(location: DatabaseLocation) -> Iterator[list[PostgresStore]]:
    """Stores a test opens through `opened`, closed at teardown."""
    opened: list[PostgresStore] = []
    yield opened
    for store in opened:
        store.close()


def open_pg(location: DatabaseLocation, stores: list[PostgresStore], **dsn: str) -> PostgresStore:
    assert location.dsn is not None
    store = PostgresStore(make_conninfo(location.dsn, **dsn), display_url=location.url)
    stores.append(store)
    return store


def server_now(location: DatabaseLocation) -> datetime:
    assert location.dsn is not None
    with psycopg.connect(location.dsn) as conn:
        value: datetime = conn.execute("SELECT now()").fetchone()[0]
    return value


def admin_sql(location: DatabaseLocation, sql: str) -> list[tuple[object, ...]]:
    assert location.dsn is not None
    with psycopg.connect(location.dsn, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def url_with_password(location: DatabaseLocation, port: int | None = None) -> str:
    """The test database's URL with a password (the test server's trust auth ignores it).

    Keeps the location's options: the fixture may select a schema through search_path.
    """
    assert location.dsn is not None
    params = conninfo_to_dict(location.dsn)
    host = params.get("host", "127.0.0.1")
    url = f"postgresql://postgres:{SECRET}@{host}:{port or params.get('port', 5432)}"
    url += f"/{params.get('dbname', 'postgres')}"
    if params.get("options"):
        url += f"?options={urllib.parse.quote(str(params['options']))}"
    return url


def assert_no_secret(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc))
    assert SECRET not in text
    assert SECRET not in str(exc)


# --- LISTEN/NOTIFY -------------------------------------------------------------------------


def test_an_enqueue_wakes_a_waiting_worker_within_100ms(
    location: DatabaseLocation, stores: list[PostgresStore]
) -> None:
    waiter = open_pg(location, stores)
    producer = open_pg(location, stores)
    waiter.register_worker(worker_info("w"))
    waiter.wait_for_jobs(0, lambda: False)  # opens the listening connection
    for round_no in range(5):
        woke_at: list[float] = []

        def wait(woke_at: list[float] = woke_at) -> None:
            waiter.wait_for_jobs(5, lambda: False)
            woke_at.append(time.monotonic())

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.2)  # the waiter is blocked on its listening connection by now
        assert not woke_at
        enqueued_at = time.monotonic()
        producer.enqueue([new_job(f"wake-{round_no}")])
        thread.join(10)
        assert woke_at, "wait_for_jobs did not return"
        assert woke_at[0] - enqueued_at < 0.1
        claim = waiter.claim("w")
        assert claim is not None and claim.job.id == f"wake-{round_no}"


def test_a_dlq_retry_wakes_a_waiting_worker(
    location: DatabaseLocation, stores: list[PostgresStore]
) -> None:
    waiter = open_pg(location, stores)
    producer = open_pg(location, stores)
    producer.enqueue([new_job("d", max_retries=1)])
    producer.register_worker(worker_info("w"))
    claim = producer.claim("w")
    assert claim is not None and producer.finish(claim, fail()).recorded
    waiter.wait_for_jobs(0, lambda: False)
    timer = threading.Timer(0.2, lambda: producer.retry_dead(["d"]))
    started = time.monotonic()
    timer.start()
    waiter.wait_for_jobs(5, lambda: False)
    timer.join()
    assert time.monotonic() - started < 1


def test_a_job_enqueued_before_listening_is_not_missed(
    location: DatabaseLocation, stores: list[PostgresStore]
) -> None:
    """The first wait opens LISTEN; a job enqueued before that must end it at once."""
    waiter = open_pg(location, stores)
    open_pg(location, stores).enqueue([new_job("early")])
    started = time.monotonic()
    waiter.wait_for_jobs(5, lambda: False)
    assert time.monotonic() - started < 1


# --- the database clock -----------------------------------------------------------------------


def test_times_come_from_the_database_clock(
    location: DatabaseLocation, stores: list[PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With this host's clock a day off, every stored time still follows the server."""
    store = open_pg(location, stores)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 86_400)
    monkeypatch.setattr("queuectl.timeutil.now_utc", lambda: datetime.now(UTC) + timedelta(days=1))
    store.set_config("backoff_base", "3")

    def near_server(moment: datetime) -> bool:
        return abs((moment - server_now(location)).total_seconds()) < 5

    assert near_server(store.now())
    store.enqueue([new_job("now"), new_job("later", delay=600)])
    now_job, later_job = store.list_jobs()
    assert near_server(now_job.created_at) and near_server(now_job.run_at)
    assert later_job.run_at - later_job.created_at == timedelta(seconds=600)
    store.register_worker(worker_info("w"))
    assert near_server(store.list_workers()[0].heartbeat_at)
    claim = store.claim("w")
    assert claim is not None and near_server(claim.started_at)
    assert store.finish(claim, fail()).recorded
    failed = store.get_job("now")
    assert failed is not None and failed.state is JobState.FAILED
    assert near_server(failed.updated_at)
    assert failed.run_at - failed.updated_at == timedelta(seconds=3)


# --- migrations ------------------------------------------------------------------------------------


def test_concurrent_first_opens_apply_the_migrations_once(
    location: DatabaseLocation, stores: list[PostgresStore]
) -> None:
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def open_at_once() -> None:
        barrier.wait(30)
        try:
            store = PostgresStore(location.dsn or "", display_url=location.url)
        except BaseException as exc:
            errors.append(exc)
            return
        with lock:
            stores.append(store)

    threads = [threading.Thread(target=open_at_once) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(stores) == 8
    rows = admin_sql(location, "SELECT version FROM schema_migrations ORDER BY version")
    assert rows == [(version,) for version in range(1, LATEST_VERSION + 1)]
    stores[0].enqueue([new_job("a")])
    assert stores[7].counts()[JobState.PENDING] == 1


def test_a_database_newer_than_the_code_is_refused(
    location: DatabaseLocation, stores: list[PostgresStore]
) -> None:
    open_pg(location, stores)
    admin_sql(
        location,
        f"INSERT INTO schema_migrations (version, description) VALUES ({LATEST_VERSION + 1}, 'x')",
    )
    with pytest.raises(StoreUnavailable, match="newer than this queuectl") as caught:
        open_pg(location, stores)
    assert "upgrade queuectl" in str(caught.value)


# --- counts ----------------------------------------------------------------------------------------


def test_counts_follow_fused_finish_and_claim_and_survive_compaction(
    location: DatabaseLocation, stores: list[PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_pg(location, stores)
    store.set_config("backoff_max", "3600")
    store.enqueue([new_job(f"j{i}", max_retries=1 if i % 3 == 0 else 3) for i in range(30)])
    store.register_worker(worker_info("w"))
    claim = store.claim("w")
    outcomes = [SUCCESS, fail()]
    n = 0
    while claim is not None:
        claim = store.finish(claim, outcomes[n % 2], claim_next=True).next_claim
        n += 1
    expected = {state: len(store.list_jobs(state)) for state in JobState}
    assert sum(expected.values()) == 30 and expected[JobState.DEAD] > 0
    assert store.counts() == expected
    monkeypatch.setattr("queuectl.store.postgres._COMPACT_INTERVAL", 0.0)
    store.maintain()
    assert store.counts() == expected
    rows = admin_sql(location, "SELECT count(*) FROM job_counts")
    assert int(str(rows[0][0])) <= len(JobState)


# --- connection loss -------------------------------------------------------------------------------


def test_the_store_keeps_working_after_its_connections_are_terminated(
    location: DatabaseLocation, stores: list[PostgresStore], caplog: pytest.LogCaptureFixture
) -> None:
    # Tests may share one database (a schema each): end only this store's connections.
    application = f"queuectl-test-{uuid.uuid4().hex[:12]}"
    store = open_pg(location, stores, application_name=application)
    store.enqueue([new_job("a"), new_job("b")])
    store.register_worker(worker_info("w"))
    store.wait_for_jobs(0, lambda: False)  # a listening connection too
    caplog.set_level(logging.WARNING, logger="queuectl.store")

    def terminate_all(at_least: int = 1) -> None:
        killed = admin_sql(
            location,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            f"AND application_name = '{application}'",
        )
        assert len(killed) >= at_least

    terminate_all(at_least=2)  # the store's connection and its listening connection
    claim = store.claim("w")
    assert claim is not None and claim.job.id == "a"
    assert "lost the connection" in caplog.text
    terminate_all()
    result = store.finish(claim, SUCCESS, claim_next=True)
    assert result.recorded and result.next_claim is not None
    assert result.next_claim.job.id == "b"
    terminate_all()
    assert store.get_job("a").state is JobState.COMPLETED  # type: ignore[union-attr]
    assert store.counts()[JobState.PROCESSING] == 1
    # The listening connection went too: the next wait notices, the one after listens again.
    terminate_all()
    store.wait_for_jobs(1, lambda: False)
    store.wait_for_jobs(0, lambda: False)
    timer = threading.Timer(0.2, lambda: store.enqueue([new_job("c")]))
    started = time.monotonic()
    timer.start()
    store.wait_for_jobs(5, lambda: False)
    timer.join()
    assert time.monotonic() - started < 1


class FlakyProxy:
    """A TCP forwarder to the server that a test can break: after a query, or for a while."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.refusing = False
        self._cut_after: int | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, packets: int) -> None:
        """Forward this many more client packets, then drop every connection unanswered."""
        self._cut_after = packets

    def cut_all(self) -> None:
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def close(self) -> None:
        self._server.close()
        self.cut_all()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                if from_client and self._cut_after is not None:
                    with self._lock:
                        self._cut_after -= 1
                        cut = self._cut_after == 0
                    if cut:
                        self._cut_after = None
                        time.sleep(0.3)  # the server executes and commits; the reply is lost
                        self.cut_all()
                        return
        except OSError:
            pass


@pytest.fixture
def proxy(location: DatabaseLocation) -> Iterator[FlakyProxy]:
    assert location.dsn is not None
    params = conninfo_to_dict(location.dsn)
    flaky = FlakyProxy(str(params.get("host", "127.0.0.1")), int(str(params.get("port", 5432))))
    yield flaky
    flaky.close()


def through(
    proxy: FlakyProxy,
    location: DatabaseLocation,
    stores: list[PostgresStore],
    give_up_after: float | None = postgres_connection.RECONNECT_GIVE_UP,
) -> PostgresStore:
    store = PostgresStore(
        url_with_password(location, proxy.port),
        display_url=location.url,
        give_up_after=give_up_after,
    )
    stores.append(store)
    return store


def test_a_claim_whose_reply_was_lost_is_not_claimed_twice(
    location: DatabaseLocation, stores: list[PostgresStore], proxy: FlakyProxy
) -> None:
    store = through(proxy, location, stores)
    store.enqueue([new_job("a"), new_job("b")])
    store.register_worker(worker_info("w"))
    proxy.cut_after(1)  # the claim statement reaches the server and commits
    claim = store.claim("w")
    assert claim is not None and claim.job.id == "a" and claim.run_no == 1
    assert store.get_job("a").runs_total == 1  # type: ignore[union-attr]
    following = store.claim("w")
    assert following is not None and following.job.id == "b"
    assert store.claim("w") is None


def test_a_finish_whose_reply_was_lost_counts_as_recorded(
    location: DatabaseLocation, stores: list[PostgresStore], proxy: FlakyProxy
) -> None:
    store = through(proxy, location, stores)
    store.enqueue([new_job("a"), new_job("b"), new_job("c")])
    store.register_worker(worker_info("w"))
    claim = store.claim("w")
    assert claim is not None
    proxy.cut_after(1)
    result = store.finish(claim, SUCCESS, claim_next=True)
    assert result.recorded
    assert result.next_claim is not None and result.next_claim.job.id == "b"
    assert [run.n for run in store.get_runs("a")] == [1]
    assert store.get_job("c").state is JobState.PENDING  # type: ignore[union-attr]
    assert store.counts()[JobState.PROCESSING] == 1


def test_an_enqueue_whose_commit_reply_was_lost_is_not_a_duplicate(
    location: DatabaseLocation, stores: list[PostgresStore], proxy: FlakyProxy
) -> None:
    store = through(proxy, location, stores)
    proxy.cut_after(3)  # BEGIN, INSERT, COMMIT
    assert store.enqueue([new_job("x"), new_job("y")]) == ["x", "y"]
    proxy.cut_after(2)  # BEGIN, INSERT: rolled back by the server, then retried
    assert store.enqueue([new_job("z")]) == ["z"]
    assert [job.id for job in store.list_jobs()] == ["x", "y", "z"]


def test_an_outage_is_waited_out(
    location: DatabaseLocation,
    stores: list[PostgresStore],
    proxy: FlakyProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = through(proxy, location, stores)
    store.enqueue([new_job("a")])
    caplog.set_level(logging.INFO, logger="queuectl.store")
    proxy.refusing = True
    proxy.cut_all()
    threading.Timer(1.0, lambda: setattr(proxy, "refusing", False)).start()
    started = time.monotonic()
    assert store.get_job("a") is not None
    assert 0.9 < time.monotonic() - started < 10
    assert "reconnected" in caplog.text
    assert SECRET not in caplog.text


def test_a_long_outage_ends_in_store_unavailable(
    location: DatabaseLocation,
    stores: list[PostgresStore],
    proxy: FlakyProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = through(proxy, location, stores, give_up_after=1.0)
    proxy.refusing = True
    proxy.cut_all()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="could not reconnect") as caught:
        store.claim("w")
    assert time.monotonic() - started < 5
    assert_no_secret(caught.value)
    assert SECRET not in caplog.text


# --- secrets in messages -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://postgres:{SECRET}@127.0.0.1:1/x",
        f"postgresql://postgres:{SECRET}@127.0.0.1:abc/x",
        f"postgresql://postgres:{SECRET}@no-such-host.invalid/x",
        f"postgresql://postgres:{SECRET}@127.0.0.1/x?no_such_option=1",
    ],
)
def test_the_password_never_appears_in_connection_errors(url: str) -> None:
    with pytest.raises(StoreUnavailable) as caught:
        open_store(resolve_database(url))
    assert_no_secret(caught.value)
    assert "postgres:***@" in str(caught.value)


def test_the_password_never_appears_in_server_errors(
    location: DatabaseLocation, stores: list[PostgresStore]
) -> None:
    display = url_with_password(location).replace(SECRET, "***")
    missing = url_with_password(location).split("?")[0].rsplit("/", 1)[0] + "/no_such_db_here"
    with pytest.raises(StoreUnavailable, match="does not exist") as caught:
        PostgresStore(missing, display_url=display)
    assert_no_secret(caught.value)

    store = PostgresStore(url_with_password(location), display_url=display)
    stores.append(store)
    admin_sql(location, "ALTER TABLE jobs RENAME TO jobs_elsewhere")
    with pytest.raises(StoreUnavailable) as caught:
        store.enqueue([new_job("a")])
    assert_no_secret(caught.value)
    assert "***" in str(caught.value)


# --- packaging --------------------------------------------------------------------------------------


def test_sqlite_users_never_import_psycopg(tmp_path: object) -> None:
    code = (
        "import sys\n"
        "from queuectl.paths import resolve_database\n"
        "from queuectl.store import open_store\n"
        f"store = open_store(resolve_database({str(tmp_path) + '/q.db'!r}))\n"
        "store.enqueue([])\n"
        "store.close()\n"
        "assert 'psycopg' not in sys.modules, 'psycopg imported'\n"
    )
    env = {key: value for key, value in os.environ.items() if key != PG_URL_VARIABLE}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_the_description_is_the_redacted_url(
    location: DatabaseLocation, stores: list[PostgresStore]
) -> None:
    store = open_store(resolve_database(url_with_password(location)))
    stores.append(store)  # type: ignore[arg-type]
    assert SECRET not in store.description
    assert "postgres:***@" in store.description
    assert store.now().tzinfo is not None


# --- operations --------------------------------------------------------------------------------------


def test_purge_doctor_and_backup(location: DatabaseLocation, stores: list[PostgresStore]) -> None:
    store = open_pg(location, stores)
    store.enqueue([new_job("ok"), new_job("dead", max_retries=1), new_job("waiting")])
    store.register_worker(worker_info("w"))
    for outcome in (SUCCESS, fail()):
        claim = store.claim("w")
        assert claim is not None and store.finish(claim, outcome).recorded
    final = [JobState.COMPLETED, JobState.DEAD]
    assert store.purgeable_counts(final, store.now() - timedelta(hours=1)) == dict.fromkeys(
        final, 0
    )
    later = store.now() + timedelta(seconds=1)
    assert store.purgeable_counts(final, later) == dict.fromkeys(final, 1)
    assert store.purge(final, later, batch_size=1) == 1
    assert store.purge(final, later, batch_size=10) == 1
    assert store.purge(final, later, batch_size=10) == 0
    assert [job.id for job in store.list_jobs()] == ["waiting"]
    assert store.get_runs("ok") == [] and store.get_runs("dead") == []
    assert store.counts() == {**dict.fromkeys(JobState, 0), JobState.PENDING: 1}
    with pytest.raises(InvalidInput):
        store.purge([JobState.PENDING], later, batch_size=10)
    store.reclaim_space()

    checks = {check.name: check for check in store.diagnostics()}
    assert checks["schema"].ok and checks["clock"].ok and checks["connections"].ok
    with pytest.raises(OperationFailed, match="pg_dump"):
        store.backup("/nonexistent/backup.dump")
