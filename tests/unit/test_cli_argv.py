"""main's reader of the plain `enqueue` forms agrees with argparse wherever it answers.

The reader (queuectl.cli.main._plain_enqueue) spares `queuectl enqueue` the
argparse import; anything it is not sure of it leaves to argparse. So: every
argv it accepts, argparse must accept with the same values, and the common
forms must be accepted (else the fast path silently stops being taken).
"""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queuectl.cli.main import _plain_enqueue
from queuectl.cli.parser import parse

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
