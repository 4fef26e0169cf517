"""`queuectl enqueue`: the command scripts run once per job, so it imports little.

Kept apart from the other job commands so its start-up pays only for JSON,
the spec and the store (see the performance notes in docs/DECISIONS.md).
"""

from __future__ import annotations

import json
import os
import sys

from queuectl import spec
from queuectl.errors import InvalidInput
from queuectl.paths import resolve_database
from queuectl.records import NamedTuple
from queuectl.store import open_producer

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see queuectl.records)
if TYPE_CHECKING:
    import argparse
    from typing import Any


class EnqueueRequest(NamedTuple):
    """What `queuectl enqueue` was asked: by argparse, or by main's reader of the plain forms."""

    job: str | None  # the JSON argument
    file: str | None  # --file PATH ("-" = stdin)
    json: bool  # --json
    db: str | None  # --db


def run(args: argparse.Namespace) -> int:
    """The handler argparse dispatches to."""
    return enqueue(EnqueueRequest(job=args.job, file=args.file, json=args.json, db=args.db))


def _read_job_file(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None


def _load_job(text: str) -> object:
    """The job argument's JSON. What does not even start like an object (a shell command,
    a number, an array) gets the expected shape and `queuectl add` as a hint."""
    if text.lstrip().startswith("{"):
        return spec.load_json(text, what="job JSON")
    from queuectl.cli.hints import job_shape

    try:
        parsed = spec.load_json(text)
    except InvalidInput:
        raise InvalidInput(f"the job must be {job_shape(text)}") from None
    if isinstance(parsed, list):
        raise InvalidInput(
            "the job must be one JSON object; a JSON array of jobs (or JSON Lines) goes in "
            "a file: queuectl enqueue --file jobs.json (- = stdin)"
        )
    raise InvalidInput(f"the job must be {job_shape(None)}")  # a number, a string, ...


def enqueue(request: EnqueueRequest) -> int:
    """Validate the job(s), store them in one transaction, print the id(s) or the count."""
    if request.job is not None and request.file is None:
        items = [_load_job(request.job)]
    elif request.file is not None and request.job is None:
        items = spec.load_batch(_read_job_file(request.file))
    else:
        raise InvalidInput("give a job as JSON, or --file PATH, (not both)")
    if not items:
        raise InvalidInput("no jobs given")
    ids = store_specs(items, request.db, batch=request.file is not None)
    if request.json:
        sys.stdout.write(json.dumps(ids, ensure_ascii=False) + "\n")
    elif request.file is not None:
        print(len(ids))
    else:
        print(ids[0])
    return 0


def store_specs(items: list[Any], db: str | None, *, batch: bool) -> list[str]:
    """Validate job specs (parsed JSON) against this database's defaults and store them
    in one transaction; their ids. Shared with `queuectl add`, which builds its spec
    from options: one set of rules for both."""
    # Not cli.context's open_cli_store: only the producer's part of the store, and one
    # module fewer to import.
    store = open_producer(resolve_database(db))
    config = store.config()
    defaults = spec.SpecDefaults(
        max_retries=config.max_retries, timeout=config.job_timeout, cwd=_cwd()
    )
    jobs = (
        spec.parse_job_batch(items, defaults)
        if batch
        else [spec.parse_job_spec(items[0], defaults)]
    )
    return store.enqueue(jobs)


def _cwd() -> str | None:
    """The default "cwd" of a job; None where the directory was deleted (a job that gives
    its own "cwd" may still be enqueued, see spec.SpecDefaults)."""
    try:
        return os.getcwd()
    except FileNotFoundError:
        return None
