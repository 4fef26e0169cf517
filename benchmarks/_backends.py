"""Throw-away databases for the benchmarks: a temporary QUEUECTL_HOME, and on PostgreSQL a
database created for the run and dropped after it. Never the user's ~/.queuectl.
"""

from __future__ import annotations

import abc
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from queuectl.paths import DatabaseLocation, redact_url
from queuectl.store import Store, open_store
from queuectl.worker import procinfo
from tests.helpers import queuectl_executable

CLI_TIMEOUT = 600.0


QUEUECTL = queuectl_executable()


@dataclass
class Database:
    """One benchmark database with its own QUEUECTL_HOME."""

    home: Path
    location: DatabaseLocation
    env: dict[str, str]  # for queuectl processes: QUEUECTL_HOME, QUEUECTL_DB
    workers: list[tuple[int, int]] = field(default_factory=list)  # (pid, start time) started

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run `queuectl ARGS` against this database; raise if it fails."""
        result = subprocess.run(
            [QUEUECTL, *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"queuectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def configure(self, **settings: object) -> None:
        """`queuectl config set KEY VALUE` for each setting."""
        for key, value in settings.items():
            self.cli("config", "set", key, f"{value:g}" if isinstance(value, float) else str(value))

    def installed_env(self) -> dict[str, str]:
        """`env` with bytecode cached outside the repository, as an installed queuectl has it
        even where PYTHONDONTWRITEBYTECODE is set (an editable install would otherwise compile
        every module it imports at each run)."""
        env = {k: v for k, v in self.env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.setdefault(
            "PYTHONPYCACHEPREFIX",
            os.path.join(tempfile.gettempdir(), f"queuectl-bench-pycache-{os.getuid()}"),
        )
        return env

    def process_seconds(self, argv: list[str]) -> float:
        """Seconds one process takes, start to exit, run as installed (`installed_env`).

        A blocking wait, with a timer to kill a hung process: subprocess.run(timeout=...)
        polls for the exit with sleeps that double up to 50 ms, which rounded every short
        process up to about 15, 31, 63 or 113 ms.
        """
        env = self.installed_env()
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, cwd=self.home, stdout=subprocess.DEVNULL)
        watchdog = threading.Timer(CLI_TIMEOUT, process.kill)
        watchdog.start()
        try:
            returncode = process.wait()
        finally:
            watchdog.cancel()
        elapsed = time.perf_counter() - started
        if returncode != 0:
            raise subprocess.CalledProcessError(returncode, argv)
        return elapsed

    def store(self, *, durable: bool = True) -> Store:
        return open_store(self.location, durable=durable)

    def start_workers(self, count: int) -> list[int]:
        """`queuectl worker start --count N`; returns the pids of the workers it started."""
        store = self.store()
        try:
            known = {worker.pid for worker in store.list_workers()}
            try:
                self.cli("worker", "start", "--count", str(count))
            finally:
                started = [w for w in store.list_workers() if w.pid not in known]
                self.workers += [(w.pid, w.pid_start_time) for w in started]
        finally:
            store.close()
        return [w.pid for w in started]

    def stop_workers(self) -> None:
        """`queuectl worker stop`: graceful, waits for them to exit."""
        self.cli("worker", "stop", "--timeout", "60")

    def end_workers(self) -> None:
        """`worker stop --force`; any worker it leaves behind is killed."""
        if not any(procinfo.is_alive(pid, start) for pid, start in self.workers):
            return
        with suppress(Exception):
            self.cli("worker", "stop", "--force", "--timeout", "20")
        for pid, start in self.workers:
            if procinfo.is_alive(pid, start):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


class Backend(abc.ABC):
    """Makes fresh databases of one kind."""

    name: str
    unavailable: str | None = None  # why this backend cannot be measured, if it cannot

    @contextmanager
    def fresh(self, template: Database | None = None) -> Iterator[Database]:
        """A new database (a copy of `template` if given), workers stopped and all removed after."""
        home = Path(tempfile.mkdtemp(prefix=f"queuectl-bench-{self.name}-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
        env["QUEUECTL_HOME"] = str(home)
        try:
            with self._database(home, template) as location:
                if location.dsn is not None:
                    env["QUEUECTL_DB"] = location.dsn  # a URL: the CLI reads it from here
                db = Database(home, location, env)
                try:
                    yield db
                finally:
                    db.end_workers()
        finally:
            shutil.rmtree(home, ignore_errors=True)

    @abc.abstractmethod
    def _database(
        self, home: Path, template: Database | None
    ) -> AbstractContextManager[DatabaseLocation]:
        """Where the new database lives, for as long as the context lasts."""


class SqliteBackend(Backend):
    name = "sqlite"

    @contextmanager
    def _database(self, home: Path, template: Database | None) -> Iterator[DatabaseLocation]:
        path = home / "queue.db"
        if template is not None:
            source = template.location.path
            assert source is not None
            for suffix in ("", "-wal"):  # the WAL is gone once every connection closed
                if Path(f"{source}{suffix}").exists():
                    shutil.copyfile(f"{source}{suffix}", f"{path}{suffix}")
                    os.chmod(f"{path}{suffix}", 0o600)
        yield DatabaseLocation("sqlite", str(path), None, str(path))


class PostgresBackend(Backend):
    """A database per use on the server of `admin_url`, created and dropped here."""

    name = "postgresql"
    version = ""

    def __init__(self, admin_url: str | None) -> None:
        self.admin_url = admin_url
        if not admin_url:
            self.unavailable = "not measured: give --pg-url or QUEUECTL_TEST_PG_URL"
            return
        try:
            import queuectl.store.postgres  # noqa: F401
        except Exception:
            self.unavailable = "PostgreSQL backend not available"
            return
        try:
            self.version = self._server_version()
        except Exception as exc:
            self.unavailable = f"not measured: {redact_url(admin_url)}: {type(exc).__name__}"

    def _server_version(self) -> str:
        import psycopg

        assert self.admin_url is not None
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as admin:
            row = admin.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0] if row else '?'}"

    def _admin(self, statement: str, *names: str) -> None:
        import psycopg
        from psycopg import sql

        assert self.admin_url is not None
        query = sql.SQL(statement).format(*map(sql.Identifier, names))
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(query)

    @contextmanager
    def _database(self, home: Path, template: Database | None) -> Iterator[DatabaseLocation]:
        assert self.admin_url is not None
        name = f"queuectl_bench_{uuid.uuid4().hex[:12]}"
        if template is None:
            self._admin("CREATE DATABASE {}", name)
        else:
            self._admin("CREATE DATABASE {} TEMPLATE {}", name, _database_name(template.location))
        url = urlsplit(self.admin_url)._replace(path=f"/{name}").geturl()
        try:
            yield DatabaseLocation(
                "postgresql", None, url, f"{redact_url(self.admin_url)} ({name})"
            )
        finally:
            self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


def _database_name(location: DatabaseLocation) -> str:
    assert location.dsn is not None
    return urlsplit(location.dsn).path.lstrip("/")
