"""What every command needs: the store the user pointed at."""

from __future__ import annotations

from queuectl.paths import resolve_database
from queuectl.store import open_producer, open_store

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see queuectl.records)
if TYPE_CHECKING:
    import argparse

    from queuectl.store.base import Producer, Store


def open_cli_store(args: argparse.Namespace) -> Store:
    """The store named by --db / QUEUECTL_DB / QUEUECTL_HOME, created or migrated as needed."""
    return open_store(resolve_database(args.db))


def open_cli_producer(db: str | None) -> Producer:
    """The same for `enqueue`, given its --db value: the part of the store it needs."""
    return open_producer(resolve_database(db))
