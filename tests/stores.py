"""Test databases: the PostgreSQL test server's address, a fresh schema per test, and the
factory of stores behind the `store_factory` fixture (tests/conftest.py builds the fixtures
from these; test modules import the types and helpers from here, never from a conftest).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator

import pytest

from queuectl.paths import DatabaseLocation, redact_url
from queuectl.store import Store, open_store

PG_URL_VARIABLE = "QUEUECTL_TEST_PG_URL"


def pg_test_url(tests: str = "PostgreSQL store tests") -> str:
    """The URL of the PostgreSQL test server. Without one the calling test skips, saying
    `<tests> skipped`; in CI it fails instead, since there a skip would hide a backend."""
    url = os.environ.get(PG_URL_VARIABLE)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_URL_VARIABLE} must be set in CI (.ci/run sets it)")
        pytest.skip(f"{PG_URL_VARIABLE} is not set: {tests} skipped")
    return url


@contextlib.contextmanager
def temporary_database(admin_url: str, name: str, owner: str | None = None) -> Iterator[str]:
    """A new database `name` (owned by the role `owner`, if given) on the test server, for
    tests that need a whole database (its own connection rules, outages, roles); dropped
    afterwards, WITH (FORCE) ending the sessions a killed test left. Yields its name."""
    import psycopg
    from psycopg import sql

    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if owner is not None:
        create = sql.SQL("{} OWNER {}").format(create, sql.Identifier(owner))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(create)
    try:
        yield name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def postgres_schema() -> Iterator[DatabaseLocation]:
    """A fresh, empty schema of the test database for one test, dropped afterwards.

    A schema (chosen through search_path) instead of a database per test: creating a
    database costs about a second, a schema a few milliseconds.
    """
    url = pg_test_url()
    # Imported only now: without a URL the PostgreSQL backend is never imported at all.
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    import queuectl.store.postgres  # noqa: F401  (fails loudly if the backend is missing)

    schema = f"queuectl_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    options = conninfo_to_dict(url).get("options") or ""
    dsn = make_conninfo(url, options=f"{options} -c search_path={schema}".strip())
    try:
        yield DatabaseLocation("postgresql", None, dsn, f"{redact_url(url)} (schema {schema})")
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


class StoreFactory:
    """Opens stores on one test database; every store it opened is closed at teardown."""

    def __init__(self, backend: str, location: DatabaseLocation) -> None:
        self.backend = backend
        self.location = location
        self._opened: list[Store] = []

    def __call__(self) -> Store:
        store = open_store(self.location)
        self._opened.append(store)
        return store

    @contextlib.contextmanager
    def lock_held(self, seconds: float, *, readers_too: bool = False) -> Iterator[None]:
        """Another session takes the database's lock and lets go `seconds` later, or as
        the block ends if that is sooner; the block runs while it is held.

        SQLite: BEGIN IMMEDIATE (writers wait), or with `readers_too` the whole file
        locked, as by the last connection checkpointing the WAL as it closes: only
        possible while no other connection is open. PostgreSQL: every table locked
        ACCESS EXCLUSIVE (readers wait in both cases).
        """
        taken = threading.Event()
        block_ended = threading.Event()
        failures: list[BaseException] = []

        def hold() -> None:
            try:
                with self._locking_session(readers_too):
                    taken.set()
                    block_ended.wait(seconds)
            except BaseException as exc:  # re-raised in the test's thread
                failures.append(exc)
                taken.set()

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        taken.wait(10)
        try:
            if failures:
                raise failures[0]
            yield
        finally:
            block_ended.set()
            holder.join(10)
        if failures:
            raise failures[0]

    @contextlib.contextmanager
    def _locking_session(self, readers_too: bool) -> Iterator[None]:
        if self.backend == "sqlite":
            conn = sqlite3.connect(str(self.location.path), isolation_level=None)
            try:
                if readers_too:
                    # In WAL mode only EXCLUSIVE locking mode locks the file against readers.
                    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
                    conn.execute("BEGIN EXCLUSIVE")
                else:
                    conn.execute("BEGIN IMMEDIATE")
                yield
                conn.execute("ROLLBACK")
            finally:
                conn.close()
            return
        import psycopg
        from psycopg import sql

        assert self.location.dsn is not None
        with psycopg.connect(self.location.dsn) as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
            ]
            conn.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                    sql.SQL(", ").join(map(sql.Identifier, tables))
                )
            )
            yield
            conn.rollback()

    def close_all(self) -> None:
        for store in self._opened:
            with contextlib.suppress(Exception):  # a test may have closed it already
                store.close()
