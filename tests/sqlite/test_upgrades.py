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


def _status_counts(env: dict[str, str]) -> dict[str, int]:
    result = run_cli("status", "--json", env=env)
    assert result.returncode == 0, result
    return dict(json.loads(result.stdout)["jobs"])


def test_schema_2_migrates_and_keeps_counting_every_job(tmp_path: Path) -> None:
    # Schema 3 counts new pending jobs in the enqueue statement instead of a trigger.
    env = _home_with("schema-v2.db", tmp_path)
    assert _status_counts(env) == {
        "pending": 2, "processing": 0, "completed": 1, "failed": 0, "dead": 1, "total": 4
    }  # fmt: skip
    assert _version(env) == LATEST_VERSION
    assert run_cli("enqueue", '{"id":"new","command":"true"}', env=env).returncode == 0
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(f'{{"command":"exit {n % 2}","max_retries":1}}\n' for n in range(6)))
    assert run_cli("enqueue", "--file", str(jobs), env=env).returncode == 0
    assert _status_counts(env)["pending"] == 9
    # A duplicate in a batch adds nothing, to the jobs or to the counts.
    jobs.write_text('{"command":"true"}\n{"id":"new","command":"true"}\n')
    assert run_cli("enqueue", "--file", str(jobs), env=env).returncode == 2
    assert _status_counts(env)["pending"] == 9
    assert run_cli("worker", "run", "--burst", env=env, timeout=60).returncode == 0
    listed = _jobs(env)
    counted = _status_counts(env)
    for state in ("pending", "processing", "completed", "failed", "dead"):
        assert counted[state] == sum(job["state"] == state for job in listed.values()), state
    assert counted == {
        "pending": 1, "processing": 0, "completed": 6, "failed": 0, "dead": 4, "total": 11
    }  # fmt: skip


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
