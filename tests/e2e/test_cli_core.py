"""The core commands through the real `queuectl` executable, each test in its own
QUEUECTL_HOME: everything that needs no worker process (jobs are moved through their
states in-process with the store where a test needs runs, dead jobs or workers)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import stat
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import queuectl
from queuectl.cli.main import main as cli_main
from queuectl.domain import RecoveredJob
from queuectl.store.sqlite import SqliteStore
from tests.helpers import (
    CONFIG_KEYS,
    ISO_Z,
    JOB_KEYS,
    RUN_KEYS,
    SUCCESS,
    WORKER_KEYS,
    CliResult,
    assert_error,
    fail,
    ids_of,
    live_worker_info,
    parse_ts,
    run_cli,
    run_cli_concurrently,
    table_rows,
    worker_info,
)

Cli = Callable[..., CliResult]
MIB = 1024 * 1024


@pytest.fixture
def db(queuectl_home: Path) -> Path:
    return queuectl_home / "queue.db"


def ok(result: CliResult) -> CliResult:
    assert result.returncode == 0, result
    assert "Traceback" not in result.stderr, result
    return result


def json_out(result: CliResult) -> Any:
    """--json: stdout holds only the JSON document."""
    return json.loads(ok(result).stdout)


def _lines(specs: list[dict[str, Any]]) -> str:
    """JSON Lines for `enqueue --file -`."""
    return "".join(json.dumps(spec) + "\n" for spec in specs)


def open_store(path: Path) -> SqliteStore:
    return SqliteStore(path)


def make_dead(path: Path, job_id: str) -> None:
    """Fail `job_id` (which must be next in claim order and have one run) into the DLQ."""
    store = open_store(path)
    try:
        store.register_worker(worker_info("test-worker"))
        claim = store.claim("test-worker")
        assert claim is not None and claim.job.id == job_id
        assert store.finish(claim, fail(3)).recorded
        assert store.get_job(job_id).state.value == "dead"  # type: ignore[union-attr]
    finally:
        store.close()


# --- enqueue ------------------------------------------------------------------------------


def test_enqueue_with_an_id_prints_it(run_cli: Cli) -> None:
    result = ok(run_cli("enqueue", '{"id": "job1", "command": "echo hi"}'))
    assert result.stdout == "job1\n"
    (job,) = json_out(run_cli("list", "--json"))
    assert (job["id"], job["command"], job["state"]) == ("job1", "echo hi", "pending")


def test_enqueue_without_an_id_prints_the_generated_one(run_cli: Cli, tmp_path: Path) -> None:
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    result = ok(run_cli("enqueue", '{"command": "echo hi"}', cwd=workdir))
    job_id = result.stdout.strip()
    assert re.fullmatch(r"\S{1,200}", job_id)
    assert result.stdout == job_id + "\n"
    job = json_out(run_cli("show", job_id, "--json"))
    assert job["id"] == job_id
    # cwd defaults to the directory enqueue ran in; max_retries and timeout to the config
    assert job["cwd"] == os.path.realpath(workdir)
    assert (job["max_retries"], job["timeout"], job["priority"]) == (3, 0, 0)


def test_enqueue_accepts_the_original_systems_whole_record(run_cli: Cli) -> None:
    record = {
        "id": "job1",
        "command": "sleep 2",
        "state": "pending",
        "attempts": 0,
        "max_retries": 3,
        "created_at": "2025-11-04T10:30:00Z",
        "updated_at": "2025-11-04T10:30:00Z",
    }
    assert ok(run_cli("enqueue", json.dumps(record))).stdout == "job1\n"


def test_enqueue_json_prints_the_id_array(run_cli: Cli) -> None:
    assert json_out(run_cli("enqueue", "--json", '{"id": "a", "command": "x"}')) == ["a"]


LINES = '{"id": "l1", "command": "echo 1"}\n\n{"command": "echo 2"}\n{"id": "l3", "command": "x"}\n'
ARRAY = (
    '[\n  {"id": "l1", "command": "echo 1"},\n  {"command": "echo 2"},\n'
    '  {"id": "l3", "command": "x"}\n]\n'
)


@pytest.mark.parametrize("content", [LINES, ARRAY], ids=["json-lines", "json-array"])
@pytest.mark.parametrize("source", ["path", "stdin"])
def test_enqueue_file(run_cli: Cli, tmp_path: Path, content: str, source: str) -> None:
    if source == "path":
        path = tmp_path / "jobs.txt"
        path.write_text(content)
        result = run_cli("enqueue", "--file", str(path))
    else:
        result = run_cli("enqueue", "--file", "-", input=content)
    assert ok(result).stdout == "3\n"
    jobs = json_out(run_cli("list", "--json"))
    assert [job["command"] for job in jobs] == ["echo 1", "echo 2", "x"]
    assert jobs[0]["id"] == "l1" and jobs[2]["id"] == "l3"


def test_enqueue_file_json_prints_every_id_in_order(run_cli: Cli) -> None:
    printed = json_out(run_cli("enqueue", "-f", "-", "--json", input=LINES))
    assert len(printed) == 3
    assert printed[0] == "l1" and printed[2] == "l3"
    assert printed == ids_of(json_out(run_cli("list", "--json")))


def test_a_one_mebibyte_command_is_accepted_through_a_file(run_cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({"id": "big", "command": "#" * MIB}) + "\n")
    assert ok(run_cli("enqueue", "--file", str(path))).stdout == "1\n"
    (job,) = json_out(run_cli("list", "--json"))
    assert len(job["command"]) == MIB  # --json never shortens


def test_enqueue_from_a_deleted_directory_needs_cwd_only_in_jobs_without_it(
    run_cli: Cli, tmp_path: Path
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    in_gone = f"cd {gone} && rmdir {gone}"  # the shell, then queuectl, stay in it

    ok(
        run_cli(
            "enqueue", '{"id": "given", "command": "true", "cwd": "/tmp"}', shell_prefix=in_gone
        )
    )
    gone.mkdir()
    batch = (
        '{"id": "b1", "command": "true", "cwd": "/"}\n{"id": "b2", "command": "true", "cwd": "/"}'
    )
    ok(run_cli("enqueue", "--file", "-", input=batch, shell_prefix=in_gone))

    gone.mkdir()
    refused = run_cli("enqueue", '{"id": "lacking", "command": "true"}', shell_prefix=in_gone)
    assert refused.returncode == 2, refused
    assert 'give "cwd"' in refused.stderr and "Traceback" not in refused.stderr
    gone.mkdir()
    mixed = '{"id": "m1", "command": "true", "cwd": "/"}\n{"id": "m2", "command": "true"}'
    refused = run_cli("enqueue", "--file", "-", input=mixed, shell_prefix=in_gone)
    assert refused.returncode == 2, refused
    assert "job 2:" in refused.stderr and 'give "cwd"' in refused.stderr

    listed = json_out(run_cli("list", "--json"))
    assert {job["id"]: job["cwd"] for job in listed} == {"given": "/tmp", "b1": "/", "b2": "/"}


def test_odd_id_round_trips(run_cli: Cli) -> None:
    odd = "a'b;\"c"
    assert ok(run_cli("enqueue", json.dumps({"id": odd, "command": "true"}))).stdout == odd + "\n"
    assert json_out(run_cli("show", odd, "--json"))["id"] == odd
    shown = ok(run_cli("show", odd)).stdout
    assert odd in shown
    (row,) = table_rows(ok(run_cli("list")).stdout)[1:]
    assert row[0] == odd


# --- bad input: Error line, exit code, no traceback, nothing changed ----------------------


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A home with a dead job, pending jobs and a setting, and its snapshot."""
    home = tmp_path_factory.mktemp("seeded") / "home"
    env = {"QUEUECTL_HOME": str(home), "QUEUECTL_DB": None, "QUEUECTL_DEBUG": None}
    specs = [
        {"id": "dead-one", "command": "false", "max_retries": 1, "priority": 100},
        {"id": "existing", "command": "echo hi", "env": {"TOKEN": "secret"}},
        {"id": "other", "command": "echo other", "delay": 3600},
    ]
    ok(run_cli("enqueue", "--file", "-", input=_lines(specs), env=env))
    make_dead(home / "queue.db", "dead-one")
    ok(run_cli("config", "set", "max_retries", "4", env=env))
    return home, _snapshot(env)


def _snapshot(env: dict[str, str | None] | None = None) -> dict[str, Any]:
    """What `list --json` and `config list --json` show."""
    jobs, config = run_cli_concurrently(["list", "--json"], ["config", "list", "--json"], env=env)
    return {"jobs": json_out(jobs), "config": json_out(config)}


class Bad(NamedTuple):
    """One refused command: argv ("{file}" stands for a file holding `file`), stdin, exit."""

    name: str
    argv: list[str]
    code: int = 2
    stdin: str | None = None
    file: str | None = None


def enqueue(spec: str) -> list[str]:
    return ["enqueue", spec]


BAD_INPUT = [
    Bad("malformed-json", enqueue('{"command": ')),
    Bad("command-not-string", enqueue('{"command": 5}')),
    Bad("max-retries-string", enqueue('{"command": "x", "max_retries": "3"}')),
    Bad("priority-bool", enqueue('{"command": "x", "priority": true}')),
    Bad("priority-over-64-bits", enqueue('{"command": "x", "priority": 9223372036854775808}')),
    Bad("huge-integer-literal", enqueue('{"command": "x", "priority": ' + "9" * 5000 + "}")),
    Bad("unknown-field", enqueue('{"command": "x", "retries": 3}')),
    Bad("blank-command", enqueue('{"command": "   "}')),
    Bad("nul-in-command", enqueue('{"command": "echo \\u0000"}')),
    Bad(
        "oversized-command",
        ["enqueue", "--file", "{file}"],
        file=json.dumps({"command": "x" * (MIB + 1)}),
    ),
    Bad("id-with-space", enqueue('{"id": "a b", "command": "x"}')),
    Bad("id-leading-dash", enqueue('{"id": "-x", "command": "x"}')),
    Bad("id-too-long", enqueue(json.dumps({"id": "i" * 201, "command": "x"}))),
    Bad("duplicate-id", enqueue('{"id": "existing", "command": "x"}')),
    Bad(
        "duplicate-id-in-batch",
        ["enqueue", "--file", "{file}"],
        file='{"id": "n1", "command": "a"}\n{"id": "n1", "command": "b"}\n',
    ),
    Bad(
        "existing-id-in-batch",
        ["enqueue", "--file", "-"],
        stdin='{"id": "n1", "command": "a"}\n{"id": "existing", "command": "b"}\n',
    ),
    Bad(
        "bad-job-in-batch",
        ["enqueue", "--file", "{file}"],
        file='[{"id": "n1", "command": "a"}, {"command": ""}]',
    ),
    Bad("empty-batch", ["enqueue", "--file", "-"], stdin="\n\n"),
    Bad("missing-file", ["enqueue", "--file", "/nonexistent/jobs.jsonl"]),
    Bad("job-and-file", ["enqueue", '{"command": "x"}', "--file", "-"], stdin=""),
    Bad("no-job", ["enqueue"]),
    Bad("run-at-and-delay", enqueue('{"command": "x", "run_at": "2030-01-01", "delay": 5}')),
    Bad("bad-run-at", enqueue('{"command": "x", "run_at": "tomorrow"}')),
    Bad("run-at-out-of-range", enqueue('{"command": "x", "run_at": "9999-12-31T23:59:59-01:00"}')),
    Bad("negative-delay", enqueue('{"command": "x", "delay": -1}')),
    Bad("env-not-strings", enqueue('{"command": "x", "env": {"A": 1}}')),
    Bad("legacy-state", enqueue('{"command": "x", "state": "completed"}')),
    Bad("duplicate-key", enqueue('{"command": "a", "command": "b"}')),
    Bad("nan", enqueue('{"command": "x", "timeout": NaN}')),
    Bad("deep-nesting", enqueue("[" * 20_000 + "]" * 20_000)),
    Bad("bad-state", ["list", "--state", "bogus"]),
    Bad("bad-limit-negative", ["list", "--limit", "-1"]),
    Bad("bad-limit-text", ["list", "--limit", "ten"]),
    Bad("unknown-config-key-set", ["config", "set", "retries", "3"]),
    Bad("unknown-config-key-get", ["config", "get", "retries"]),
    Bad("config-max-retries-negative", ["config", "set", "max_retries", "-1"]),
    Bad("config-backoff-base-below-1", ["config", "set", "backoff_base", "0.5"]),
    Bad("config-backoff-base-text", ["config", "set", "backoff-base", "abc"]),
    Bad("config-lease-below-1", ["config", "set", "lease_seconds", "0.5"]),
    Bad("dlq-retry-missing", ["dlq", "retry", "no-such-job"], code=1),
    Bad("dlq-retry-not-dead", ["dlq", "retry", "existing"], code=1),
    Bad("dlq-retry-dead-and-missing", ["dlq", "retry", "dead-one", "no-such-job"], code=1),
    Bad("dlq-retry-dead-and-pending", ["dlq", "retry", "dead-one", "existing"], code=1),
    Bad("dlq-retry-nothing", ["dlq", "retry"]),
    Bad("dlq-retry-ids-and-all", ["dlq", "retry", "dead-one", "--all"]),
    Bad("show-missing", ["show", "no-such-job"], code=1),
    Bad("unknown-command", ["frobnicate"]),
    Bad("no-command", []),
    Bad("unsupported-db-url", ["--db", "mysql://localhost/q", "enqueue", '{"command": "x"}']),
]


@pytest.mark.parametrize("case", [pytest.param(case, id=case.name) for case in BAD_INPUT])
def test_bad_input_is_refused_and_changes_nothing(
    seeded: tuple[Path, dict[str, Any]],
    queuectl_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: Bad,
) -> None:
    template, before = seeded
    shutil.copytree(template, queuectl_home)
    argv = case.argv
    if case.file is not None:
        path = tmp_path / "jobs.jsonl"
        path.write_text(case.file)
        argv = [str(path) if arg == "{file}" else arg for arg in argv]
    dump_before = _dump(queuectl_home / "queue.db")
    result = run_cli(*argv, input=case.stdin, cwd=tmp_path)
    assert_error(result, case.code)
    assert _snapshot_in_process(capsys) == before
    assert _dump(queuectl_home / "queue.db") == dump_before


def _snapshot_in_process(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The same two documents, from the CLI's own code run in this process: ~50 times
    cheaper than starting the executable, and `seeded` took the reference through it."""
    documents = []
    for argv in (["list", "--json"], ["config", "list", "--json"]):
        capsys.readouterr()
        assert cli_main(argv) == 0
        documents.append(json.loads(capsys.readouterr().out))
    return {"jobs": documents[0], "config": documents[1]}


def _dump(path: Path) -> list[str]:
    """Every row of every table: catches changes the JSON views do not show."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_enqueue_error_names_the_problem(run_cli: Cli) -> None:
    result = run_cli("enqueue", '{"command": "x", "retries": 3}')
    assert_error(result, 2)
    assert "retries" in result.stderr


# --- JSON shapes and tables ----------------------------------------------------------------


@pytest.fixture
def populated(run_cli: Cli, db: Path) -> Iterator[SqliteStore]:
    """Jobs in several states, a live worker holding one: the store stays open."""
    specs = [
        {"id": "dead", "command": "exit 3", "max_retries": 1, "priority": 9},
        {"id": "failing", "command": "exit 4", "priority": 8, "env": {"TOKEN": "hunter2"}},
        {"id": "busy", "command": "sleep 100", "priority": 7},
        {"id": "waiting", "command": "echo " + "long " * 40, "timeout": 2.5},
    ]
    ok(run_cli("enqueue", "--file", "-", input=_lines(specs)))
    store = open_store(db)
    store.register_worker(live_worker_info("w-test"))
    for _ in range(2):
        claim = store.claim("w-test")
        assert claim is not None
        assert store.finish(claim, fail(int(claim.job.command.split()[1]))).recorded
    assert store.claim("w-test").job.id == "busy"  # type: ignore[union-attr]
    store.heartbeat("w-test")
    yield store
    store.close()


def _check_job_shape(job: dict[str, Any]) -> None:
    assert set(job) >= JOB_KEYS
    for key in ("run_at", "created_at", "updated_at"):
        assert ISO_Z.match(job[key]), (key, job[key])
    assert isinstance(job["attempts"], int) and isinstance(job["max_retries"], int)
    assert isinstance(job["priority"], int)
    assert isinstance(job["timeout"], (int, float))
    assert all(value == "***" for value in job.get("env", {}).values())


def test_list_json_shape(run_cli: Cli, populated: SqliteStore) -> None:
    jobs = json_out(run_cli("list", "--json"))
    assert ids_of(jobs) == ["dead", "failing", "busy", "waiting"]  # oldest first
    for job in jobs:
        _check_job_shape(job)
    by_id = {job["id"]: job for job in jobs}
    assert by_id["dead"]["state"] == "dead" and by_id["dead"]["exit_code"] == 3
    assert by_id["failing"]["state"] == "failed"
    assert by_id["failing"]["last_error"] == "exited with code 4"
    assert by_id["failing"]["env"] == {"TOKEN": "***"}
    assert parse_ts(by_id["failing"]["run_at"]) > parse_ts(by_id["failing"]["updated_at"])
    assert by_id["busy"]["state"] == "processing" and by_id["busy"]["worker_id"] == "w-test"
    assert by_id["waiting"]["timeout"] == 2.5
    assert by_id["waiting"]["command"] == "echo " + "long " * 40  # never shortened
    assert by_id["waiting"]["exit_code"] is None and by_id["waiting"]["last_error"] is None


def test_list_state_and_limit(run_cli: Cli, populated: SqliteStore) -> None:
    assert ids_of(json_out(run_cli("list", "--state", "failed", "--json"))) == ["failing"]
    assert ids_of(json_out(run_cli("list", "-s", "DEAD", "--json"))) == ["dead"]
    assert ids_of(json_out(run_cli("list", "--limit", "2", "--json"))) == ["dead", "failing"]
    assert json_out(run_cli("list", "--state", "completed", "--json")) == []
    assert json_out(run_cli("list", "-n", "0", "--json")) == []


def test_show_json_shape_with_runs(run_cli: Cli, populated: SqliteStore) -> None:
    job = json_out(run_cli("show", "failing", "--json"))
    _check_job_shape(job)
    (run,) = job["runs"]
    assert set(run) >= RUN_KEYS
    assert run["n"] == 1
    assert ISO_Z.match(run["started_at"]) and ISO_Z.match(run["finished_at"])
    assert (run["exit_code"], run["signal"], run["worker_id"]) == (4, None, "w-test")
    assert run["error"] == "exited with code 4"
    running = json_out(run_cli("show", "busy", "--json"))
    assert [(r["n"], r["finished_at"]) for r in running["runs"]] == [(1, None)]
    assert json_out(run_cli("show", "waiting", "--json"))["runs"] == []


def test_env_is_masked_unless_show_env(run_cli: Cli, populated: SqliteStore) -> None:
    assert json_out(run_cli("show", "failing", "--json"))["env"] == {"TOKEN": "***"}
    assert json_out(run_cli("show", "failing", "--json", "--show-env"))["env"] == {
        "TOKEN": "hunter2"
    }
    assert "hunter2" not in ok(run_cli("show", "failing")).stdout
    assert "hunter2" in ok(run_cli("show", "failing", "--show-env")).stdout
    assert "hunter2" not in ok(run_cli("list", "--json")).stdout
    assert "hunter2" not in ok(run_cli("list")).stdout


def test_status_json_shape(run_cli: Cli, populated: SqliteStore) -> None:
    status = json_out(run_cli("status", "--json"))
    assert set(status) == {"jobs", "workers"}
    assert status["jobs"] == {
        "pending": 1,
        "processing": 1,
        "completed": 0,
        "failed": 1,
        "dead": 1,
        "total": 4,
    }
    (worker,) = status["workers"]
    assert set(worker) >= WORKER_KEYS
    assert worker["id"] == "w-test"
    assert worker["pid"] == os.getpid()
    assert worker["job_id"] == "busy"
    assert ISO_Z.match(worker["started_at"]) and ISO_Z.match(worker["heartbeat_at"])
    text = ok(run_cli("status")).stdout
    assert "w-test" in text and "busy" in text


def test_status_of_an_empty_queue(run_cli: Cli) -> None:
    status = json_out(run_cli("status", "--json"))
    assert status == {
        "jobs": {"pending": 0, "processing": 0, "completed": 0, "failed": 0, "dead": 0, "total": 0},
        "workers": [],
    }


def test_dlq_list(run_cli: Cli, populated: SqliteStore) -> None:
    dead = json_out(run_cli("dlq", "list", "--json"))
    assert ids_of(dead) == ["dead"]
    _check_job_shape(dead[0])
    rows = table_rows(ok(run_cli("dlq", "list")).stdout)
    assert rows[0][:4] == ["ID", "COMMAND", "STATE", "ATTEMPTS"]
    assert rows[1][0] == "dead"
    assert "1/1" in rows[1]


def test_list_table_keeps_the_original_columns(run_cli: Cli, populated: SqliteStore) -> None:
    ok(run_cli("enqueue", json.dumps({"id": "L" * 200, "command": "x " * 100})))
    lines = ok(run_cli("list")).stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "COMMAND", "STATE", "ATTEMPTS"]
    # ATTEMPTS is attempts/max_retries, as in the original system
    rows = {line.split()[0]: line for line in lines[1:]}
    assert re.search(r"\bdead\s+1/1\b", rows["dead"])
    assert re.search(r"\bfailed\s+1/3\b", rows["failing"])
    assert re.search(r"\bpending\s+0/3\b", rows["waiting"])
    assert "L" * 200 in rows  # ids are never shortened


def test_list_of_nothing(run_cli: Cli) -> None:
    result = ok(run_cli("list"))
    assert "Traceback" not in result.stdout
    assert json_out(run_cli("list", "--json")) == []
    assert json_out(run_cli("dlq", "list", "--json")) == []


# --- dlq retry and wait ------------------------------------------------------------------------


def test_dlq_retry_moves_dead_jobs_back(run_cli: Cli, populated: SqliteStore) -> None:
    ok(run_cli("dlq", "retry", "dead"))
    job = json_out(run_cli("show", "dead", "--json"))
    assert (job["state"], job["attempts"]) == ("pending", 0)
    assert [run["n"] for run in job["runs"]] == [1]
    assert json_out(run_cli("dlq", "list", "--json")) == []


def test_dlq_retry_all(run_cli: Cli, populated: SqliteStore) -> None:
    result = ok(run_cli("dlq", "retry", "--all"))
    assert "1" in result.stdout
    assert json_out(run_cli("list", "--state", "dead", "--json")) == []
    assert ok(run_cli("dlq", "retry", "--all")).returncode == 0


def test_wait_exit_codes(run_cli: Cli, db: Path) -> None:
    specs = [
        {"id": "good", "command": "true", "priority": 3},
        {"id": "bad", "command": "false", "max_retries": 0, "priority": 2},
        {"id": "pending", "command": "true"},
    ]
    ok(run_cli("enqueue", "--file", "-", input=_lines(specs)))
    store = open_store(db)
    store.register_worker(worker_info("w"))
    claim = store.claim("w")
    assert claim is not None and claim.job.id == "good"
    assert store.finish(claim, SUCCESS).recorded
    claim = store.claim("w")
    assert claim is not None and claim.job.id == "bad"
    assert store.finish(claim, fail()).recorded
    store.close()
    assert run_cli("wait", "good").returncode == 0
    assert run_cli("wait", "good", "bad").returncode == 1
    missing = run_cli("wait", "good", "nope")
    assert_error(missing, 1)
    timed_out = run_cli("wait", "good", "pending", "--timeout", "0.2")
    assert timed_out.returncode == 124
    assert "Traceback" not in timed_out.stderr


# --- config -----------------------------------------------------------------------------------


def test_config_list_json_shape(run_cli: Cli) -> None:
    config = json_out(run_cli("config", "list", "--json"))
    assert set(config) >= CONFIG_KEYS
    assert config["max_retries"] == 3 and config["backoff_base"] == 2
    assert config["backoff_max"] == 3600 and config["job_timeout"] == 0
    assert config["lease_seconds"] == 30 and config["poll_interval"] == 1
    assert all(isinstance(value, (int, float)) for value in config.values())
    rows = table_rows(ok(run_cli("config", "list")).stdout)
    assert {row[0] for row in rows[1:]} >= CONFIG_KEYS


def test_config_set_get_with_either_spelling(run_cli: Cli) -> None:
    assert ok(run_cli("config", "set", "max-retries", "5")).returncode == 0
    assert ok(run_cli("config", "get", "max_retries")).stdout == "5\n"
    assert ok(run_cli("config", "get", "max-retries")).stdout == "5\n"
    ok(run_cli("config", "set", "backoff_base", "1.5"))
    ok(run_cli("config", "set", "job-timeout", "7"))
    config = json_out(run_cli("config", "list", "--json"))
    assert (config["max_retries"], config["backoff_base"], config["job_timeout"]) == (5, 1.5, 7)
    # New jobs take the configured defaults.
    ok(run_cli("enqueue", '{"id": "j", "command": "true"}'))
    job = json_out(run_cli("show", "j", "--json"))
    assert (job["max_retries"], job["timeout"]) == (5, 7)


# --- the program, the database and its files ---------------------------------------------------


def test_version(run_cli: Cli) -> None:
    result = ok(run_cli("--version"))
    assert result.stdout.strip() == f"queuectl {queuectl.__version__}"


def test_init_db_is_idempotent(run_cli: Cli, db: Path) -> None:
    first = ok(run_cli("init-db"))
    assert str(db) in first.stdout
    ok(run_cli("enqueue", '{"id": "kept", "command": "true"}'))
    second = ok(run_cli("init-db"))
    assert str(db) in second.stdout
    assert ids_of(json_out(run_cli("list", "--json"))) == ["kept"]


def test_no_command_needs_init_db_first(run_cli: Cli, db: Path) -> None:
    assert json_out(run_cli("status", "--json"))["jobs"]["total"] == 0
    assert db.exists()


def test_queuectl_db_and_db_flag_override_the_home(
    run_cli: Cli, queuectl_home: Path, tmp_path: Path
) -> None:
    by_env = tmp_path / "env" / "by-env.db"
    by_url = tmp_path / "url" / "by-url.db"
    by_flag = tmp_path / "flag" / "by-flag.db"
    for database in (by_env, by_url, by_flag):
        database.parent.mkdir()
    ok(run_cli("enqueue", '{"id": "e", "command": "x"}', env={"QUEUECTL_DB": str(by_env)}))
    ok(
        run_cli(
            "enqueue", '{"id": "u", "command": "x"}', env={"QUEUECTL_DB": f"sqlite:///{by_url}"}
        )
    )
    # --db wins over QUEUECTL_DB
    ok(
        run_cli(
            "--db",
            str(by_flag),
            "enqueue",
            '{"id": "f", "command": "x"}',
            env={"QUEUECTL_DB": str(by_env)},
        )
    )
    ok(run_cli("--db", f"sqlite:///{by_flag}", "enqueue", '{"id": "f2", "command": "x"}'))
    assert not (queuectl_home / "queue.db").exists()
    assert ids_of(json_out(run_cli("--db", str(by_env), "list", "--json"))) == ["e"]
    assert ids_of(json_out(run_cli("--db", str(by_url), "list", "--json"))) == ["u"]
    assert ids_of(json_out(run_cli("--db", str(by_flag), "list", "--json"))) == ["f", "f2"]
    # A relative path is relative to the current directory.
    ok(run_cli("--db", "rel.db", "enqueue", '{"id": "r", "command": "x"}', cwd=tmp_path))
    assert (tmp_path / "rel.db").exists()


def test_a_database_path_in_a_missing_directory_is_refused_not_created(
    run_cli: Cli, queuectl_home: Path, tmp_path: Path
) -> None:
    mistyped = tmp_path / "qeueu" / "queue.db"
    for args, env in (
        (["--db", str(mistyped)], None),
        ([], {"QUEUECTL_DB": str(mistyped)}),
        ([], {"QUEUECTL_DB": f"sqlite:///{mistyped}"}),
    ):
        for command in (["status"], ["enqueue", '{"command": "true"}']):
            result = run_cli(*args, *command, env=env)
            assert result.returncode == 2, (args, env, command, result)
            assert f"{mistyped.parent} does not exist" in result.stderr, result
            assert "Traceback" not in result.stderr
    assert not mistyped.parent.exists()
    assert not queuectl_home.exists()
    # The default location, under QUEUECTL_HOME, is still created on first use.
    ok(run_cli("status"))
    assert (queuectl_home / "queue.db").exists()


# Makes `import psycopg` fail as it does where the package is not installed.
_NO_PSYCOPG = """
import importlib.abc
import sys


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "psycopg" or name.startswith("psycopg."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
"""


def test_a_postgresql_url_without_psycopg_says_what_to_install(
    run_cli: Cli, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_NO_PSYCOPG)
    url = "postgresql://queuectl@127.0.0.1:1/queue"
    for args, env in (
        (["--db", url, "status"], {}),
        (["enqueue", '{"command": "true"}'], {"QUEUECTL_DB": url}),
    ):
        result = run_cli(*args, env={**env, "PYTHONPATH": str(site)})
        assert result.returncode == 1, result
        assert "pip install 'queuectl[postgres]'" in result.stderr, result
        assert "unexpected" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("umask", ["000", "077", "022"])
def test_data_dir_is_0700_and_database_0600_whatever_the_umask(
    run_cli: Cli, queuectl_home: Path, umask: str
) -> None:
    ok(run_cli("enqueue", '{"command": "true"}', shell_prefix=f"umask {umask}"))
    assert stat.S_IMODE(queuectl_home.stat().st_mode) == 0o700
    for path in queuectl_home.glob("queue.db*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_modes_are_only_ever_tightened_never_loosened(run_cli: Cli, db: Path) -> None:
    ok(run_cli("enqueue", '{"id": "kept", "command": "true"}'))
    os.chmod(db, 0o640)
    ok(run_cli("status"))
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    # Made read-only on purpose: it stays so, and can still be read.
    os.chmod(db, 0o400)
    assert ids_of(json_out(run_cli("list", "--json"))) == ["kept"]
    ok(run_cli("status"))
    assert stat.S_IMODE(db.stat().st_mode) == 0o400


def test_a_separate_process_sees_an_acknowledged_enqueue(run_cli: Cli, db: Path) -> None:
    ok(run_cli("enqueue", '{"id": "durable", "command": "true"}'))
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE id = 'durable'").fetchone() == (1,)
    conn.close()


def test_a_database_newer_than_the_program_is_refused(run_cli: Cli, db: Path) -> None:
    ok(run_cli("enqueue", '{"id": "a", "command": "true"}'))
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 999")
    conn.close()
    for argv in (["list"], ["status", "--json"], ["enqueue", '{"id": "b", "command": "x"}']):
        result = run_cli(*argv)
        assert_error(result, 1)
        assert result.stdout == ""
    with sqlite3.connect(db) as conn:
        assert [row[0] for row in conn.execute("SELECT id FROM jobs")] == ["a"]
        assert conn.execute("PRAGMA user_version").fetchone() == (999,)
    conn.close()


def test_a_file_that_is_not_a_database_is_an_error_not_a_traceback(
    run_cli: Cli, queuectl_home: Path, db: Path
) -> None:
    queuectl_home.mkdir(mode=0o700)
    db.write_text("not a database\n" * 1000)
    assert_error(run_cli("list"), 1)


def test_a_path_that_is_not_a_database_is_left_alone(run_cli: Cli, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    notes.chmod(0o644)
    assert_error(run_cli("--db", str(notes), "list"), 1)
    assert notes.read_text() == "my notes\n"
    assert stat.S_IMODE(notes.stat().st_mode) == 0o644
    # Nor a directory (as root, this once made /tmp 0600 for the whole machine).
    directory = tmp_path / "a-directory"
    directory.mkdir(mode=0o755)
    assert_error(run_cli("--db", str(directory), "list"), 1)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755


# --- migrating the original system's database --------------------------------------------------

T0 = datetime(2025, 11, 4, 10, 30, 0, 123456, tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    """As the original system wrote them: datetime.now(timezone.utc).isoformat()."""
    return moment.isoformat()


# (id, command, state, attempts, max_retries, created, updated)
LEGACY_JOBS = [
    ("f1", "false", "failed", 2, 5, T0 + timedelta(seconds=3), T0 + timedelta(seconds=30)),
    ("p1", "echo pending", "pending", 0, 3, T0 + timedelta(seconds=2), T0 + timedelta(seconds=2)),
    ("done1", "echo ok", "completed", 1, 3, T0, T0 + timedelta(seconds=3)),
    (
        "q'1;\"x",
        "echo quoted",
        "pending",
        0,
        3,
        T0 + timedelta(seconds=6),
        T0 + timedelta(seconds=6),
    ),
    ("run1", "sleep 100", "processing", 1, 3, T0 + timedelta(seconds=1), T0 + timedelta(seconds=5)),
    ("f2", "exit 2", "failed", 10, 20, T0 + timedelta(seconds=4), T0 + timedelta(seconds=40)),
    ("d1", "exit 1", "dead", 3, 3, T0 + timedelta(seconds=5), T0 + timedelta(seconds=50)),
]
LEGACY_CONFIG = [
    ("max-retries", "5"),
    ("backoff_base", "abc"),  # invalid: dropped with a warning, the default (2) applies
    ("backoff-max", "100"),
]


def _create_legacy_db(path: Path) -> None:
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, command TEXT NOT NULL, state TEXT NOT NULL,"
            " attempts INTEGER NOT NULL DEFAULT 0, max_retries INTEGER NOT NULL DEFAULT 3,"
            " created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
        )
        conn.execute("CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.executemany(
            "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(*row[:5], _iso(row[5]), _iso(row[6])) for row in LEGACY_JOBS],
        )
        conn.executemany("INSERT INTO config VALUES (?, ?)", LEGACY_CONFIG)
    conn.close()
    path.chmod(0o644)


def test_migrates_the_original_systems_database(run_cli: Cli, db: Path) -> None:
    _create_legacy_db(db)
    result = ok(run_cli("list", "--json"))
    jobs = json.loads(result.stdout)
    warnings = [line for line in result.stderr.splitlines() if "backoff_base" in line]
    assert len(warnings) == 1 and "abc" in warnings[0], result.stderr
    assert stat.S_IMODE(db.stat().st_mode) == 0o600

    # Every job kept, oldest first, with its state, counts, command and times.
    expected = sorted(LEGACY_JOBS, key=lambda row: row[5])
    assert ids_of(jobs) == [row[0] for row in expected]
    by_id = {job["id"]: job for job in jobs}
    for job_id, command, state, attempts, max_retries, created, updated in LEGACY_JOBS:
        job = by_id[job_id]
        _check_job_shape(job)
        assert (job["command"], job["state"]) == (command, state)
        assert (job["attempts"], job["max_retries"]) == (attempts, max_retries)
        assert parse_ts(job["created_at"]) == created
        assert parse_ts(job["updated_at"]) == updated

    # Failed jobs run after their backoff from updated_at: min(base^attempts, backoff_max).
    f1, f2 = by_id["f1"], by_id["f2"]
    assert parse_ts(f1["run_at"]) - parse_ts(f1["updated_at"]) == timedelta(seconds=2**2)
    assert parse_ts(f2["run_at"]) - parse_ts(f2["updated_at"]) == timedelta(seconds=100)

    # Valid settings kept (either spelling), the invalid one dropped.
    config = json_out(run_cli("config", "list", "--json"))
    assert (config["max_retries"], config["backoff_max"], config["backoff_base"]) == (5, 100, 2)

    # Migrated once: the next command neither warns nor changes anything.
    again = ok(run_cli("list", "--json"))
    assert again.stderr == ""
    assert json.loads(again.stdout) == jobs
    assert json_out(run_cli("show", "q'1;\"x", "--json"))["command"] == "echo quoted"


def test_migrated_processing_jobs_are_recovered_as_lost_runs(run_cli: Cli, db: Path) -> None:
    _create_legacy_db(db)
    ok(run_cli("init-db"))
    store = open_store(db)
    try:
        recovered: list[RecoveredJob] = []
        assert [job.job_id for job in store.recover_expired(30, recovered.append)] == ["run1"]
        assert [job.job_id for job in recovered] == ["run1"]
    finally:
        store.close()
    job = json_out(run_cli("show", "run1", "--json"))
    assert (job["state"], job["attempts"], job["last_error"]) == ("failed", 2, "worker lost")
    assert [(run["n"], run["error"]) for run in job["runs"]] == [(2, "worker lost")]
