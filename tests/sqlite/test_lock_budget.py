"""SQLite's lock budget: any statement waits out a busy database, up to the store's limit,
then fails with the store's own error.

tests/contract/test_lock_contract.py checks a lock held for a moment; here a
store with a short budget meets a lock held past it, and a store opens while
the last connection of another process holds the whole file (checkpointing
the WAL as it closes, or recovering it).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from queuectl.errors import StoreUnavailable
from queuectl.store import open_store
from queuectl.store.sqlite import SqliteStore
from tests.contract.store_calls import every_call, interface_methods, prepare
from tests.stores import StoreFactory

BUDGET = 0.2


@pytest.fixture
def sqlite_factory(tmp_path: Path) -> StoreFactory:
    from queuectl.paths import DatabaseLocation

    path = tmp_path / "queue.db"
    return StoreFactory("sqlite", DatabaseLocation("sqlite", str(path), None, str(path)))


def test_past_the_budget_every_method_fails_with_the_stores_error(
    sqlite_factory: StoreFactory, tmp_path: Path
) -> None:
    store = SqliteStore(str(sqlite_factory.location.path), lock_wait=BUDGET)
    calls = every_call(store, tmp_path, prepare(store))
    assert {name for name, _call in calls} == interface_methods()
    failed = []
    with sqlite_factory.lock_held(60):
        for name, call in calls:
            try:
                call()
            except StoreUnavailable as exc:
                assert f"stayed locked for over {BUDGET}s" in str(exc), (name, exc)
                failed.append(name)
    # Readers are not stopped by a writer in WAL mode; every writer is, and says so.
    assert {"enqueue", "set_config", "purge", "reclaim_space", "claim", "finish"} <= set(failed)


def test_a_store_opens_while_another_process_holds_the_whole_file_for_a_moment(
    sqlite_factory: StoreFactory,
) -> None:
    sqlite_factory().close()  # the file exists, in WAL mode, and no connection is open
    with sqlite_factory.lock_held(0.3, readers_too=True):
        store = open_store(sqlite_factory.location)
    assert store.counts() is not None
    store.close()


def test_a_store_that_cannot_open_within_the_budget_says_the_file_is_locked(
    sqlite_factory: StoreFactory,
) -> None:
    sqlite_factory().close()
    with (
        sqlite_factory.lock_held(60, readers_too=True),
        pytest.raises(StoreUnavailable, match="stayed locked") as caught,
    ):
        SqliteStore(str(sqlite_factory.location.path), lock_wait=BUDGET)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
