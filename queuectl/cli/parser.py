"""The argparse parser of the whole command line: help, completion, and every command.

`queuectl.cli.main` reads the common forms of `enqueue` itself and comes here
for everything else (see main.py for why).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, NoReturn

    # What the shells complete a value to, by kind ("file", "job", ...): each kind's
    # shtab completer, given by the scripts' writer (queuectl.cli.completion) alone.
    Completers = Mapping[str, object]

from queuectl import __version__
from queuectl.cli.names import COMMANDS, ENQUEUE_OPTIONS, GLOBAL_OPTIONS, Option

STATES = ("pending", "processing", "completed", "failed", "dead")


class _Parser(argparse.ArgumentParser):
    """argparse, with the `Error:` line and exit code 2 of the contract, and epilogs (the
    examples, fields, states and exit codes below each help) printed as written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        from queuectl.escape import escape_text  # argparse quotes the arguments as given

        sys.stderr.write(f"Error: {escape_text(message)}\n")
        raise SystemExit(2)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """argparse's check of a choice, with the nearest one suggested and the hidden
        commands (`worker run`) left out of the list."""
        if action.choices is None or value in action.choices:
            return
        if isinstance(action, argparse._SubParsersAction):
            what = "command" if action.dest == "command" else "action"
            names = [
                name
                for name, parser in action.choices.items()
                if parser.description != argparse.SUPPRESS
            ]
        else:
            what, names = "choice", [str(choice) for choice in action.choices]
        message = f"unknown {what} {value!r}"
        if what == "action":
            message += f" for {self.prog}"
        nearest = _nearest(str(value), names)
        if nearest:
            message += f": did you mean {nearest}?"
        raise argparse.ArgumentError(None, f"{message} (choose from {', '.join(names)})")


def _nearest(word: str, names: list[str]) -> str | None:
    """The name(s) `word` was most likely a typo of, as "X" or "X or Y"; None if none is close.

    Two when their scores are close: difflib scores a swap of two letters below a dropped
    one, so `stauts` is nearer `stats` than `status` to it, and a user may mean either.
    """
    import difflib

    scored = sorted(
        ((difflib.SequenceMatcher(None, word, name).ratio(), name) for name in names),
        reverse=True,
    )
    best = scored[0][0] if scored else 0.0
    close = [name for score, name in scored[:2] if score >= 0.6 and score >= best - 0.1]
    return " or ".join(close) or None


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


def _parsed_duration(text: str) -> float:
    """Seconds from a duration (90, 90s, 10m, 2h, 1d): timeutil's reader, argparse's error."""
    from queuectl.errors import InvalidInput
    from queuectl.timeutil import parse_duration

    try:
        return parse_duration(text)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    """A duration in seconds, for a flag such as --timeout."""
    value = _parsed_duration(text)
    if value >= 1e9:
        raise argparse.ArgumentTypeError(f"{text!r} is too long (at most 1e9 seconds)")
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
    """A duration, checked here but kept as text: the handler reads it (and shows it)."""
    _parsed_duration(text)
    return text


def _state(text: str) -> str:
    if text.lower() not in STATES:
        raise argparse.ArgumentTypeError(
            f"invalid state {text!r} (choose from {', '.join(STATES)})"
        )
    return text.lower()


def _examples(*lines: str) -> str:
    """The epilog every help ends with: one or two command lines a user can copy."""
    return ("Examples:\n" if len(lines) > 1 else "Example:\n") + "".join(
        f"  {line}\n" for line in lines
    )


_EXIT_CODES = """Exit codes:
  0    success
  1    the operation failed (job not found, wrong state, database unreachable)
  2    invalid input (bad JSON, bad field, duplicate id, bad option or value)
  124  wait timed out
  130  interrupted (Ctrl-C)

Each command's --help has its options and examples; README.md has the whole guide.
"""

# One line a field, as in the README's job spec table.
_JOB_FIELDS = """A job is a JSON object; only "command" is required:
  id           unique name, 1-200 characters (default: generated, and printed)
  command      the shell command, run by /bin/sh -c
  max_retries  runs in all; 0 counts as 1 (default: config max_retries)
  priority     integer; higher runs first (default 0)
  run_at       ISO 8601 time before which it does not start (no zone = UTC)
  delay        seconds to wait before the first run (instead of run_at)
  timeout      seconds a run may take, 0 = no limit (default: config job_timeout)
  cwd          absolute directory to run in (default: the current directory)
  env          object of strings added to the command's environment

--file takes JSON Lines (one job a line) or one JSON array; all or nothing.
Without writing JSON: queuectl add -- COMMAND...
"""

_STATES_HELP = """States:
  pending     waiting to run (now, or from its run_at)
  processing  running on a worker
  completed   exited 0
  failed      a run failed; runs again after its backoff
  dead        out of runs: in the dead letter queue (queuectl dlq)
"""


def _completes(action: argparse.Action, kind: str | None, completers: Completers | None) -> None:
    """Mark what `action`'s value completes to, as shtab reads it (its `.complete`)."""
    if kind is not None and completers is not None:
        action.complete = completers[kind]  # type: ignore[attr-defined]


def _add_option(
    parser: argparse.ArgumentParser,
    option: Option,
    completers: Completers | None,
    **overrides: Any,
) -> None:
    """An option of queuectl.cli.names, as main's readers take it."""
    kwargs: dict[str, Any] = {"help": option.help}
    if option.takes_value:
        kwargs["metavar"] = option.metavar
    else:
        kwargs["action"] = "store_true"
    action = parser.add_argument(*option.flags, **{**kwargs, **overrides})
    _completes(action, option.complete, completers)


def _global_options(
    parser: argparse.ArgumentParser, completers: Completers | None, *, listed: bool
) -> None:
    """--db and --debug, taken before the command and after it (`queuectl list --db X`).

    Each command's parser has its own copy, listed only in the top-level help. SUPPRESS
    as the default: a copy that is not given leaves what was given before the command.
    """
    for option in GLOBAL_OPTIONS:
        if listed:
            _add_option(parser, option, completers)
        else:
            _add_option(
                parser, option, completers, default=argparse.SUPPRESS, help=argparse.SUPPRESS
            )


def build_parser(
    only: str | None = None, completers: Completers | None = None
) -> argparse.ArgumentParser:
    """The whole command tree, or with `only`, just that top-level command.

    Each parser argparse builds costs start-up time (its gettext lookups alone
    are about a quarter of a millisecond a string), so a plain run builds only
    the command it runs; help and completion build everything. `completers`:
    what the shells complete each kind of value to (see _completes).
    """

    def wanted(name: str) -> bool:
        return only is None or only == name

    def completes(action: argparse.Action, kind: str | None) -> None:
        _completes(action, kind, completers)

    parser = _Parser(
        prog="queuectl",
        # Written as shown: the epilogs need RawDescriptionHelpFormatter, which keeps this too.
        description="A job queue for shell commands: background workers, retries with\n"
        "exponential backoff, a dead letter queue.",
        epilog=_examples(
            """queuectl enqueue '{"command": "echo hello"}'""",
            "queuectl worker start --count 2",
        )
        + "\n"
        + _EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"queuectl {__version__}")
    _global_options(parser, completers, listed=True)
    # An explicit prog spares argparse building a help formatter (and importing shutil).
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser, prog="queuectl"
    )
    commands.required = True

    def command(
        group: Any,
        name: str,
        handler: str,
        help_text: str,
        json_flag: bool = False,
        *,
        epilog: str | None = None,
    ) -> argparse.ArgumentParser:
        # argparse lists a subcommand even with help=SUPPRESS; leaving help out hides it.
        listed = {} if help_text == argparse.SUPPRESS else {"help": help_text}
        sub: argparse.ArgumentParser = group.add_parser(
            name, description=help_text, epilog=epilog, **listed
        )
        sub.set_defaults(handler=handler)
        _global_options(sub, completers, listed=False)
        if json_flag:
            sub.add_argument("--json", action="store_true", help="print JSON")
        return sub

    def group(name: str, help_text: str, epilog: str) -> Any:
        """A command with actions of its own (`worker start`, `dlq retry`, ...)."""
        parent = command(commands, name, "", help_text, epilog=epilog)
        actions = parent.add_subparsers(
            dest=f"{name}_command", metavar="ACTION", parser_class=_Parser, prog=f"queuectl {name}"
        )
        actions.required = True
        return actions

    if wanted("init-db"):
        command(
            commands,
            "init-db",
            "queuectl.cli.jobs:init_db",
            "create or migrate the database (optional)",
            epilog=_examples("queuectl init-db", "queuectl --db postgresql://host/queue init-db"),
        )

    if wanted("enqueue"):
        sub = command(
            commands,
            "enqueue",
            "queuectl.cli.enqueue:run",
            "add a job (or many with --file)",
            epilog=_JOB_FIELDS
            + "\n"
            + _examples(
                """queuectl enqueue '{"id": "backup", "command": "./backup.sh", "timeout": 3600}'""",
                "queuectl enqueue --file jobs.jsonl",
            ),
        )
        sub.add_argument(
            "job", nargs="?", metavar="JSON", help='job spec, e.g. \'{"command":"echo hi"}\''
        )
        for option in ENQUEUE_OPTIONS:
            _add_option(sub, option, completers)

    if wanted("add"):
        from queuectl.cli.add import ADD_OPTIONS, USAGE

        sub = command(
            commands,
            "add",
            "queuectl.cli.add:run",
            "add a job given as a shell command, no JSON",
            epilog=_examples(
                "queuectl add -- 'make && make test'     one word: the shell command as written",
                "queuectl add --delay 10m -- touch 'my file'   several: quoted as a shell would",
                "queuectl add --id nightly --at 2026-12-01T09:00 --timeout 1h -- ./backup.sh",
            ),
        )
        sub.usage = USAGE
        for add_option in ADD_OPTIONS:
            action = sub.add_argument(
                add_option.flag,
                dest=add_option.dest,
                metavar=add_option.metavar,
                help=add_option.help,
                action="store" if add_option.combine is None else "append",
            )
            completes(action, add_option.complete)
        sub.add_argument("--json", action="store_true", help='print the id as JSON: ["ID"]')
        sub.add_argument(
            "words",
            nargs="*",
            metavar="COMMAND",
            help="the command; put it after -- when a word of it starts with -",
        )

    if wanted("worker"):
        worker_commands = group(
            "worker",
            "start or stop workers",
            _examples("queuectl worker start --count 4", "queuectl worker stop"),
        )
        sub = command(
            worker_commands,
            "start",
            "queuectl.cli.workers:start",
            "start workers",
            epilog=_examples(
                "queuectl worker start --count 4",
                "queuectl worker start --count 2 --foreground   # under systemd or a container",
            ),
        )
        sub.add_argument(
            "--count",
            "-c",
            type=_positive_int,
            default=1,
            metavar="N",
            help="how many (default 1)",
        )
        sub.add_argument("--foreground", action="store_true", help="run attached until a signal")
        sub = command(
            worker_commands,
            "stop",
            "queuectl.cli.workers:stop",
            "stop workers gracefully",
            epilog=_examples("queuectl worker stop", "queuectl worker stop --timeout 60 --force"),
        )
        sub.add_argument(
            "--timeout",
            type=_seconds,
            metavar="SECONDS",
            help="exit 1 if some still run after SECONDS",
        )
        sub.add_argument("--no-wait", action="store_true", help="do not wait for them to exit")
        sub.add_argument("--force", action="store_true", help="interrupt running jobs")
        sub.add_argument(
            "--all-hosts", action="store_true", help="ask every host's workers to stop"
        )
        sub = command(worker_commands, "run", "queuectl.cli.workers:run_one", argparse.SUPPRESS)
        sub.add_argument("--burst", action="store_true", help="exit when the queue is empty")
        sub.add_argument("--id", metavar="ID", help="worker id (default: generated)")
        sub.add_argument(
            "--log-file", metavar="PATH", help="log here, rotated by size (default: stderr)"
        )

    if wanted("status"):
        sub = command(
            commands,
            "status",
            "queuectl.cli.jobs:status",
            "job counts and live workers",
            True,
            epilog=_examples("queuectl status", "queuectl status --watch 5"),
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
            commands,
            "list",
            "queuectl.cli.jobs:list_jobs",
            "list jobs, oldest first",
            True,
            epilog=_STATES_HELP
            + "\n"
            + _examples("queuectl list --state failed", "queuectl list --limit 20 --json"),
        )
        completes(
            sub.add_argument(
                "--state", "-s", type=_state, metavar="STATE", help="only jobs in this state"
            ),
            "state",
        )
        sub.add_argument(
            "--limit", "-n", type=_non_negative_int, metavar="N", help="at most N jobs"
        )

    if wanted("show"):
        sub = command(
            commands,
            "show",
            "queuectl.cli.jobs:show",
            "one job and its attempts",
            True,
            epilog=_examples("queuectl show backup", "queuectl show backup --json"),
        )
        completes(sub.add_argument("id", metavar="ID"), "job")
        sub.add_argument("--show-env", action="store_true", help="show env values (may be secrets)")
        sub.add_argument(
            "--no-output", action="store_true", help="without the last lines of the output"
        )

    if wanted("wait"):
        sub = command(
            commands,
            "wait",
            "queuectl.cli.wait:wait",
            "wait until jobs finish",
            True,
            epilog=_examples(
                'id=$(queuectl add -- make test) && queuectl wait "$id"',
                "queuectl wait --all --timeout 10m",
            ),
        )
        completes(sub.add_argument("ids", nargs="*", metavar="ID"), "job")
        sub.add_argument(
            "--all", action="store_true", help="the jobs waiting or running now (not later ones)"
        )
        sub.add_argument(
            "--timeout", type=_seconds, metavar="SECONDS", help="give up after SECONDS (exit 124)"
        )

    if wanted("logs"):
        sub = command(
            commands,
            "logs",
            "queuectl.cli.jobs:logs",
            "captured output of a job",
            epilog=_examples("queuectl logs backup", "queuectl logs backup --attempt 1"),
        )
        completes(sub.add_argument("id", metavar="ID"), "job")
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
        dlq_commands = group(
            "dlq",
            "the dead letter queue",
            _examples("queuectl dlq list", "queuectl dlq retry --all"),
        )
        command(
            dlq_commands,
            "list",
            "queuectl.cli.jobs:dlq_list",
            "list dead jobs",
            True,
            epilog=_examples("queuectl dlq list", "queuectl dlq list --json"),
        )
        sub = command(
            dlq_commands,
            "retry",
            "queuectl.cli.jobs:dlq_retry",
            "move dead jobs to pending",
            True,
            epilog=_examples("queuectl dlq retry backup", "queuectl dlq retry --all"),
        )
        completes(sub.add_argument("ids", nargs="*", metavar="ID"), "dead_job")
        sub.add_argument("--all", action="store_true", help="every dead job")

    if wanted("config"):
        config_commands = group(
            "config",
            "persistent settings",
            _examples("queuectl config list", "queuectl config set max-retries 5"),
        )
        command(
            config_commands,
            "list",
            "queuectl.cli.settings:config_list",
            "every key",
            True,
            epilog=_examples("queuectl config list", "queuectl config list --json"),
        )
        sub = command(
            config_commands,
            "get",
            "queuectl.cli.settings:config_get",
            "one key",
            True,
            epilog=_examples("queuectl config get backoff-base"),
        )
        completes(sub.add_argument("key", metavar="KEY"), "config_key")
        sub = command(
            config_commands,
            "set",
            "queuectl.cli.settings:config_set",
            "set a key",
            epilog=_examples(
                "queuectl config set max-retries 5", "queuectl config set retention 7d"
            ),
        )
        completes(sub.add_argument("key", metavar="KEY"), "config_key")
        sub.add_argument("value", metavar="VALUE")

    if wanted("purge"):
        sub = command(
            commands,
            "purge",
            "queuectl.cli.operations:purge",
            "delete old completed/dead jobs",
            epilog=_examples(
                "queuectl purge --older-than 7d --dry-run",
                "queuectl purge --state completed --older-than 12h",
            ),
        )
        completes(
            sub.add_argument(
                "--state",
                action="append",
                type=_final_state,
                metavar="STATE",
                help="completed or dead (default both)",
            ),
            "final_state",
        )
        sub.add_argument(
            "--older-than", required=True, type=_duration, metavar="AGE", help="e.g. 7d, 12h, 30m"
        )
        sub.add_argument("--dry-run", action="store_true", help="only say what would go")

    if wanted("backup"):
        sub = command(
            commands,
            "backup",
            "queuectl.cli.operations:backup",
            "copy the live database",
            epilog=_examples("queuectl backup /var/backups/queue.db"),
        )
        completes(sub.add_argument("path", metavar="PATH", help="a new file"), "file")

    if wanted("doctor"):
        command(
            commands,
            "doctor",
            "queuectl.cli.operations:doctor",
            "check database and workers",
            True,
            epilog=_examples("queuectl doctor", "queuectl doctor --json"),
        )

    if wanted("stats"):
        sub = command(
            commands,
            "stats",
            "queuectl.cli.stats:stats",
            "throughput, durations, failures",
            True,
            epilog=_examples("queuectl stats", "queuectl stats --since 7d --json"),
        )
        sub.add_argument(
            "--since", default="1h", metavar="WINDOW", help="e.g. 15m, 1h, 7d (default 1h)"
        )

    if wanted("dashboard"):
        sub = command(
            commands,
            "dashboard",
            "queuectl.cli.dashboard:serve",
            "live web dashboard and /metrics",
            epilog=_examples("queuectl dashboard", "queuectl dashboard --port 9000"),
        )
        sub.add_argument(
            "--host",
            default="127.0.0.1",
            metavar="HOST",
            help="address to bind (default 127.0.0.1)",
        )
        sub.add_argument(
            "--port", type=_non_negative_int, default=8080, metavar="PORT", help="default 8080"
        )
        access = sub.add_mutually_exclusive_group()
        access.add_argument(
            "--token",
            metavar="TOKEN",
            help="access token (default: QUEUECTL_DASHBOARD_TOKEN, else generated)",
        )
        access.add_argument(
            "--no-token",
            action="store_true",
            help="no token: any local user may use it (loopback only)",
        )

    if wanted("completion"):
        sub = command(
            commands,
            "completion",
            "queuectl.cli.completion:print_script",
            "shell completion",
            epilog=_examples(
                'eval "$(queuectl completion bash)"   # in ~/.bashrc',
                "queuectl completion fish > ~/.config/fish/completions/queuectl.fish",
            ),
        )
        sub.add_argument("shell", choices=("bash", "zsh", "fish"))

    return parser


def _command_named(argv: list[str]) -> str | None:
    """The top-level command in argv, if it can be told without parsing; else None."""
    if any(arg in ("-h", "--help") for arg in argv):
        return None
    takes_value = {flag for option in GLOBAL_OPTIONS if option.takes_value for flag in option.flags}
    index = 0
    while index < len(argv) and argv[index].startswith("-"):
        index += 2 if argv[index] in takes_value else 1
    if index < len(argv) and argv[index] in COMMANDS:
        return argv[index]
    return None


def parse(argv: list[str]) -> argparse.Namespace:
    """The parsed arguments, building only the command they name (or exiting 2 with usage)."""
    parser = build_parser(_command_named(argv))
    args, extras = parser.parse_known_args(argv)
    if extras:
        # As parse_args, but the usage shown is the command's and the error has a hint.
        command, path = _command_parser(parser, args)
        command.error(_unrecognized(command, path, args, extras))
    return args


def _command_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser of the command `args` ran (`worker start`'s, say) and its path."""
    path: list[str] = []
    while True:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subparsers:
            return parser, path
        name = getattr(args, subparsers[0].dest)
        path.append(name)
        parser = subparsers[0].choices[name]


def _unrecognized(
    parser: argparse.ArgumentParser, path: list[str], args: argparse.Namespace, extras: list[str]
) -> str:
    """argparse's "unrecognized arguments", and what the user probably meant."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    options = [arg.partition("=")[0] for arg in extras if arg.startswith("-") and arg != "-"]
    if path == ["add"] and getattr(args, "words", None) and options:
        # `add ls -l`: the command's own options, taken for add's without `--`.
        import shlex

        words = shlex.join([*args.words, *extras])
        return f"{message} (the command's options go after --: queuectl add -- {words})"
    if options:
        known = [name for action in parser._actions for name in action.option_strings]
        nearest = _nearest(options[0], known)
        return f"{message} (did you mean {nearest}?)" if nearest else message
    if path == ["enqueue"]:
        from queuectl.cli.hints import split_job

        return f"{message}. {split_job([args.job, *extras] if args.job else extras)}"
    if path == ["worker", "start"] and extras[0].isdigit():
        return f"{message} (the number of workers goes after --count: --count {extras[0]})"
    return message
