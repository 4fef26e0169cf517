"""Messages that say what to do, through the real executable: global options after the
command, and usage errors with a hint (exit 2, an `Error:` line, user input escaped)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import CliResult, assert_error, postgres_cli_url

JOB = '{"id": "j1", "command": "true"}'


def _error_line(result: CliResult) -> str:
    assert_error(result, 2)
    last = result.stderr.splitlines()[-1]
    assert last.startswith("Error: "), result.stderr
    return last


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


# --- hints ----------------------------------------------------------------------------------


def test_a_shell_command_instead_of_json(run_cli: Callable[..., CliResult]) -> None:
    error = _error_line(run_cli("enqueue", "echo hello"))
    assert """'{"command": "echo hello"}'""" in error
    assert "queuectl add -- echo hello" in error


def test_a_command_needing_quotes_is_quoted_in_the_hint(run_cli: Callable[..., CliResult]) -> None:
    error = _error_line(run_cli("enqueue", "tar czf b.tgz data | wc -c"))
    assert """'{"command": "tar czf b.tgz data | wc -c"}'""" in error
    assert "queuectl add -- 'tar czf b.tgz data | wc -c'" in error


def test_json_that_is_not_an_object(run_cli: Callable[..., CliResult]) -> None:
    error = _error_line(run_cli("enqueue", "42"))
    assert 'the job must be a JSON object, such as \'{"command": ' in error


def test_the_hint_escapes_what_it_quotes(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("enqueue", "echo \x1b[31mred")
    error = _error_line(result)
    assert "\x1b" not in result.stderr
    assert "\\x1b" in error or "\\u001b" in error


@pytest.mark.parametrize(
    "argv",
    [
        ["enqueue", "{command:", "echo", "hi}"],  # {"command": echo hi} unquoted in bash
        ["enqueue", "echo", "hello"],
        ["enqueue", "--json", "echo", "hello"],
    ],
    ids=" ".join,
)
def test_words_split_by_the_shell(argv: list[str], run_cli: Callable[..., CliResult]) -> None:
    result = run_cli(*argv)
    error = _error_line(result)
    assert "single quotes" in error
    assert "queuectl add --" in error
    assert result.stderr.startswith("usage: queuectl enqueue"), result.stderr


def test_worker_count_as_a_word(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("worker", "start", "4")
    error = _error_line(result)
    assert "--count 4" in error
    assert result.stderr.startswith("usage: queuectl worker start"), result.stderr


def test_a_mistyped_option_suggests_the_nearest(run_cli: Callable[..., CliResult]) -> None:
    error = _error_line(run_cli("list", "--sate", "dead"))
    assert "did you mean --state?" in error


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["enqeue", JOB], "enqueue"),
        (["stauts"], "stats or status"),  # a swap, or a dropped letter
        (["--db", "x.db", "lsit"], "list"),
        (["worker", "strat"], "start"),
        (["dlq", "rety", "j1"], "retry"),
        (["completion", "bsh"], "bash"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else value,
)
def test_a_mistyped_command_suggests_the_nearest(
    argv: list[str], suggestion: str, run_cli: Callable[..., CliResult]
) -> None:
    error = _error_line(run_cli(*argv))
    assert f"did you mean {suggestion}?" in error


@pytest.mark.parametrize("argv", [["worker", "xyz"], ["worker", "rn"], ["worker"]], ids=" ".join)
def test_the_hidden_worker_run_is_never_offered(
    argv: list[str], run_cli: Callable[..., CliResult]
) -> None:
    result = run_cli(*argv)
    _error_line(result)
    assert "run" not in result.stderr.replace("queuectl", ""), result.stderr


def test_an_unknown_command_lists_the_commands(run_cli: Callable[..., CliResult]) -> None:
    error = _error_line(run_cli("frobnicate"))
    assert "unknown command 'frobnicate'" in error
    assert "enqueue" in error and "doctor" in error


def test_an_array_of_jobs_points_to_file(run_cli: Callable[..., CliResult]) -> None:
    error = _error_line(run_cli("enqueue", '[{"command": "true"}]'))
    assert "--file" in error


def test_a_command_option_given_to_add_without_double_dash(
    run_cli: Callable[..., CliResult],
) -> None:
    """`add ls -l`: -l is the command's, not add's; the error says where it goes, and
    nothing is enqueued."""
    error = _error_line(run_cli("add", "ls", "-l"))
    assert "queuectl add -- ls -l" in error
    assert json.loads(run_cli("list", "--json").stdout) == []
