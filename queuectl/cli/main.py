"""Entry point: read the arguments, dispatch to a handler, map errors to exit codes.

Start-up time matters: one `queuectl enqueue` (or `add`) process per job is a
common pattern, and the enqueue itself (one INSERT, one fsync) takes about a
millisecond. So the common forms of `enqueue` and `add` are read here by hand
(_plain_enqueue, _plain_add): argparse, with the gettext, locale and shutil it
imports and the parser it builds, costs several times that. The options they
read are argparse's, declared once (queuectl.cli.names; add's in
queuectl.cli.add). Everything else, help and every error included, goes to the
argparse parser (queuectl.cli.parser), so usage lines, `Error:` lines and exit
codes are argparse's as before. Each handler module is imported when its
command runs, and it imports only what that command needs; nothing on the
enqueue path imports `typing` (see queuectl/records.py).
"""

from __future__ import annotations

import os
import sys

from queuectl.cli.names import ENQUEUE_OPTIONS, GLOBAL_OPTIONS

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see queuectl.records)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from queuectl.cli.add import AddRequest
    from queuectl.cli.enqueue import EnqueueRequest
    from queuectl.cli.names import Option

# The options the readers take, by flag: the global ones before the command; after
# `enqueue`, its own and the global ones (argparse takes them after a command too).
_GLOBAL_OPTIONS = {flag: option for option in GLOBAL_OPTIONS for flag in option.flags}
_ENQUEUE_OPTIONS = {
    **{flag: option for option in ENQUEUE_OPTIONS for flag in option.flags},
    **_GLOBAL_OPTIONS,
}


def _is_value(arg: str) -> bool:
    """Whether argparse takes `arg` as an option's value or a positional, whatever it is.

    It also takes some strings that start with "-" (e.g. "-1"); those are left to it.
    """
    return arg == "-" or not arg.startswith("-")


def _plain_command(argv: list[str]) -> tuple[str, dict[str, str], list[str]] | None:
    """The command after `[--db URL] [--debug]`, those options (dest -> value, "" for a
    flag) and the words after the command; None if they are not that plain."""
    given: dict[str, str] = {}
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg not in _GLOBAL_OPTIONS:
            return arg, given, argv[index:]
        taken = _take(_GLOBAL_OPTIONS[arg], argv, index, given)
        if taken is None:
            return None
        index = taken
    return None


def _take(option: Option, argv: list[str], index: int, given: dict[str, str]) -> int | None:
    """Record `option`, found before argv[index], in `given` (its value, "" for a flag);
    the index after it, or None where argparse must decide: a repeat (argparse's rule
    is that the last wins) or a missing value (argparse's "expected one argument")."""
    if option.dest in given:
        return None
    if not option.takes_value:
        given[option.dest] = ""
        return index
    if index < len(argv) and _is_value(argv[index]):
        given[option.dest] = argv[index]
        return index + 1
    return None


def _plain_enqueue(argv: list[str]) -> EnqueueRequest | None:
    """`[--db URL] [--debug] enqueue` with JSON, --file/-f PATH, --json, --db, --debug;
    None otherwise.

    Each option at most once (before and after `enqueue` together), the JSON at most
    once, in any order after `enqueue`. Anything else (an abbreviation, `--opt=value`, an option twice,
    a JSON starting with "-", --help, a stray word) is None, and argparse reads
    it. Whatever this accepts, argparse reads the same way (tests/unit/test_cli_argv.py).
    """
    head = _plain_command(argv)
    if head is None or head[0] != "enqueue":
        return None
    _command, given, words = head
    job: str | None = None
    index = 0
    while index < len(words):
        arg = words[index]
        index += 1
        if arg in _ENQUEUE_OPTIONS:
            taken = _take(_ENQUEUE_OPTIONS[arg], words, index, given)
            if taken is None:
                return None
            index = taken
        elif job is None and not arg.startswith("-"):
            job = arg
        else:
            return None
    from queuectl.cli.enqueue import EnqueueRequest

    return EnqueueRequest(job=job, file=given.get("file"), json="json" in given, db=given.get("db"))


def _plain_add(argv: list[str]) -> AddRequest | None:
    """`[--db URL] [--debug] add [OPTIONS] [--] COMMAND...`; None otherwise.

    Each option of add.ADD_OPTIONS at most once (a repeatable one any number of
    times), its value the next word; then `--` and the command, or the command
    from the first word that is no option, if none of its words starts with "-".
    Anything else (an abbreviation, `--opt=value`, a value starting with "-",
    --help) is None, and argparse reads it, as for `enqueue`.
    """
    head = _plain_command(argv)
    if head is None or head[0] != "add":
        return None
    from queuectl.cli.add import ADD_OPTIONS, AddRequest

    _command, given, rest = head
    options = {option.flag: option for option in ADD_OPTIONS}
    values: dict[str, Any] = {}
    json = False
    words: list[str] = []
    index = 0
    while index < len(rest):
        arg = rest[index]
        index += 1
        if arg == "--":
            words = rest[index:]
            break
        if arg == "--json" and not json:
            json = True
        elif arg in options:
            option = options[arg]
            if index == len(rest) or not _is_value(rest[index]):
                return None
            if option.combine is not None:
                values.setdefault(option.dest, []).append(rest[index])
            elif option.dest in values:
                return None
            else:
                values[option.dest] = rest[index]
            index += 1
        elif arg.startswith("-"):
            return None
        else:
            words = rest[index - 1 :]
            if any(word.startswith("-") for word in words):
                return None  # argparse reads such a word as an option of add
            break
    return AddRequest(values=values, words=words, json=json, db=given.get("db"))


def _debug_enabled(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("QUEUECTL_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    request = _plain_enqueue(arguments)
    if request is not None:
        from queuectl.cli.enqueue import enqueue

        return _run(lambda: enqueue(request), arguments)
    add_request = _plain_add(arguments)
    if add_request is not None:
        from queuectl.cli.add import add

        return _run(lambda: add(add_request), arguments)
    import importlib

    from queuectl.cli.parser import parse

    args = parse(arguments)
    module_name, _, function_name = args.handler.partition(":")
    handler = getattr(importlib.import_module(module_name), function_name)
    return _run(lambda: handler(args), arguments)


def _run(handler: Callable[[], int | None], arguments: list[str]) -> int:
    """Run the command; its errors become an `Error:` line and an exit code.

    The line is escaped (queuectl.escape): messages quote commands, paths, hosts and
    errors as they were stored or given. It is imported only on the way out: enqueue's
    start-up pays for nothing it does not use.
    """
    from queuectl.errors import QueuectlError

    try:
        return int(handler() or 0)
    except QueuectlError as exc:
        if _debug_enabled(arguments):
            raise
        from queuectl.escape import escape_lines

        sys.stderr.write(f"Error: {escape_lines(str(exc))}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("Error: interrupted\n")
        return 130
    except BrokenPipeError:
        # `queuectl list | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if _debug_enabled(arguments):
            raise
        from queuectl.escape import escape_text

        message = escape_text(f"unexpected {type(exc).__name__}: {exc}")
        sys.stderr.write(f"Error: {message} (rerun with --debug)\n")
        return 1
