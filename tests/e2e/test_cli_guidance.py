"""Messages that say what to do, through the real executable: global options after the
command, and usage errors with a hint (exit 2, an `Error:` line, user input escaped)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import CliResult, postgres_cli_url

JOB = '{"id": "j1", "command": "true"}'


# --- global options ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "enqueue",
    [
        ["enqueue", "--db", "{db}", JOB],  # main's fast path
        ["enqueue", JOB, "--db", "{db}"],
        ["enqueue", "--json", JOB, "--db={db}"],  # argparse
    ],
    ids=["db-first", "db-last", "db-equals"],
)
def test_db_after_the_command(
    enqueue: list[str], run_cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    db = str(tmp_path / "elsewhere.db")
    result = run_cli(*(arg.replace("{db}", db) for arg in enqueue))
    assert result.returncode == 0, result
    assert "j1" in result.stdout
    listed = run_cli("list", "--db", db, "--json")
    assert listed.returncode == 0, listed
    assert [job["id"] for job in json.loads(listed.stdout)] == ["j1"]
    for argv in (
        ["status", "--db", db],
        ["dlq", "list", "--db", db],
        ["config", "list", "--db", db],
    ):
        assert run_cli(*argv).returncode == 0, argv
    assert run_cli("--db", db, "show", "j1").returncode == 0
    assert not (tmp_path / "home" / "queue.db").exists(), "--db after the command was ignored"


def test_debug_after_the_command(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("show", "no-such-job", "--debug")
    assert result.returncode == 1, result
    assert "Traceback" in result.stderr, "--debug after the command shows no traceback"


def test_db_after_the_command_on_postgresql(run_cli: Callable[..., CliResult]) -> None:
    for url in postgres_cli_url("queuectl_cli_guidance"):
        assert run_cli("enqueue", JOB, "--db", url).stdout == "j1\n"
        listed = run_cli("list", "--json", "--db", url)
        assert listed.returncode == 0, listed
        assert [job["id"] for job in json.loads(listed.stdout)] == ["j1"]
