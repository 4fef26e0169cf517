"""`queuectl enqueue`: the command scripts run once per job, so it imports little.

Kept apart from the other job commands so its start-up pays only for JSON,
the spec and the store (see the performance notes in docs/DECISIONS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from queuectl import spec
from queuectl.cli.context import open_cli_store
from queuectl.errors import InvalidInput


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


def run(args: argparse.Namespace) -> int:
    if (args.job is None) == (args.file is None):
        raise InvalidInput("give a job as JSON, or --file PATH, (not both)")
    items = (
        spec.load_batch(_read_job_file(args.file))
        if args.file is not None
        else [spec.load_json(args.job, what="job JSON")]
    )
    if not items:
        raise InvalidInput("no jobs given")
    store = open_cli_store(args)
    config = store.config()
    defaults = spec.SpecDefaults(
        max_retries=config.max_retries, timeout=config.job_timeout, cwd=_cwd()
    )
    jobs = (
        spec.parse_job_batch(items, defaults)
        if args.file is not None
        else [spec.parse_job_spec(items[0], defaults)]
    )
    ids = store.enqueue(jobs)
    if args.json:
        sys.stdout.write(json.dumps(ids, ensure_ascii=False) + "\n")
    elif args.file is not None:
        print(len(ids))
    else:
        print(ids[0])
    return 0


def _cwd() -> str:
    try:
        return os.getcwd()
    except FileNotFoundError:
        raise InvalidInput(
            'the current directory no longer exists: give "cwd" in the job'
        ) from None
