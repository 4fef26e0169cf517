"""Storage: one interface (base.Store), one implementation per backend."""

from __future__ import annotations

from queuectl.errors import StoreUnavailable
from queuectl.paths import DatabaseLocation, resolve_database

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see queuectl.records)
if TYPE_CHECKING:  # the Protocol class is costly to build at start-up
    from collections.abc import Callable

    from queuectl.store.base import Producer, Store

__all__ = ["Producer", "Store", "open_producer", "open_store"]


def open_store(
    location: DatabaseLocation | None = None,
    *,
    durable: bool = True,
    reconnect_until: Callable[[], bool] | None = None,
) -> Store:
    """Open (creating or migrating as needed) the store at `location`.

    `durable=False` lets a worker's own bookkeeping skip the fsync per commit:
    a power loss can then at worst re-run a job. Enqueues always sync.
    `reconnect_until` (a worker's stop flag) makes a PostgreSQL store wait out an
    outage of any length, until it returns True; without it an operation fails
    after a minute without a connection.
    """
    location = location or resolve_database()
    if location.kind == "postgresql":
        try:
            from queuectl.store.postgres import PostgresStore  # psycopg only when asked for
        except ModuleNotFoundError as exc:
            if (exc.name or "").partition(".")[0] != "psycopg":
                raise
            raise StoreUnavailable(
                f"{location.url} is a PostgreSQL database, and PostgreSQL support is not "
                "installed: pip install 'queuectl[postgres]'"
            ) from None
        assert location.dsn is not None
        if reconnect_until is None:
            return PostgresStore(location.dsn, display_url=location.url)
        return PostgresStore(
            location.dsn,
            display_url=location.url,
            give_up_after=None,
            stop_waiting=reconnect_until,
        )
    from queuectl.store.sqlite import SqliteStore

    assert location.path is not None
    return SqliteStore(location.path, durable=durable)


def open_producer(location: DatabaseLocation | None = None) -> Producer:
    """Like open_store, for enqueueing only: on SQLite, without the rest of the store's imports.

    One `queuectl enqueue` process per job is a common pattern, so its start-up
    counts: see sqlite_producer.py.
    """
    location = location or resolve_database()
    if location.kind == "postgresql":
        return open_store(location)
    from queuectl.store.sqlite_producer import SqliteProducer

    assert location.path is not None
    return SqliteProducer(location.path)


def __getattr__(name: str) -> object:
    """`from queuectl.store import Store` still works, without the start-up cost."""
    if name in ("Producer", "Store"):
        from queuectl.store import base

        return getattr(base, name)
    raise AttributeError(name)
