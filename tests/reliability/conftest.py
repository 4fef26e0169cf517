"""Fixtures of the reliability suites."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.worker_helpers import Queue, fresh_queue


@pytest.fixture
def queue(queuectl_home: Path, tmp_path: Path) -> Iterator[Queue]:
    """A queue with the fast settings (lease 2 s, poll 0.2 s, backoff base 1); on exit every
    worker is stopped and every process of the home killed."""
    with fresh_queue(queuectl_home, tmp_path / "files") as q:
        yield q
