"""Upgrades: a database of every earlier schema (and the original system's) migrates with
every job kept. Each fixture in tests/fixtures was written by that version of the code."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from queuectl.store.sqlite_schema import LATEST_VERSION
from tests.helpers import run_cli

FIXTURES = Path(__file__).parent.parent / "fixtures"


def _home_with(fixture: str, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    shutil.copy(FIXTURES / fixture, home / "queue.db")
    return {"QUEUECTL_HOME": str(home)}


def _jobs(env: dict[str, str]) -> dict[str, dict[str, object]]:
    result = run_cli("list", "--json", env=env)
    assert result.returncode == 0, result
    return {job["id"]: job for job in json.loads(result.stdout)}


def _version(env: dict[str, str]) -> int:
    conn = sqlite3.connect(Path(env["QUEUECTL_HOME"]) / "queue.db")
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def test_schema_1_migrates_with_jobs_runs_output_and_settings(tmp_path: Path) -> None:
    env = _home_with("schema-v1.db", tmp_path)
    jobs = _jobs(env)
    assert {job_id: job["state"] for job_id, job in jobs.items()} == {
        "done": "completed",
        "failing": "failed",
        "dead": "dead",
        "running": "processing",
        "waiting": "pending",
        "odd'id;": "pending",
    }
    assert _version(env) == LATEST_VERSION
    show = json.loads(run_cli("show", "done", "--json", env=env).stdout)
    assert [run["n"] for run in show["runs"]] == [1]
    assert run_cli("logs", "done", env=env).stdout == "hello\n"
    assert run_cli("config", "get", "backoff_base", env=env).stdout.strip() == "3"
    assert jobs["waiting"]["env"] == {"SECRET": "***"}
    # The migrated queue works: the lost `running` job is recovered, the rest run.
    assert run_cli("config", "set", "lease_seconds", "1", env=env).returncode == 0
    assert run_cli("dlq", "retry", "dead", env=env).returncode == 0
    result = run_cli("worker", "run", "--burst", env=env, timeout=60)
    assert result.returncode == 0, result
    after = _jobs(env)
    assert after["waiting"]["state"] == "completed"
    assert after["odd'id;"]["state"] == "completed"


@pytest.mark.parametrize("fixture", ["original-system.db"])
def test_the_original_systems_database_migrates(fixture: str, tmp_path: Path) -> None:
    env = _home_with(fixture, tmp_path)
    jobs = _jobs(env)
    assert {job_id: job["state"] for job_id, job in jobs.items()} == {
        "job1": "completed",
        "flaky": "failed",
        "gone": "dead",
        "busy": "processing",
        "later": "pending",
    }
    assert [jobs[j]["attempts"] for j in ("job1", "flaky", "gone")] == [1, 1, 3]
    assert _version(env) == LATEST_VERSION
    settings = json.loads(run_cli("config", "list", "--json", env=env).stdout)
    assert settings["max_retries"] == 4
    assert settings["backoff_base"] == 3  # the hyphenated key of the original system
    assert settings["backoff_max"] == 3600  # its invalid value was dropped
