"""What commands share: the store the user pointed at, and the workers alive on it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from queuectl.paths import resolve_database
from queuectl.store import open_store

if TYPE_CHECKING:
    from queuectl.domain import WorkerInfo
    from queuectl.store.base import Store


def open_cli_store(args: argparse.Namespace) -> Store:
    """The store named by --db / QUEUECTL_DB / QUEUECTL_HOME, created or migrated as needed."""
    return open_store(resolve_database(args.db))


def live_workers(store: Store, registered: list[WorkerInfo] | None = None) -> list[WorkerInfo]:
    """Workers that heart-beat within the lease: what `status` lists, `wait` counts and
    `worker stop --all-hosts` stops on other hosts. `registered`: the store's list of
    workers, if the caller has it already.

    A worker killed without a chance to unregister counts until its lease runs out.
    """
    lease = store.config().lease_seconds
    now = store.now()
    workers = store.list_workers() if registered is None else registered
    return [w for w in workers if (now - w.heartbeat_at).total_seconds() < lease]
