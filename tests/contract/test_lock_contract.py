"""A lock held for a moment by another session: every store method waits it out.

Another program (the sqlite3 shell, psql, a backup tool) or a connection of
our own (SQLite: one checkpointing the WAL as it closes) may hold the
database's lock for a while. Methods called meanwhile wait and then succeed;
none may fail, least of all with a raw driver exception. What happens past
the wait budget is backend-specific (tests/sqlite/test_lock_budget.py).
"""

from __future__ import annotations

from pathlib import Path

from queuectl.errors import OperationFailed
from tests.contract.store_calls import every_call, interface_methods, prepare
from tests.stores import StoreFactory

# Long enough for a waiter to meet the lock several times, short for the suite.
HOLD = 0.15


def test_every_method_waits_out_a_lock_held_by_another_session(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    store = store_factory()
    calls = every_call(store, tmp_path, prepare(store))
    assert {name for name, _call in calls} == interface_methods()
    for name, call in calls:
        with store_factory.lock_held(HOLD):
            try:
                call()
            except OperationFailed as exc:
                if name == "backup" and store_factory.backend == "postgresql":
                    continue  # not offered on PostgreSQL, lock or not
                raise AssertionError(f"{name} failed under a lock held {HOLD}s: {exc}") from exc
