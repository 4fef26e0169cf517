"""A store per thread: SQLite connections must not cross threads, and the API's handlers
run in Starlette's thread pool."""

from __future__ import annotations

import threading

from queuectl.paths import DatabaseLocation
from queuectl.store import open_store
from queuectl.store.insights import InsightsStore, with_insights


class ThreadStores:
    """Opens the store once per thread that asks, and hands that thread the same one again.

    A pool thread that ends takes its store with it (the connection closes when the
    thread-local value is freed).
    """

    def __init__(self, location: DatabaseLocation) -> None:
        self.location = location
        self._local = threading.local()

    def get(self) -> InsightsStore:
        store: InsightsStore | None = getattr(self._local, "store", None)
        if store is None:
            store = with_insights(open_store(self.location))
            self._local.store = store
        return store
