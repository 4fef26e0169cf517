"""The command names and the options main's readers take, declared once.

argparse (queuectl.cli.parser) builds its commands and options from these, and
main's readers of the plain `enqueue` and `add` forms (queuectl.cli.main) read
the same ones without importing argparse. So this module imports nothing: it is
on the path of every `queuectl enqueue` (under 0.1 ms of it, bytecode cached).
"""

from __future__ import annotations


class Option:
    """An option both argparse and main's readers take.

    A plain class: a NamedTuple (queuectl.records) would cost `queuectl enqueue` the
    import of records and the build of a namedtuple class.
    """

    __slots__ = ("complete", "flags", "help", "metavar")

    def __init__(
        self,
        flags: tuple[str, ...],
        metavar: str | None,
        help: str,
        complete: str | None = None,
    ) -> None:
        self.flags = flags  # the first is the long one, which names the value
        self.metavar = metavar  # None: a flag that takes no value
        self.help = help
        # What the shells complete the value to: a kind queuectl.cli.completion maps
        # to each shell's completer ("file", "job", ...); None: nothing.
        self.complete = complete

    @property
    def dest(self) -> str:
        return self.flags[0][2:].replace("-", "_")

    @property
    def takes_value(self) -> bool:
        return self.metavar is not None


# Taken before the command and after it (queuectl.cli.parser._global_options).
GLOBAL_OPTIONS = (
    Option(
        ("--db",),
        "PATH|URL",
        "database: a file path, sqlite:///path or postgresql://... (before or after the command)",
        "file",
    ),
    Option(("--debug",), None, "show tracebacks on errors"),
)

ENQUEUE_OPTIONS = (
    Option(("--file", "-f"), "PATH", "JSON Lines or a JSON array; - = stdin", "file"),
    Option(("--json",), None, "print the ids as JSON"),
)

# The top-level commands, in the order the help lists them.
COMMANDS = (
    "init-db",
    "enqueue",
    "add",
    "worker",
    "status",
    "list",
    "show",
    "wait",
    "logs",
    "dlq",
    "config",
    "purge",
    "backup",
    "doctor",
    "stats",
    "dashboard",
    "completion",
)
