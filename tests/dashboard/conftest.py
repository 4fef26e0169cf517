"""Fixtures of the dashboard tests. Each module starts its own `server` (module-scoped, with
its own token and worker); `store` opens on whichever server the requesting module has."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from queuectl.store.insights import InsightsStore
from tests.dashboard.server import DashboardServer


@pytest.fixture
def store(server: DashboardServer) -> Iterator[InsightsStore]:
    store = server.store()
    yield store
    store.close()
