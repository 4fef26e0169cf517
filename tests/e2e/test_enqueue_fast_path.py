"""`queuectl enqueue` read by main's plain-argv reader behaves exactly as when argparse reads it.

Each case runs the real executable twice, each time on a fresh database with
the same job already in it: once in the forms the reader takes (`--db PATH`,
`--file PATH`, `--json`), once in equivalent forms it leaves to argparse
(`--db=PATH`, `--file=PATH`, the abbreviation `--js`). Exit code, stdout,
stderr and every stored row must be the same. tests/unit/test_cli_argv.py
checks, without processes, that the two forms really take the two paths.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from queuectl.cli.main import _plain_enqueue
from tests.helpers import CliResult, queuectl_executable, run_cli

LINES = "".join(
    json.dumps({"id": f"b{n}", "command": f"echo {n}", "priority": n}) + "\n" for n in range(3)
)


class Case(NamedTuple):
    name: str
    fast: list[str]  # {db} and {file} are filled in
    slow: list[str]
    stdin: str | None = None


def _job(job_id: str, **fields: object) -> str:
    return json.dumps({"id": job_id, "command": "true", **fields})


CASES = [
    Case("one", ["--db", "{db}", "enqueue", _job("a")], ["--db={db}", "enqueue", _job("a")]),
    Case(
        "one-db-after",
        ["enqueue", _job("a"), "--db", "{db}", "--debug"],
        ["enqueue", _job("a"), "--db={db}", "--debug"],
    ),
    Case(
        "json",
        ["--db", "{db}", "enqueue", "--json", _job("a", env={"K": "v"})],
        ["--db={db}", "enqueue", "--js", _job("a", env={"K": "v"})],
    ),
    Case(
        "file",
        ["--db", "{db}", "enqueue", "--file", "{file}"],
        ["--db={db}", "enqueue", "--file={file}"],
    ),
    Case(
        "file-json",
        ["--db", "{db}", "enqueue", "-f", "{file}", "--json"],
        ["--db={db}", "enqueue", "--file={file}", "--js"],
    ),
    Case(
        "stdin",
        ["--db", "{db}", "enqueue", "-f", "-"],
        ["--db={db}", "enqueue", "--fil", "-"],
        LINES,
    ),
    Case(
        "bad-json",
        ["--db", "{db}", "enqueue", '{"command": '],
        ["--db={db}", "enqueue", '{"command": '],
    ),
    Case(
        "unknown-field",
        ["--db", "{db}", "enqueue", _job("a", retries=3)],
        ["--db={db}", "enqueue", _job("a", retries=3)],
    ),
    Case(
        "duplicate-id",
        ["--db", "{db}", "enqueue", _job("existing")],
        ["--db={db}", "enqueue", _job("existing")],
    ),
    Case(
        "duplicate-in-file",
        ["--db", "{db}", "enqueue", "--file", "-"],
        ["--db={db}", "enqueue", "--file=-"],
        LINES + LINES,
    ),
    Case(
        "job-and-file",
        ["--db", "{db}", "enqueue", _job("a"), "--file", "{file}"],
        ["--db={db}", "enqueue", _job("a"), "--file={file}"],
    ),
    Case("no-job", ["--db", "{db}", "enqueue"], ["--db={db}", "enqueue"]),
    Case(
        "missing-file",
        ["--db", "{db}", "enqueue", "--file", "{file}.missing"],
        ["--db={db}", "enqueue", "--file={file}.missing"],
    ),
    Case(
        "bad-db-url",
        ["--db", "mysql://localhost/q", "enqueue", _job("a")],
        ["--db=mysql://localhost/q", "enqueue", _job("a")],
    ),
    Case(
        "debug-ok",
        ["--db", "{db}", "--debug", "enqueue", _job("a")],
        ["--db={db}", "--deb", "enqueue", _job("a")],
    ),
]


def _rows(db: Path) -> list[tuple[object, ...]]:
    """What a job is made of, times aside (they differ between the two runs)."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        jobs = conn.execute(
            "SELECT seq, id, command, state, attempts, max_retries, priority, timeout, cwd, env"
            " FROM jobs ORDER BY seq"
        ).fetchall()
        counts = conn.execute("SELECT state, n FROM job_counts ORDER BY state").fetchall()
    return [*jobs, *counts]


def _run(case_argv: list[str], home: Path, stdin: str | None) -> tuple[CliResult, list[object]]:
    home.mkdir()
    db = home / "queue.db"
    jobs_file = home / "jobs.jsonl"
    jobs_file.write_text(LINES)
    seeded = run_cli("--db", str(db), "enqueue", _job("existing"), cwd=home)
    assert seeded.returncode == 0, seeded.stderr
    argv = [arg.replace("{db}", str(db)).replace("{file}", str(jobs_file)) for arg in case_argv]
    result = run_cli(*argv, input=stdin, cwd=home)
    # The paths differ between the two runs; the rest of the output must not.
    result = result._replace(
        stdout=result.stdout.replace(str(home), "HOME"),
        stderr=result.stderr.replace(str(home), "HOME"),
    )
    return result, [tuple(str(v).replace(str(home), "HOME") for v in row) for row in _rows(db)]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_reader_and_argparse_give_the_same_results(case: Case, tmp_path: Path) -> None:
    fill = {"{db}": "x.db", "{file}": "jobs.jsonl"}
    filled = [[fill.get(arg, arg) for arg in argv] for argv in (case.fast, case.slow)]
    assert _plain_enqueue(filled[0]) is not None, "the first form must take the fast path"
    assert _plain_enqueue(filled[1]) is None, "the second form must go through argparse"
    fast = _run(case.fast, tmp_path / "fast", case.stdin)
    slow = _run(case.slow, tmp_path / "slow", case.stdin)
    assert fast == slow
    if case.name.startswith(("one", "json", "file", "stdin", "debug")):
        assert fast[0].returncode == 0, fast[0].stderr
    else:
        assert fast[0].returncode == 2, fast[0].stderr
        assert fast[0].stderr.splitlines()[-1].startswith("Error: ")


def test_generated_ids_and_the_default_database(tmp_path: Path) -> None:
    env = {"QUEUECTL_HOME": str(tmp_path / "home"), "QUEUECTL_DB": None}
    fast = run_cli("enqueue", '{"command": "true"}', env=env, cwd=tmp_path)
    slow = run_cli("enqueue", "--js", '{"command": "true"}', env=env, cwd=tmp_path)
    assert fast.returncode == 0 and re.fullmatch(r"[0-9a-f]{16}\n", fast.stdout), fast
    assert json.loads(slow.stdout)[0] != fast.stdout.strip()
    assert (tmp_path / "home" / "queue.db").stat().st_mode & 0o777 == 0o600


# What `queuectl enqueue JSON` must not import beyond what a bare interpreter has loaded:
# these are what made it cost tens of milliseconds (see docs/DECISIONS.md).
NOT_ON_THE_ENQUEUE_PATH = (
    "argparse",
    "shtab",
    "gettext",
    "locale",
    "shutil",
    "typing",
    "contextlib",
    "random",
    "queuectl.cli.parser",
    "queuectl.domain",
    "queuectl.retry",
    "queuectl.store.base",
    "queuectl.store.sqlite",
)


def _imports(args: list[str], tmp_path: Path) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    env["QUEUECTL_HOME"] = str(tmp_path / "home")
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", result.stderr, re.M))


@pytest.mark.parametrize(
    "args",
    [["enqueue", '{"command": "true"}'], ["enqueue", "--json", "--file", "-"]],
    ids=["json", "file"],
)
def test_enqueue_imports_only_what_it_needs(args: list[str], tmp_path: Path) -> None:
    baseline = _imports(["-c", "pass"], tmp_path)  # what site and .pth files load anyway
    if args[-1] == "-":
        (tmp_path / "jobs.jsonl").write_text(LINES)
        args = [*args[:-1], str(tmp_path / "jobs.jsonl")]
    imported = _imports([queuectl_executable(), *args], tmp_path) - baseline
    assert "queuectl.store.sqlite_producer" in imported
    assert sorted(imported & set(NOT_ON_THE_ENQUEUE_PATH)) == []
