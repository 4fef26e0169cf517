"""Where the data lives: QUEUECTL_HOME, the database URL, private file modes."""

from __future__ import annotations

import os

from queuectl.errors import InvalidInput, StoreUnavailable
from queuectl.records import NamedTuple

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


# Plain strings and os.path here, not pathlib: this module is on every command's
# start-up path, and pathlib's import costs several milliseconds.


def queuectl_home() -> str:
    """QUEUECTL_HOME, default ~/.queuectl (the original system's directory)."""
    configured = os.environ.get("QUEUECTL_HOME")
    return os.path.abspath(os.path.expanduser(configured or "~/.queuectl"))


def ensure_private_dir(path: str) -> str:
    """Create the directory 0700 whatever the umask; if it already exists, take away the
    group's and others' permissions (never add any)."""
    try:
        if not os.path.isdir(path):
            os.makedirs(path, mode=PRIVATE_DIR_MODE, exist_ok=True)
            os.chmod(path, PRIVATE_DIR_MODE)
        mode = os.stat(path).st_mode & 0o777
        if mode & PRIVATE_DIR_MODE != mode:
            os.chmod(path, mode & PRIVATE_DIR_MODE)
    except OSError as exc:
        raise StoreUnavailable(f"cannot create data directory {path}: {exc.strerror}") from None
    return path


class DatabaseLocation(NamedTuple):
    """A parsed database address. `url` is safe to print (no password)."""

    kind: str  # "sqlite" or "postgresql"
    path: str | None  # for sqlite
    dsn: str | None  # for postgresql, with the password: never print it
    url: str


def resolve_database(explicit: str | None = None) -> DatabaseLocation:
    """--db, else QUEUECTL_DB, else QUEUECTL_HOME/queue.db.

    Only the default location's directory is created on first use: a file named by
    --db or QUEUECTL_DB must be in a directory that exists, so that a mistyped one
    is an error rather than a new, empty queue.
    """
    raw = explicit or os.environ.get("QUEUECTL_DB") or ""
    if not raw:
        path = os.path.join(queuectl_home(), "queue.db")
        return DatabaseLocation("sqlite", path, None, path)
    if raw.startswith(("postgresql://", "postgres://")):
        return DatabaseLocation("postgresql", None, raw, redact_url(raw))
    if raw.startswith("sqlite:///"):
        raw = raw[len("sqlite://") :]
    elif "://" in raw:
        raise InvalidInput(
            f"unsupported database URL {redact_url(raw)!r}: use a file path, sqlite:///path "
            "or postgresql://..."
        )
    path = os.path.abspath(os.path.expanduser(raw))
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        named_by = "--db" if explicit else "QUEUECTL_DB"
        problem = "is not a directory" if os.path.exists(directory) else "does not exist"
        raise InvalidInput(
            f"{directory} {problem} ({named_by} {path}): create it first, or fix the path"
        )
    return DatabaseLocation("sqlite", path, None, path)


def redact_url(url: str) -> str:
    """Hide the password of scheme://user:password@host/..."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, colon, _password = credentials.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"
