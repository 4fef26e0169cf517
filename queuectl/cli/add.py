"""`queuectl add [OPTIONS] -- COMMAND...`: a job from options and words, without JSON.

It builds the job spec `enqueue` takes, as parsed JSON, and stores it through
the same function (queuectl.cli.enqueue.store_specs): one set of rules
(queuectl/spec.py) and one set of messages for both. Like `enqueue`, it runs
once per job in scripts, so main reads its plain forms without argparse (see
main.py) and this module imports little.

Each option is one line of ADD_OPTIONS: the job field it sets and how its text
becomes the field's value. argparse's options, main's reader and the handler
are all built from that table, so a field of a later issue (--queue, --tag,
--after, ...) is one line there.
"""

from __future__ import annotations

import os
import sys

from queuectl.errors import InvalidInput
from queuectl.records import NamedTuple
from queuectl.timeutil import format_timestamp, parse_duration, parse_timestamp

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see queuectl.records)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

USAGE = "queuectl add [OPTIONS] -- COMMAND..."


def _text(text: str) -> str:
    return text


def _integer(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise InvalidInput(f"{text!r} is not an integer") from None


def _local_time(text: str) -> str:
    """ISO 8601, a time without a zone being local; as the spec's `run_at` string, in UTC."""
    return format_timestamp(parse_timestamp(text, local=True))


def _directory(text: str) -> str:
    """A relative directory is taken from where `add` runs (the spec wants it absolute)."""
    if not text or os.path.isabs(text):
        return text  # the spec rejects the empty path with its own message
    try:
        return os.path.abspath(text)
    except FileNotFoundError:
        raise InvalidInput(
            "the current directory no longer exists: give an absolute path"
        ) from None


def _env_entry(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise InvalidInput(f"expected KEY=VALUE, not {text!r}")
    return key, value


class AddOption(NamedTuple):
    """One option of `add`: the job spec field it sets, and how."""

    flag: str
    field: str  # the job spec field (queuectl.spec.SPEC_FIELDS)
    metavar: str
    help: str
    convert: Callable[[str], Any]  # one value's text -> the field's value (or one part of it)
    # Repeatable options: the converted parts -> the field's value, in the order given.
    combine: Callable[[list[Any]], Any] | None = None
    # What the shells complete the value to (as queuectl.cli.names.Option.complete).
    complete: str | None = None

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")


ADD_OPTIONS = (
    AddOption("--id", "id", "ID", "the job's id (default: generated)", _text),
    AddOption("--priority", "priority", "N", "higher runs first (default 0)", _integer),
    AddOption(
        "--delay",
        "delay",
        "DURATION",
        "run no sooner than this from now: 90, 90s, 10m, 2h, 1d (or --at)",
        parse_duration,
    ),
    AddOption(
        "--at",
        "run_at",
        "TIME",
        "run no sooner than this ISO 8601 time; without a zone, local time",
        _local_time,
    ),
    AddOption(
        "--timeout",
        "timeout",
        "DURATION",
        "stop a run after this long, e.g. 30m (default: config job_timeout)",
        parse_duration,
    ),
    AddOption(
        "--max-retries",
        "max_retries",
        "N",
        "runs in all before the DLQ (default: config max_retries)",
        _integer,
    ),
    AddOption(
        "--cwd",
        "cwd",
        "DIR",
        "where the command runs (default: here)",
        _directory,
        complete="directory",
    ),
    AddOption(
        "--env",
        "env",
        "KEY=VALUE",
        "set in the command's environment (repeatable)",
        _env_entry,
        dict,
    ),
)


class AddRequest(NamedTuple):
    """What `queuectl add` was asked: by argparse, or by main's reader of the plain forms."""

    values: dict[str, Any]  # option dest -> its text (a list of texts if repeatable)
    words: list[str]  # the command's words
    json: bool  # --json
    db: str | None  # --db


def run(args: argparse.Namespace) -> int:
    """The handler argparse dispatches to."""
    return add(request_from(args))


def request_from(args: argparse.Namespace) -> AddRequest:
    """argparse's reading as an AddRequest, as main's reader makes it."""
    values = {o.dest: getattr(args, o.dest) for o in ADD_OPTIONS}
    given = {dest: value for dest, value in values.items() if value is not None}
    return AddRequest(values=given, words=args.words, json=args.json, db=args.db)


def command_of(words: list[str]) -> str:
    """One word is the shell command as written; several are quoted as a shell would."""
    if not words:
        raise InvalidInput(f"no command given: {USAGE}")
    if len(words) == 1:
        return words[0]
    import shlex  # only for several words

    return shlex.join(words)


def job_spec(request: AddRequest) -> dict[str, Any]:
    """The job spec the options and words make, as `enqueue` would read it from JSON."""
    if "delay" in request.values and "at" in request.values:
        raise InvalidInput("give --delay or --at, not both")
    job: dict[str, Any] = {}
    for option in ADD_OPTIONS:
        given = request.values.get(option.dest)
        if given is None:
            continue
        try:
            if option.combine is None:
                job[option.field] = option.convert(given)
            else:
                job[option.field] = option.combine([option.convert(part) for part in given])
        except InvalidInput as exc:
            raise InvalidInput(f"{option.flag}: {exc}") from None
    job["command"] = command_of(request.words)
    return job


def add(request: AddRequest) -> int:
    """Validate and store the job; print its id (`--json`: as a JSON array)."""
    job = job_spec(request)
    from queuectl.cli.enqueue import store_specs

    (job_id,) = store_specs([job], request.db, batch=False)
    if request.json:
        import json

        sys.stdout.write(json.dumps([job_id], ensure_ascii=False) + "\n")
    else:
        print(job_id)
    return 0
