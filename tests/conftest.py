"""Fixtures shared by every test: a private QUEUECTL_HOME, the CLI runner, the stores.

Fixtures only: what test modules import lives in tests/helpers.py and tests/stores.py."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from queuectl.paths import DatabaseLocation
from queuectl.store import Store
from tests import helpers
from tests.e2e.worker_helpers import Queue, fresh_queue
from tests.stores import StoreFactory, postgres_schema


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Skipped tests counted by reason: one line per reason, not one per test (pyproject's
    addopts leave skips out of pytest's own summary)."""
    reasons: collections.Counter[str] = collections.Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    if reasons:
        terminalreporter.write_sep("=", "skipped, by reason")
        for reason, count in reasons.most_common():
            terminalreporter.write_line(f"{count:5}  {reason}")


@pytest.fixture
def queuectl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh QUEUECTL_HOME (not created yet: queuectl must create it) and no QUEUECTL_DB."""
    home = tmp_path / "home"
    monkeypatch.setenv("QUEUECTL_HOME", str(home))
    monkeypatch.delenv("QUEUECTL_DB", raising=False)
    monkeypatch.delenv("QUEUECTL_DEBUG", raising=False)
    return home


@pytest.fixture
def run_cli(queuectl_home: Path) -> Callable[..., helpers.CliResult]:
    """Run the real `queuectl` executable in the test's own QUEUECTL_HOME."""
    return helpers.run_cli


@pytest.fixture
def queue(queuectl_home: Path, tmp_path: Path) -> Iterator[Queue]:
    """A SQLite queue in QUEUECTL_HOME, driven through the CLI, with the fast settings
    (lease 2 s, poll 0.2 s, backoff base 1); on exit every worker is stopped and every
    process of the home killed. Modules needing another kind of queue define their own."""
    with fresh_queue(queuectl_home, tmp_path / "files") as q:
        yield q


@pytest.fixture
def wait_until() -> Callable[..., object]:
    return helpers.wait_until


@pytest.fixture
def postgres_location() -> Iterator[DatabaseLocation]:
    """A fresh schema on the PostgreSQL test server (skipped without QUEUECTL_TEST_PG_URL)."""
    yield from postgres_schema()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Every backend: "sqlite" always, "postgresql" when QUEUECTL_TEST_PG_URL is set."""
    if request.param == "sqlite":
        path = tmp_path / "store" / "queue.db"
        factory = StoreFactory("sqlite", DatabaseLocation("sqlite", path, None, str(path)))
        yield factory
        factory.close_all()
        return
    for location in postgres_schema():
        factory = StoreFactory("postgresql", location)
        yield factory
        factory.close_all()


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    """A store on an empty database of each backend."""
    return store_factory()
