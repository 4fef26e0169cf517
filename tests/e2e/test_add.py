"""`queuectl add [OPTIONS] -- COMMAND...` through the real executable, on both backends.

What `add` stores is read back with `show --json`, as a user would check it. The
job spec rules themselves are queuectl/spec.py's (tests/unit/test_spec.py); here:
that every option lands in its field, how the command words are joined, what
`--at` means without a zone, durations, and that bad input writes nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CliResult, assert_error, parse_ts
from tests.reliability.helpers import cli_database
from tests.stores import StoreFactory

Cli = Callable[..., CliResult]


class Queue:
    """The CLI on one test database of either backend."""

    def __init__(self, run_cli: Cli, env: dict[str, str]) -> None:
        self._run_cli = run_cli
        self.env = env

    def cli(self, *args: str, env: dict[str, str] | None = None, **kwargs: Any) -> CliResult:
        return self._run_cli(*args, env={**self.env, **(env or {})}, **kwargs)

    def add(self, *args: str, **kwargs: Any) -> str:
        """`add ARGS`, which must succeed; the id it printed."""
        result = self.cli("add", *args, **kwargs)
        assert result.returncode == 0, result
        assert result.stderr == "", result
        return result.stdout.strip()

    def job(self, job_id: str) -> dict[str, Any]:
        result = self.cli("show", job_id, "--json", "--show-env")
        assert result.returncode == 0, result
        return dict(json.loads(result.stdout))

    def ids(self) -> list[str]:
        result = self.cli("list", "--json")
        assert result.returncode == 0, result
        return [job["id"] for job in json.loads(result.stdout)]


@pytest.fixture
def queue(run_cli: Cli, store_factory: StoreFactory) -> Iterator[Queue]:
    location = store_factory.location
    if location.path is not None:
        location.path.parent.mkdir(parents=True, exist_ok=True)
    yield Queue(run_cli, {"QUEUECTL_DB": cli_database(location)})


@pytest.fixture
def sqlite_queue(run_cli: Cli, queuectl_home: Path) -> Queue:
    """The default database in the test's QUEUECTL_HOME: where the store does not matter."""
    return Queue(run_cli, {})


def test_one_word_is_the_shell_command_as_written(queue: Queue) -> None:
    job_id = queue.add("--", "make && make test > 'out file'")
    assert queue.job(job_id)["command"] == "make && make test > 'out file'"


def test_several_words_are_joined_as_a_shell_would_quote_them(queue: Queue) -> None:
    job_id = queue.add("--", "touch", "my file", "it's", "$HOME", "plain")
    assert queue.job(job_id)["command"] == "touch 'my file' 'it'\"'\"'s' '$HOME' plain"


def test_the_quoted_words_reach_the_command_as_they_were(
    sqlite_queue: Queue, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    sqlite_queue.add("--cwd", str(work), "--", "touch", "my file")
    ran = sqlite_queue.cli("worker", "run", "--burst")
    assert ran.returncode == 0, ran
    assert sorted(os.listdir(work)) == ["my file"]


@pytest.mark.parametrize(
    ("words", "command"),
    [
        (["echo", "hi"], "echo hi"),  # no `--`: accepted while no word looks like an option
        (["--", "echo", "-n", "hi"], "echo -n hi"),
        (["--", "echo", "--", "--json"], "echo -- --json"),  # only the first `--` is add's
        (["--priority", "2", "echo", "hi"], "echo hi"),
        (["--priority", "-2", "--", "echo"], "echo"),  # a negative number is a value
    ],
)
def test_the_command_with_or_without_double_dash(
    sqlite_queue: Queue, words: list[str], command: str
) -> None:
    assert sqlite_queue.job(sqlite_queue.add(*words))["command"] == command


def test_every_option_lands_in_the_stored_job(queue: Queue, tmp_path: Path) -> None:
    before = datetime.now(timezone.utc)
    job_id = queue.add(
        "--id",
        "build-1",
        "--priority",
        "-7",
        "--delay",
        "10m",
        "--timeout",
        "1.5h",
        "--max-retries",
        "5",
        "--cwd",
        str(tmp_path),
        "--env",
        "A=1",
        "--env",
        "B=x=y",  # the value is everything after the first "="
        "--env",
        "EMPTY=",
        "--",
        "make",
        "all",
    )
    after = datetime.now(timezone.utc)
    assert job_id == "build-1"
    job = queue.job(job_id)
    assert {key: job[key] for key in ("command", "priority", "timeout", "max_retries", "cwd")} == {
        "command": "make all",
        "priority": -7,
        "timeout": 5400,
        "max_retries": 5,
        "cwd": str(tmp_path),
    }
    assert job["env"] == {"A": "1", "B": "x=y", "EMPTY": ""}
    run_at = parse_ts(job["run_at"])
    assert before + timedelta(minutes=10) <= run_at <= after + timedelta(minutes=10)


def test_defaults_are_those_of_enqueue(queue: Queue, tmp_path: Path) -> None:
    assert queue.cli("config", "set", "max_retries", "4").returncode == 0
    assert queue.cli("config", "set", "job_timeout", "30s").returncode == 0  # a duration too
    added = queue.job(queue.add("--", "true", cwd=tmp_path))
    enqueued_id = queue.cli("enqueue", '{"command": "true"}', cwd=tmp_path).stdout.strip()
    enqueued = queue.job(enqueued_id)
    for key in ("max_retries", "timeout", "priority", "cwd", "env", "state", "attempts"):
        assert added[key] == enqueued[key], key
    assert (added["max_retries"], added["timeout"], added["cwd"]) == (4, 30, str(tmp_path))


def test_a_relative_cwd_is_taken_from_where_add_runs(sqlite_queue: Queue, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    job_id = sqlite_queue.add("--cwd", "sub", "--", "true", cwd=tmp_path)
    assert sqlite_queue.job(job_id)["cwd"] == str(tmp_path / "sub")


@pytest.mark.parametrize(
    ("at", "run_at"),
    [
        # No zone: the local time of the machine running `add` (UTC+05:30 here).
        ("2030-06-01T12:00", "2030-06-01T06:30:00.000000Z"),
        ("2030-06-01 12:00:00", "2030-06-01T06:30:00.000000Z"),
        ("2030-06-01", "2030-05-31T18:30:00.000000Z"),
        ("2030-06-01T12:00:00Z", "2030-06-01T12:00:00.000000Z"),
        ("2030-06-01T12:00:00+02:00", "2030-06-01T10:00:00.000000Z"),
    ],
)
def test_at_without_a_zone_is_local_time(queue: Queue, at: str, run_at: str) -> None:
    job_id = queue.add("--at", at, "--", "true", env={"TZ": "Asia/Kolkata"})
    assert queue.job(job_id)["run_at"] == run_at


def test_json_run_at_without_a_zone_stays_utc(queue: Queue) -> None:
    spec = '{"id": "j", "command": "true", "run_at": "2030-06-01T12:00"}'
    assert queue.cli("enqueue", spec, env={"TZ": "Asia/Kolkata"}).returncode == 0
    assert queue.job("j")["run_at"] == "2030-06-01T12:00:00.000000Z"


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("90", 90), ("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1.5h", 5400)],
)
def test_durations(sqlite_queue: Queue, duration: str, seconds: int) -> None:
    job = sqlite_queue.job(sqlite_queue.add("--timeout", duration, "--", "true"))
    assert job["timeout"] == seconds


def test_json_prints_the_id_as_enqueue_json_does(queue: Queue) -> None:
    result = queue.cli("add", "--json", "--id", "j1", "--", "true")
    assert (result.returncode, result.stdout, result.stderr) == (0, '["j1"]\n', "")
    generated = queue.cli("add", "--json", "--", "true")
    assert generated.returncode == 0, generated
    (job_id,) = json.loads(generated.stdout)
    assert queue.job(job_id)["command"] == "true"


INVALID = [
    ["--"],  # no command
    [],
    ["--", ""],  # a blank command
    ["--", "  "],
    ["--delay", "5x", "--", "true"],
    ["--delay", "-5", "--", "true"],
    ["--delay", "1e3", "--", "true"],
    ["--timeout", "m", "--", "true"],
    ["--timeout", "200y", "--", "true"],
    ["--delay", "1m", "--at", "2030-06-01T12:00", "--", "true"],
    ["--at", "tomorrow", "--", "true"],
    ["--at", "2030-13-01", "--", "true"],
    ["--priority", "high", "--", "true"],
    ["--priority", "1.5", "--", "true"],
    ["--max-retries", "-1", "--", "true"],
    ["--max-retries", "x", "--", "true"],
    ["--env", "NOVALUE", "--", "true"],
    ["--env", "=v", "--", "true"],
    ["--id", "has space", "--", "true"],
    ["--id", "-x", "--", "true"],
    ["--queue", "q", "--", "true"],  # a field of a later issue: not an option yet
    ["--tag", "t", "--", "true"],
    ["--bogus", "--", "true"],
    ["echo", "-n", "hi"],  # a word like an option after the command needs `--` first
    ["--priority"],
]


@pytest.mark.parametrize("args", INVALID, ids=lambda args: " ".join(args) or "(none)")
def test_invalid_input_is_exit_2_and_writes_nothing(queue: Queue, args: list[str]) -> None:
    assert_error(queue.cli("add", *args), 2)
    assert queue.ids() == []


def test_a_duplicate_id_is_exit_2_and_keeps_the_first(queue: Queue) -> None:
    queue.add("--id", "once", "--", "echo first")
    assert_error(queue.cli("add", "--id", "once", "--", "echo second"), 2)
    assert queue.ids() == ["once"]
    assert queue.job("once")["command"] == "echo first"


def test_an_unreachable_database_is_exit_1(run_cli: Cli) -> None:
    result = run_cli("add", "--", "true", env={"QUEUECTL_DB": "postgresql://u@127.0.0.1:1/q"})
    assert_error(result, 1)


@pytest.mark.parametrize("timeout", ["2m", "1.5h", "90s", "1"])
def test_wait_timeout_takes_a_duration(sqlite_queue: Queue, timeout: str) -> None:
    sqlite_queue.add("--id", "j", "--", "true")
    assert sqlite_queue.cli("worker", "run", "--burst").returncode == 0
    waited = sqlite_queue.cli("wait", "j", "--timeout", timeout)
    assert waited.returncode == 0, waited


def test_worker_stop_timeout_takes_a_duration(sqlite_queue: Queue) -> None:
    stopped = sqlite_queue.cli("worker", "stop", "--timeout", "1m")
    assert stopped.returncode == 0, stopped


@pytest.mark.parametrize(
    "args",
    [
        ["wait", "j", "--timeout", "5x"],
        ["worker", "stop", "--timeout", "soon"],
        ["purge", "--older-than", "1e3"],
        ["stats", "--since", "-1h"],
    ],
)
def test_a_bad_duration_in_any_flag_is_exit_2(sqlite_queue: Queue, args: list[str]) -> None:
    assert_error(sqlite_queue.cli(*args), 2)
