"""Every command explains itself, and parsing arguments stays cheap to import."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from queuectl.cli.parser import build_parser
from tests.helpers import queuectl_executable

QUEUECTL = queuectl_executable()

# Modules that only running a command may need, never parsing its arguments.
HEAVY = (
    "click",
    "psycopg",
    "sqlite3",
    "_sqlite3",
    "subprocess",
    "uuid",
    "queuectl.store",
    "shtab",  # only `queuectl completion` writes scripts
)


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    """(path, parser, help) of every command below `parser`, hidden ones included."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                found.append(((*path, name), sub, helps.get(name)))
                found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(build_parser())


def _hidden(parser: argparse.ArgumentParser, help_text: str | None) -> bool:
    """Hidden commands (the internal `worker run`) carry SUPPRESS, not a help text."""
    return argparse.SUPPRESS in (help_text, parser.description)


VISIBLE = [path for path, parser, help_text in COMMANDS if not _hidden(parser, help_text)]


def test_the_tree_is_found() -> None:
    paths = {" ".join(path) for path, _, _ in COMMANDS}
    assert {"enqueue", "worker start", "dlq retry", "config set", "completion"} <= paths


@pytest.mark.parametrize(("path", "parser", "help_text"), COMMANDS, ids=lambda v: str(v))
def test_every_command_has_help(
    path: tuple[str, ...], parser: argparse.ArgumentParser, help_text: str | None
) -> None:
    if _hidden(parser, help_text):
        return  # deliberately hidden, e.g. the internal `worker run`
    assert help_text and help_text.strip(), f"`queuectl {' '.join(path)}` has no help"
    for action in parser._actions:
        if action.option_strings:
            assert action.help, f"{'/'.join(action.option_strings)} of {path} has no help"


@pytest.mark.parametrize("path", [(), *VISIBLE], ids=lambda p: " ".join(p) or "queuectl")
def test_help_through_the_executable(path: tuple[str, ...], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("QUEUECTL_DB", "QUEUECTL_DEBUG")}
    env["QUEUECTL_HOME"] = str(tmp_path / "home")
    result = subprocess.run(
        [str(QUEUECTL), *path, "--help"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {' '.join(('queuectl', *path))}")
    assert "==SUPPRESS==" not in result.stdout, "a hidden command is listed in the help"
    assert "Example" in result.stdout, f"`queuectl {' '.join(path)} --help` shows no example"
    assert not re.search(r"\bworker run\b|^\s+run\s", result.stdout, re.M), "hidden `worker run`"
    assert not (tmp_path / "home").exists(), "--help touched the queue"


def _help(*path: str) -> str:
    result = subprocess.run(
        [str(QUEUECTL), *path, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    ("path", "parser"),
    [
        pytest.param((), build_parser(), id="queuectl"),
        *(pytest.param(path, parser, id=" ".join(path)) for path, parser, _ in COMMANDS),
    ],
)
def test_every_value_has_a_natural_metavar(
    path: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    """`--timeout SECONDS`, not argparse's default `--timeout TIMEOUT` (the dest in capitals)."""
    for action in parser._actions:
        takes_value = action.nargs != 0 and not isinstance(action, argparse._SubParsersAction)
        if takes_value and action.choices is None:
            assert action.metavar, f"{action.option_strings or action.dest} of {path}: no metavar"


def test_top_level_help_lists_exit_codes_and_points_to_the_readme() -> None:
    text = _help()
    for code, meaning in [
        ("0", "success"),
        ("1", "failed"),
        ("2", "invalid input"),
        ("124", "timed out"),
        ("130", "interrupted"),
    ]:
        assert re.search(rf"^\s+{code}\s+.*{meaning}", text, re.M), f"exit code {code}: {text}"
    assert "README" in text


def test_enqueue_help_lists_the_job_fields() -> None:
    from queuectl.spec import SPEC_FIELDS

    text = _help("enqueue")
    for field in SPEC_FIELDS:
        assert re.search(rf"^\s+{field}\s+\S", text, re.M), f"{field} is not listed: {text}"


def test_list_help_lists_the_states() -> None:
    from queuectl.cli.parser import STATES

    text = _help("list")
    for state in STATES:
        assert re.search(rf"^\s+{state}\s+\S", text, re.M), f"{state} is not listed: {text}"


def _imported_modules(*python_args: str) -> set[str]:
    """Modules a fresh interpreter imports for `python -X importtime ARGS`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *python_args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", result.stderr, re.M))


def _heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)}


@pytest.mark.parametrize(
    "python_args",
    [("-c", "import queuectl.cli.main"), ("-m", "queuectl", "--version")],
    ids=["import", "version"],
)
def test_parsing_arguments_imports_nothing_heavy(python_args: tuple[str, ...]) -> None:
    baseline = _imported_modules("-c", "pass")  # what site and .pth files load anyway
    imported = _imported_modules(*python_args)
    assert "queuectl.cli.main" in imported
    assert _heavy(imported - baseline) == set()
