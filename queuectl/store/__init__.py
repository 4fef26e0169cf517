"""Storage: one interface (base.Store), one implementation per backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from queuectl.paths import DatabaseLocation, resolve_database

if TYPE_CHECKING:  # the Protocol class is costly to build at start-up
    from queuectl.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(location: DatabaseLocation | None = None, *, durable: bool = True) -> Store:
    """Open (creating or migrating as needed) the store at `location`.

    `durable=False` lets a worker's own bookkeeping skip the fsync per commit:
    a power loss can then at worst re-run a job. Enqueues always sync.
    """
    location = location or resolve_database()
    if location.kind == "postgresql":
        from queuectl.store.postgres import PostgresStore  # psycopg only when asked for

        assert location.dsn is not None
        return PostgresStore(location.dsn, display_url=location.url)
    from queuectl.store.sqlite import SqliteStore

    assert location.path is not None
    return SqliteStore(location.path, durable=durable)


def __getattr__(name: str) -> object:
    """`from queuectl.store import Store` still works, without the start-up cost."""
    if name == "Store":
        from queuectl.store.base import Store

        return Store
    raise AttributeError(name)
