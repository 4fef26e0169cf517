"""What every command needs: the store the user pointed at."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from queuectl.paths import resolve_database
from queuectl.store import open_store

if TYPE_CHECKING:
    from queuectl.store.base import Store


def open_cli_store(args: argparse.Namespace) -> Store:
    """The store named by --db / QUEUECTL_DB / QUEUECTL_HOME, created or migrated as needed."""
    return open_store(resolve_database(args.db))
