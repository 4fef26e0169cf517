"""Where the data lives: QUEUECTL_HOME, the database URL, private file modes."""

from __future__ import annotations

import os
import re

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
    if raw.startswith(("postgresql://", "postgres://")) or is_conninfo(raw):
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


# libpq's connection keywords (PostgreSQL 17). A string of `keyword=value` pairs using
# only these is a connection string, as psql takes it, not a file name.
# fmt: off
_LIBPQ_KEYWORDS = frozenset((
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "require_auth",
    "channel_binding", "connect_timeout", "client_encoding", "options", "application_name",
    "fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "replication", "gssencmode", "sslmode",
    "sslnegotiation", "sslcompression", "sslcert", "sslkey", "sslpassword", "sslcertmode",
    "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "requirepeer", "ssl_min_protocol_version",
    "ssl_max_protocol_version", "krbsrvname", "gsslib", "gssdelegation", "service",
    "target_session_attrs", "load_balance_hosts", "requiressl",
))
# fmt: on
# Keywords whose value is a secret.
_SECRET_KEYWORDS = ("password", "sslpassword")
# One `keyword = value` of a libpq connection string: the value is quoted ('a b', with
# \' and \\ escapes) or runs to the next blank (with backslash escapes).
_CONNINFO_PAIR = r"([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'?|(?:[^\s\\]|\\.?)*)"


def is_conninfo(text: str) -> bool:
    """Is `text` a libpq key=value connection string (`host=db dbname=queue ...`)?"""
    pairs = re.fullmatch(rf"\s*(?:{_CONNINFO_PAIR}\s*)+", text)
    keys = re.findall(_CONNINFO_PAIR, text)
    return pairs is not None and all(key in _LIBPQ_KEYWORDS for key, _ in keys)


def redact_url(url: str) -> str:
    """The database address with every password shown as ***: safe to print.

    Handles `scheme://user:password@host/...`, `?password=` and `?sslpassword=` in
    the query (keys may be percent-encoded), and the key=value form
    (`host=h password=pw`, `password='a b'`).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return re.sub(_CONNINFO_PAIR, _redact_pair, url)
    # libpq ends the user information at the first "@" before the first "/". A raw "/"
    # in the password breaks that rule (libpq then rejects the URL, and the error names
    # it), so an "@" before the query also counts.
    authority = rest.split("/", 1)[0]
    if "@" not in authority:
        authority = rest.split("?", 1)[0]
    at = authority.rfind("@")
    credentials, host = (rest[:at], rest[at + 1 :]) if at >= 0 else ("", rest)
    path, question, query = host.partition("?")
    if question:
        query = "&".join(_redact_parameter(parameter) for parameter in query.split("&"))
    if at < 0:
        return f"{scheme}://{path}{question}{query}"
    user, colon, _password = credentials.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{path}{question}{query}"


def _redact_parameter(parameter: str) -> str:
    from urllib.parse import unquote  # off the start-up path of commands with no password

    key, equals, _value = parameter.partition("=")
    if equals and unquote(key).strip().lower() in _SECRET_KEYWORDS:
        return f"{key}=***"
    return parameter


def _redact_pair(match: re.Match[str]) -> str:
    if match.group(1).lower() in _SECRET_KEYWORDS:
        return f"{match.group(1)}=***"
    return match.group(0)
