"""main's readers of the plain `enqueue` and `add` forms agree with argparse.

The readers (queuectl.cli.main._plain_enqueue, _plain_add) spare `queuectl
enqueue` and `queuectl add` the argparse import; anything they are not sure
of they leave to argparse. So: every argv one accepts, argparse must accept
with the same values, and the common forms must be accepted (else the fast
path silently stops being taken).
"""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queuectl.cli import names
from queuectl.cli.add import request_from
from queuectl.cli.main import _plain_add, _plain_enqueue
from queuectl.cli.parser import build_parser, parse

JOB = '{"command": "true"}'


def _argparse(argv: list[str]) -> argparse.Namespace | None:
    """argparse's reading, or None where it exits (with usage and an `Error:` line, or help)."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return parse(argv)
        except SystemExit:
            return None


def _agree(argv: list[str]) -> bool:
    """Whether the reader accepts argv; if it does, argparse must read it the same way."""
    request = _plain_enqueue(argv)
    if request is None:
        return False
    args = _argparse(argv)
    assert args is not None, f"argparse rejects {argv}, the reader accepted it"
    assert args.handler == "queuectl.cli.enqueue:run"
    assert (request.job, request.file, request.json, request.db) == (
        args.job,
        args.file,
        args.json,
        args.db,
    ), argv
    return True


COMMON = [
    ["enqueue", JOB],
    ["enqueue", "--json", JOB],
    ["enqueue", JOB, "--json"],
    ["enqueue", "--file", "jobs.jsonl"],
    ["enqueue", "-f", "-"],
    ["enqueue", "-f", "-", "--json"],
    ["enqueue", "--json", "--file", "jobs.jsonl"],
    ["--db", "/tmp/q.db", "enqueue", JOB],
    ["--db", "sqlite:///tmp/q.db", "--debug", "enqueue", "--file", "-"],
    ["--debug", "--db", "postgresql://u:p@h/db", "enqueue", JOB],
    ["--db", "enqueue", "enqueue", JOB],  # a database file named "enqueue"
    ["--db", "", "enqueue", JOB],  # empty: QUEUECTL_DB or the default, as with argparse
    ["enqueue", ""],  # invalid JSON, rejected by the handler with exit 2 either way
    ["enqueue"],  # neither: the handler's "give a job as JSON, or --file PATH"
    ["enqueue", JOB, "--file", "-"],  # both: the handler's error too
    ["enqueue", "{not json"],
    # Global options after the command, as argparse takes them too.
    ["enqueue", "--debug", JOB],
    ["enqueue", "--db", "x", JOB],
    ["enqueue", JOB, "--db", "/tmp/q.db", "--json"],
    ["--debug", "enqueue", "-f", "-", "--db", "postgresql://u:p@h/db"],
]

# Left to argparse: its usage lines, `Error:` lines and exit codes stay exactly its own.
DECLINED = [
    [],
    ["--help"],
    ["--version"],
    ["enqueue", "--help"],
    ["enqueue", "-h", JOB],
    ["enqueue", "--file=jobs.jsonl"],
    ["--db=/tmp/q.db", "enqueue", JOB],
    ["enqueue", "--js", JOB],  # an abbreviation
    ["--deb", "enqueue", JOB],
    ["enqueue", "-fjobs.jsonl"],
    ["enqueue", JOB, JOB],
    ["enqueue", "--json", "--json", JOB],
    ["enqueue", "--file", "a", "--file", "b"],
    ["enqueue", "-f", "a", "--file", "b"],
    ["--db", "a", "--db", "b", "enqueue", JOB],
    ["--debug", "--debug", "enqueue", JOB],
    ["enqueue", "--file"],
    ["enqueue", "--file", "--json"],
    ["enqueue", "--file", "-h"],
    ["--db", "--debug", "enqueue", JOB],
    ["--db"],
    ["--db", "enqueue"],
    ["--db", "-x", "enqueue", JOB],
    ["enqueue", "-1"],  # argparse takes a negative number as a positional: its call
    ["enqueue", "-"],
    ["enqueue", "--", JOB],
    ["--db", "a", "enqueue", "--db", "b", JOB],  # both: argparse's rule (the later wins)
    ["--debug", "enqueue", "--debug", JOB],
    ["status"],
    ["list", "enqueue"],
    ["stray", "enqueue", JOB],
    ["enqueue", "--unknown", JOB],
]


@pytest.mark.parametrize("argv", COMMON, ids=" ".join)
def test_common_forms_skip_argparse_and_agree_with_it(argv: list[str]) -> None:
    assert _agree(argv)


@pytest.mark.parametrize("argv", DECLINED, ids=lambda argv: " ".join(argv) or "(none)")
def test_everything_else_is_left_to_argparse(argv: list[str]) -> None:
    assert _plain_enqueue(argv) is None


_TOKENS = st.sampled_from(
    [
        "enqueue",
        "--db",
        "--debug",
        "--file",
        "-f",
        "--json",
        "--js",
        "--file=x",
        "-h",
        "--",
        "-",
        "-1",
        "",
        "x.db",
        JOB,
        "status",
    ]
)


_WORDS = st.one_of(_TOKENS, st.text(max_size=6))
# Mostly "[global options] enqueue [its arguments]", where the reader has choices to make.
_ARGV = st.one_of(
    st.lists(_WORDS, max_size=7),
    st.tuples(st.lists(_TOKENS, max_size=3), st.lists(_WORDS, max_size=4)).map(
        lambda parts: [*parts[0], "enqueue", *parts[1]]
    ),
)


@settings(max_examples=1500, deadline=None)
@given(argv=_ARGV)
def test_whatever_the_reader_accepts_argparse_reads_the_same(argv: list[str]) -> None:
    _agree(argv)


# --- add ----------------------------------------------------------------------------------


def _agree_add(argv: list[str]) -> bool:
    """Whether the reader accepts argv as `add`; if it does, argparse must read it the same."""
    request = _plain_add(argv)
    if request is None:
        return False
    args = _argparse(argv)
    assert args is not None, f"argparse rejects {argv}, the reader accepted it"
    assert args.handler == "queuectl.cli.add:run"
    assert request == request_from(args), argv
    return True


ADD_COMMON = [
    ["add", "--", "true"],
    ["add", "--", "make && make test"],
    ["add", "--", "touch", "my file"],
    ["add", "--", "echo", "-n", "--json", "--", "x"],
    ["add", "echo", "hi"],
    ["add", "--json", "--", "true"],
    ["add", "--id", "j1", "--priority", "5", "--delay", "10m", "--", "true"],
    ["add", "--at", "2030-06-01T12:00", "--timeout", "1.5h", "--max-retries", "0", "true"],
    ["add", "--cwd", "/tmp", "--env", "A=1", "--env", "B=2", "--", "env"],
    ["add", "--env", "A=1", "--json", "--env", "A=2", "--", "true"],
    ["--db", "/tmp/q.db", "add", "--", "true"],
    ["--debug", "--db", "add", "add", "--", "true"],  # a database file named "add"
    ["add"],  # no command: the handler's error either way
    ["add", "--"],
    ["add", "--json"],
    ["add", "", "x"],
    ["add", "--id", "", "--", "true"],
    ["add", "--delay", "5x", "--", "true"],  # a bad value: the handler's error either way
    ["add", "--env", "novalue", "--", "true"],
]

ADD_DECLINED = [
    ["add", "--help"],
    ["add", "-h", "--", "true"],
    ["add", "echo", "-n", "hi"],  # argparse reads -n as an option of add (and rejects it)
    ["add", "echo", "--json"],
    ["add", "echo", "--", "hi"],
    ["add", "--priority", "-5", "--", "true"],  # argparse takes "-5" as a value: its call
    ["add", "--priority=5", "--", "true"],
    ["add", "--prio", "5", "--", "true"],
    ["add", "--id", "a", "--id", "b", "--", "true"],
    ["add", "--json", "--json", "--", "true"],
    ["add", "--id"],
    ["add", "--id", "--", "true"],
    ["add", "--queue", "q", "--", "true"],
    ["add", "--db", "x", "--", "true"],
    ["add", "--debug", "--", "true"],
    ["--db", "a", "--db", "b", "add", "--", "true"],
    ["enqueue", "add"],
]


@pytest.mark.parametrize("argv", ADD_COMMON, ids=" ".join)
def test_common_add_forms_skip_argparse_and_agree_with_it(argv: list[str]) -> None:
    assert _agree_add(argv)


@pytest.mark.parametrize("argv", ADD_DECLINED, ids=" ".join)
def test_other_add_forms_are_left_to_argparse(argv: list[str]) -> None:
    assert _plain_add(argv) is None


_ADD_TOKENS = st.sampled_from(
    [
        "add",
        "--db",
        "--debug",
        "--json",
        "--",
        "-",
        "-1",
        "",
        "x",
        "echo",
        "a b",
        "--id",
        "--priority",
        "--delay",
        "--at",
        "--env",
        "--max-retries",
        "--cwd",
        "--timeout",
        "--js",
        "--id=x",
        "-h",
        "K=V",
    ]
)
_ADD_ARGV = st.tuples(
    st.lists(st.sampled_from(["--db", "--debug", "x.db", "add"]), max_size=3),
    st.lists(st.one_of(_ADD_TOKENS, st.text(max_size=4)), max_size=8),
).map(lambda parts: [*parts[0], "add", *parts[1]])


@settings(max_examples=1500, deadline=None)
@given(argv=_ADD_ARGV)
def test_whatever_the_add_reader_accepts_argparse_reads_the_same(argv: list[str]) -> None:
    _agree_add(argv)


# --- one declaration ----------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(commands.choices)


def _flags(parser: argparse.ArgumentParser) -> list[str]:
    return [flag for action in parser._actions for flag in action.option_strings]


def test_the_readers_and_argparse_share_one_declaration() -> None:
    """The command names and the options main reads are declared once (queuectl.cli.names):
    a command or option added to argparse is one the readers know of, and the reverse."""
    parser = build_parser()
    assert list(_subcommands(parser)) == list(names.COMMANDS)
    global_flags = [flag for option in names.GLOBAL_OPTIONS for flag in option.flags]
    assert _flags(parser) == ["-h", "--help", "--version", *global_flags]
    enqueue_flags = [flag for option in names.ENQUEUE_OPTIONS for flag in option.flags]
    enqueue = _subcommands(parser)["enqueue"]
    assert sorted(_flags(enqueue)) == sorted(["-h", "--help", *global_flags, *enqueue_flags])
