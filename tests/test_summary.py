"""The test run's summary fits on a screen: skips are counted by reason, not listed one by one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_skips_are_summarised_by_reason() -> None:
    # Without a PostgreSQL URL every test of this module skips in its fixture, each at
    # its own line: pytest's -ra listed one line per test.
    env = {k: v for k, v in os.environ.items() if k not in ("QUEUECTL_TEST_PG_URL", "CI")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/postgres/test_outage.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = int(re.search(r"(\d+) skipped", result.stdout).group(1))  # type: ignore[union-attr]
    assert skipped > 1, result.stdout
    assert "SKIPPED [" not in result.stdout, "skips are listed one by one"
    assert re.search(
        rf"^\s*{skipped}\s+QUEUECTL_TEST_PG_URL is not set: PostgreSQL outage tests skipped$",
        result.stdout,
        re.M,
    ), result.stdout
