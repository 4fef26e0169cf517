"""SqliteProducer on its own (what `queuectl enqueue` opens): the same file, schema and rows
as SqliteStore, its write transactions, and the page cache of big batches."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from queuectl.domain import JobState
from queuectl.errors import DuplicateJob
from queuectl.store import open_producer
from queuectl.store.sqlite import SqliteStore
from queuectl.store.sqlite_producer import _BIG_BATCH_JOBS, SqliteProducer
from queuectl.store.sqlite_schema import LATEST_VERSION
from tests.helpers import new_job


def test_a_producer_creates_the_schema_and_a_store_sees_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "data" / "queue.db"
    producer = SqliteProducer(path)
    assert producer.config().max_retries == 3
    assert producer.enqueue([new_job("a"), new_job("b", env={"K": "v"})]) == ["a", "b"]
    producer.close()
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    store = SqliteStore(path)
    try:
        assert [job.id for job in store.list_jobs()] == ["a", "b"]
        assert store.get_job("b").env == {"K": "v"}  # type: ignore[union-attr]
        assert store.counts()[JobState.PENDING] == 2
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION


def test_open_producer_is_the_lean_class_for_sqlite(tmp_path: Path) -> None:
    from queuectl.paths import resolve_database

    producer = open_producer(resolve_database(str(tmp_path / "q.db")))
    try:
        assert type(producer) is SqliteProducer
    finally:
        producer.close()


def test_a_failed_write_rolls_back_and_frees_the_writers_turn(tmp_path: Path) -> None:
    producer = SqliteProducer(tmp_path / "q.db")
    try:
        with pytest.raises(RuntimeError), producer._write() as conn:
            conn.execute("INSERT INTO config (key, value) VALUES ('max_retries', '7')")
            raise RuntimeError("in the middle")
        assert not producer._conn.in_transaction
        assert producer.config().max_retries == 3
        # The turn lock was released: the next write goes through at once.
        with producer._write() as conn:
            conn.execute("INSERT INTO config (key, value) VALUES ('max_retries', '5')")
        assert producer.stored_config() == {"max_retries": "5"}
    finally:
        producer.close()


@pytest.mark.parametrize("duplicate", [False, True], ids=["stored", "duplicate"])
def test_a_big_batch_gives_its_page_cache_back(tmp_path: Path, duplicate: bool) -> None:
    producer = SqliteProducer(tmp_path / "q.db")
    try:
        producer.enqueue([new_job("taken")])
        before = producer._conn.execute("PRAGMA cache_size").fetchone()[0]
        jobs = [new_job(f"j{n}") for n in range(_BIG_BATCH_JOBS + 1)]
        if duplicate:
            jobs[-1] = new_job("taken")
            with pytest.raises(DuplicateJob, match="'taken'"):
                producer.enqueue(jobs)
        else:
            assert len(producer.enqueue(jobs)) == _BIG_BATCH_JOBS + 1
        assert producer._conn.execute("PRAGMA cache_size").fetchone()[0] == before
        count = producer._conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        assert count == (1 if duplicate else _BIG_BATCH_JOBS + 2)
    finally:
        producer.close()
