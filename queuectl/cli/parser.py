"""The argparse parser of the whole command line: help, completion, and every command.

`queuectl.cli.main` reads the common forms of `enqueue` itself and comes here
for everything else (see main.py for why).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, NoReturn

from queuectl import __version__

STATES = ("pending", "processing", "completed", "failed", "dead")


class _Parser(argparse.ArgumentParser):
    """argparse, with the `Error:` line and exit code 2 of the contract."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        from queuectl.escape import escape_text  # argparse quotes the arguments as given

        sys.stderr.write(f"Error: {escape_text(message)}\n")
        raise SystemExit(2)


def _positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1 or value > 2**63 - 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0 or value > 2**63 - 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be an integer >= 0")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < 1e9:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of seconds >= 0")
    return value


def _interval(text: str) -> float:
    value = _seconds(text)
    if value < 0.1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 0.1 seconds")
    return value


def _final_state(text: str) -> str:
    if text.lower() not in ("completed", "dead"):
        raise argparse.ArgumentTypeError(f"invalid state {text!r} (choose completed or dead)")
    return text.lower()


def _duration(text: str) -> str:
    import re

    if not re.fullmatch(r"\s*\d+(\.\d+)?\s*[smhdw]?\s*", text):
        raise argparse.ArgumentTypeError(f"invalid age {text!r}: expected e.g. 30m, 12h, 7d")
    return text


def _state(text: str) -> str:
    if text.lower() not in STATES:
        raise argparse.ArgumentTypeError(
            f"invalid state {text!r} (choose from {', '.join(STATES)})"
        )
    return text.lower()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command tree, or with `only`, just that top-level command.

    Each parser argparse builds costs start-up time (its gettext lookups alone
    are about a quarter of a millisecond a string), so a plain run builds only
    the command it runs; help and completion build everything.
    """

    def wanted(name: str) -> bool:
        return only is None or only == name

    parser = _Parser(
        prog="queuectl",
        description="A job queue for shell commands: background workers, retries with "
        "exponential backoff, a dead letter queue.",
    )
    parser.add_argument("--version", action="version", version=f"queuectl {__version__}")
    parser.add_argument("--db", help="database: a file path, sqlite:///path or postgresql://...")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    # An explicit prog spares argparse building a help formatter (and importing shutil).
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser, prog="queuectl"
    )
    commands.required = True

    def command(
        group: Any, name: str, handler: str, help_text: str, json_flag: bool = False
    ) -> argparse.ArgumentParser:
        # argparse lists a subcommand even with help=SUPPRESS; leaving help out hides it.
        listed = {} if help_text == argparse.SUPPRESS else {"help": help_text}
        sub: argparse.ArgumentParser = group.add_parser(name, description=help_text, **listed)
        sub.set_defaults(handler=handler)
        if json_flag:
            sub.add_argument("--json", action="store_true", help="print JSON")
        return sub

    def group(name: str, help_text: str) -> Any:
        """A command with actions of its own (`worker start`, `dlq retry`, ...)."""
        parent = command(commands, name, "", help_text)
        actions = parent.add_subparsers(
            dest=f"{name}_command", metavar="ACTION", parser_class=_Parser, prog=f"queuectl {name}"
        )
        actions.required = True
        return actions

    if wanted("init-db"):
        command(commands, "init-db", "queuectl.cli.jobs:init_db", "create or migrate the database")

    if wanted("enqueue"):
        sub = command(
            commands, "enqueue", "queuectl.cli.enqueue:run", "add a job (or many with --file)"
        )
        sub.add_argument(
            "job", nargs="?", metavar="JSON", help='job spec, e.g. \'{"command":"echo hi"}\''
        )
        sub.add_argument(
            "--file", "-f", metavar="PATH", help="JSON Lines or a JSON array; - = stdin"
        )
        sub.add_argument("--json", action="store_true", help="print the ids as JSON")

    if wanted("worker"):
        worker_commands = group("worker", "start or stop workers")
        sub = command(worker_commands, "start", "queuectl.cli.workers:start", "start workers")
        sub.add_argument(
            "--count", "-c", type=_positive_int, default=1, help="how many (default 1)"
        )
        sub.add_argument("--foreground", action="store_true", help="run attached until a signal")
        sub = command(
            worker_commands, "stop", "queuectl.cli.workers:stop", "stop workers gracefully"
        )
        sub.add_argument(
            "--timeout", type=_seconds, help="exit 1 if some still run after S seconds"
        )
        sub.add_argument("--no-wait", action="store_true", help="do not wait for them to exit")
        sub.add_argument("--force", action="store_true", help="interrupt running jobs")
        sub.add_argument(
            "--all-hosts", action="store_true", help="ask every host's workers to stop"
        )
        sub = command(worker_commands, "run", "queuectl.cli.workers:run_one", argparse.SUPPRESS)
        sub.add_argument("--burst", action="store_true", help="exit when the queue is empty")
        sub.add_argument("--id", help="worker id (default: generated)")
        sub.add_argument("--log-file", help="log here, rotated by size (default: stderr)")

    if wanted("status"):
        sub = command(
            commands, "status", "queuectl.cli.jobs:status", "job counts and live workers", True
        )
        sub.add_argument(
            "--watch",
            nargs="?",
            const=2.0,
            type=_interval,
            metavar="SECONDS",
            help="print again every SECONDS (default 2) until Ctrl-C",
        )

    if wanted("list"):
        sub = command(
            commands, "list", "queuectl.cli.jobs:list_jobs", "list jobs, oldest first", True
        )
        sub.add_argument("--state", "-s", type=_state, help="only jobs in this state")
        sub.add_argument("--limit", "-n", type=_non_negative_int, help="at most N jobs")

    if wanted("show"):
        sub = command(commands, "show", "queuectl.cli.jobs:show", "one job and its attempts", True)
        sub.add_argument("id", metavar="ID")
        sub.add_argument("--show-env", action="store_true", help="show env values (may be secrets)")
        sub.add_argument(
            "--no-output", action="store_true", help="without the last lines of the output"
        )

    if wanted("wait"):
        sub = command(commands, "wait", "queuectl.cli.wait:wait", "wait until jobs finish", True)
        sub.add_argument("ids", nargs="*", metavar="ID")
        sub.add_argument(
            "--all", action="store_true", help="the jobs waiting or running now (not later ones)"
        )
        sub.add_argument("--timeout", type=_seconds, help="give up after S seconds (exit 124)")

    if wanted("logs"):
        sub = command(commands, "logs", "queuectl.cli.jobs:logs", "captured output of a job")
        sub.add_argument("id", metavar="ID")
        sub.add_argument(
            "--attempt", type=_positive_int, metavar="N", help="the Nth run, not the latest"
        )
        sub.add_argument("--follow", action="store_true", help="stream until the run ends")
        sub.add_argument(
            "--raw",
            action="store_true",
            help="the output's bytes as written, control characters too, even on a terminal",
        )

    if wanted("dlq"):
        dlq_commands = group("dlq", "the dead letter queue")
        command(dlq_commands, "list", "queuectl.cli.jobs:dlq_list", "list dead jobs", True)
        sub = command(
            dlq_commands,
            "retry",
            "queuectl.cli.jobs:dlq_retry",
            "move dead jobs to pending",
            True,
        )
        sub.add_argument("ids", nargs="*", metavar="ID")
        sub.add_argument("--all", action="store_true", help="every dead job")

    if wanted("config"):
        config_commands = group("config", "persistent settings")
        command(config_commands, "list", "queuectl.cli.settings:config_list", "every key", True)
        sub = command(config_commands, "get", "queuectl.cli.settings:config_get", "one key", True)
        sub.add_argument("key", metavar="KEY")
        sub = command(config_commands, "set", "queuectl.cli.settings:config_set", "set a key")
        sub.add_argument("key", metavar="KEY")
        sub.add_argument("value", metavar="VALUE")

    if wanted("purge"):
        sub = command(
            commands, "purge", "queuectl.cli.operations:purge", "delete old completed/dead jobs"
        )
        sub.add_argument(
            "--state", action="append", type=_final_state, help="completed or dead (default both)"
        )
        sub.add_argument(
            "--older-than", required=True, type=_duration, metavar="AGE", help="e.g. 7d, 12h, 30m"
        )
        sub.add_argument("--dry-run", action="store_true", help="only say what would go")

    if wanted("backup"):
        sub = command(
            commands, "backup", "queuectl.cli.operations:backup", "copy the live database"
        )
        sub.add_argument("path", metavar="PATH", help="a new file")

    if wanted("doctor"):
        command(
            commands,
            "doctor",
            "queuectl.cli.operations:doctor",
            "check database and workers",
            True,
        )

    if wanted("stats"):
        sub = command(
            commands, "stats", "queuectl.cli.stats:stats", "throughput, durations, failures", True
        )
        sub.add_argument(
            "--since", default="1h", metavar="WINDOW", help="e.g. 15m, 1h, 7d (default 1h)"
        )

    if wanted("dashboard"):
        sub = command(
            commands, "dashboard", "queuectl.cli.dashboard:serve", "live web dashboard and /metrics"
        )
        sub.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        sub.add_argument("--port", type=_non_negative_int, default=8080, help="default 8080")
        access = sub.add_mutually_exclusive_group()
        access.add_argument(
            "--token", help="access token (default: QUEUECTL_DASHBOARD_TOKEN, else generated)"
        )
        access.add_argument(
            "--no-token",
            action="store_true",
            help="no token: any local user may use it (loopback only)",
        )

    if wanted("completion"):
        sub = command(
            commands, "completion", "queuectl.cli.completion:print_script", "shell completion"
        )
        sub.add_argument("shell", choices=("bash", "zsh", "fish"))

    return parser


_COMMANDS = (
    "init-db",
    "enqueue",
    "worker",
    "status",
    "list",
    "show",
    "wait",
    "logs",
    "dlq",
    "config",
    "stats",
    "dashboard",
    "completion",
    "purge",
    "backup",
    "doctor",
)


def _command_named(argv: list[str]) -> str | None:
    """The top-level command in argv, if it can be told without parsing; else None."""
    if any(arg in ("-h", "--help") for arg in argv):
        return None
    index = 0
    while index < len(argv) and argv[index].startswith("-"):
        index += 2 if argv[index] == "--db" else 1
    if index < len(argv) and argv[index] in _COMMANDS:
        return argv[index]
    return None


def parse(argv: list[str]) -> argparse.Namespace:
    """The parsed arguments, building only the command they name (or exiting 2 with usage)."""
    return build_parser(_command_named(argv)).parse_args(argv)
