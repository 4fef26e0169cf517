"""Fixtures of the SQLite-only tests: a store on a fresh file, with a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from queuectl.store.sqlite import SqliteStore
from tests.helpers import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The store's file, in a directory the store must create."""
    return tmp_path / "data" / "queue.db"


@pytest.fixture
def store(db_path: Path, clock: Clock) -> Iterator[SqliteStore]:
    """SQLite only (this folder's tests), on the injected clock: not the contract's `store`."""
    store = SqliteStore(db_path, clock=clock)
    yield store
    store.close()
