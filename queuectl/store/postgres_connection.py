"""PostgreSQL connections for the store: connect, describe errors without secrets, reconnect.

The URL may carry a password, and psycopg's messages can quote the connection
string, so no text of psycopg's reaches the user: errors are classified and
described in our own words, naming only the redacted URL. A server's own
message (e.g. `database "x" does not exist`) never contains the client's
password and is kept.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from queuectl.errors import StoreUnavailable

log = logging.getLogger("queuectl.store")

T = TypeVar("T")
Connection = psycopg.Connection[Any]

RECONNECT_FIRST_DELAY = 0.1
RECONNECT_MAX_DELAY = 5.0
# After this long without a working connection a command's operation fails with
# StoreUnavailable. Workers keep trying for as long as the outage lasts (give_up_after None).
RECONNECT_GIVE_UP = 60.0
# During a long outage, one log line this often says the link is still trying.
OUTAGE_REPORT_INTERVAL = 60.0
# How often a wait between reconnect attempts checks whether to stop waiting.
_STOP_CHECK_INTERVAL = 0.25

# Used unless the URL says otherwise. Keepalives and tcp_user_timeout turn a server that
# vanished (host down, network cut) into an error within ~30 s instead of a hang of minutes.
_CONNECTION_DEFAULTS = {
    "connect_timeout": "10",
    "application_name": "queuectl",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}

# Deadlock detected, serialization failure: the server rolled the transaction back whole.
_ROLLED_BACK = ("40P01", "40001")
_TRANSIENT_RETRIES = 5

# Client-side failures (no SQLSTATE): a fragment of libpq's or psycopg's text -> our words.
_CLIENT_FAILURES = (
    ("Connection refused", "connection refused (is the server running and accepting TCP/IP?)"),
    ("timeout expired", "timed out"),
    ("failed to resolve host", "unknown host name"),
    ("could not translate host name", "unknown host name"),
    ("No such file or directory", "no server socket found (is the server running?)"),
    ("No route to host", "no route to host"),
    ("Network is unreachable", "network unreachable"),
    ("server closed the connection", "the server closed the connection"),
    ("connection is closed", "the connection is closed"),
    ("SSL", "SSL error"),
    ("invalid", "invalid connection URL or parameter"),
)
_SERVER_FATAL = re.compile(r"FATAL:\s+([^\n]*)")


def describe_error(exc: BaseException) -> str:
    """What went wrong, in words safe to print: never psycopg's own text."""
    if isinstance(exc, psycopg.Error) and exc.sqlstate:
        primary = exc.diag.message_primary or type(exc).__name__
        return f"{primary} (SQLSTATE {exc.sqlstate})"
    text = str(exc)
    fatal = _SERVER_FATAL.search(text)
    if fatal:  # the server's message, relayed by libpq: it never holds the password
        return f"the server refused the connection: {fatal.group(1).strip()}"
    for fragment, description in _CLIENT_FAILURES:
        if fragment in text:
            return description
    return "connection failed"


def translate(exc: psycopg.Error, url: str) -> StoreUnavailable:
    """A psycopg error as the StoreUnavailable the user sees."""
    sqlstate = exc.sqlstate or ""
    reason = describe_error(exc)
    if sqlstate == "25006":
        return StoreUnavailable(f"database {url} is read-only (a standby server?): {reason}")
    if sqlstate.startswith("42501"):
        return StoreUnavailable(
            f"permission denied on {url}: {reason}; the user needs to own the database "
            "or have CREATE on its schema"
        )
    if sqlstate in ("42P01", "42703", "42883"):
        return StoreUnavailable(
            f"database {url} does not hold the queuectl schema it claims to: {reason}"
        )
    if not sqlstate:  # raised by psycopg itself, with the connection still fine: a bug
        return StoreUnavailable(f"PostgreSQL client error on {url} ({type(exc).__name__})")
    return StoreUnavailable(f"database error on {url}: {reason}")


def connect(dsn: str, url: str) -> Connection:
    """One attempt to open an autocommit connection; StoreUnavailable if it fails."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        raise StoreUnavailable(f"invalid PostgreSQL URL {url}: check its syntax") from None
    for key, value in _CONNECTION_DEFAULTS.items():
        params.setdefault(key, value)
    # Readable timestamps in psql sessions and logs; the store is correct in any zone.
    params["options"] = f"{params.get('options') or ''} -c TimeZone=UTC".strip()
    try:
        return psycopg.connect(make_conninfo("", **params), autocommit=True)
    except psycopg.Error as exc:
        raise StoreUnavailable(
            f"cannot connect to PostgreSQL at {url}: {describe_error(exc)}"
        ) from None


@dataclass(frozen=True, slots=True)
class Applied(Generic[T]):
    """A write that committed although its connection dropped; `value` is its result."""

    value: T


class Link:
    """A connection that comes back after it drops, and runs operations over it.

    `run` retries an operation after a reconnect when that cannot apply it twice:
    a failure inside an explicit transaction before COMMIT was sent rolled it back;
    otherwise (autocommit statement, or COMMIT in flight) the operation's `resolve`
    first asks the database whether the write committed.

    After `give_up_after` seconds without a connection, `run` fails; with None it
    keeps trying, every RECONNECT_MAX_DELAY at most, until `stop_waiting()` is true
    (a worker asked to stop must not wait for the database to come back).
    """

    def __init__(
        self,
        dsn: str,
        url: str,
        *,
        give_up_after: float | None = RECONNECT_GIVE_UP,
        stop_waiting: Callable[[], bool] | None = None,
    ) -> None:
        self._dsn = dsn
        self._url = url
        self._give_up_after = give_up_after
        self._stop_waiting = stop_waiting or (lambda: False)
        self._conn: Connection | None = connect(dsn, url)
        # When the connection last came back after a loss (time.monotonic()); None: never lost.
        self._reconnected_at: float | None = None
        # None: no explicit transaction yet in this attempt; False: in one, COMMIT not
        # sent; True: COMMIT sent (its outcome unknown if the connection drops now).
        self._commit_sent: bool | None = None

    def since_reconnect(self) -> float | None:
        """Seconds since the connection came back after its last loss; None if never lost."""
        if self._reconnected_at is None:
            return None
        return time.monotonic() - self._reconnected_at

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def transaction(self, conn: Connection) -> Iterator[Connection]:
        """BEGIN ... COMMIT on the autocommit connection, noting when COMMIT goes out."""
        self._commit_sent = False
        with conn.transaction():
            yield conn
            self._commit_sent = True

    def run(
        self,
        action: Callable[[Connection], T],
        resolve: Callable[[Connection], Applied[T] | None] | None = None,
    ) -> T:
        """Run `action(conn)`; after a lost connection, reconnect with backoff and retry.

        `resolve` is for writes whose retry could apply them twice: it returns Applied
        when the interrupted attempt committed. Without it the action must be safe to
        repeat (reads, idempotent writes).
        """
        unsure = False  # the last attempt may have committed
        lost_since: float | None = None
        transient_retries = 0
        while True:
            conn = self._conn
            if conn is None or conn.closed:
                conn = self._reconnect(lost_since or time.monotonic())
            try:
                if unsure and resolve is not None:
                    applied = resolve(conn)
                    if applied is not None:
                        return applied.value
                unsure = False
                self._commit_sent = None
                return action(conn)
            except psycopg.Error as exc:
                if exc.sqlstate in _ROLLED_BACK and transient_retries < _TRANSIENT_RETRIES:
                    transient_retries += 1  # the whole transaction was undone: run it again
                    time.sleep(random.uniform(0, 0.01 * transient_retries))
                    continue
                if not (conn.closed or conn.broken):
                    raise translate(exc, self._url) from None
                unsure = unsure or self._commit_sent is not False
                if lost_since is None:
                    lost_since = time.monotonic()
                    log.warning(
                        "lost the connection to %s (%s); reconnecting",
                        self._url,
                        describe_error(exc),
                    )
                self._conn = None
                conn.close()

    def _reconnect(self, lost_since: float) -> Connection:
        delay = RECONNECT_FIRST_DELAY
        reported_at = lost_since
        while True:
            try:
                self._conn = connect(self._dsn, self._url)
            except StoreUnavailable as exc:
                moment = time.monotonic()
                waited = moment - lost_since
                if self._stop_waiting():
                    raise StoreUnavailable(
                        f"lost the connection to {self._url}; stopped reconnecting after "
                        f"{waited:.0f}s to stop: {exc}"
                    ) from None
                if self._give_up_after is not None and waited + delay > self._give_up_after:
                    raise StoreUnavailable(
                        f"lost the connection to {self._url} and could not reconnect "
                        f"for {waited:.0f}s: {exc}"
                    ) from None
                if moment - reported_at >= OUTAGE_REPORT_INTERVAL:
                    reported_at = moment
                    log.warning("still no connection to %s after %.0fs: %s", self._url, waited, exc)
                else:
                    log.debug(
                        "reconnecting to %s failed: %s; next try in %.1fs", self._url, exc, delay
                    )
                self._pause(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
                continue
            self._reconnected_at = time.monotonic()
            log.info("reconnected to %s after %.1fs", self._url, self._reconnected_at - lost_since)
            return self._conn

    def _pause(self, seconds: float) -> None:
        """Sleep between attempts, cut short when it is time to stop waiting."""
        deadline = time.monotonic() + seconds
        while not self._stop_waiting():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, _STOP_CHECK_INTERVAL))
