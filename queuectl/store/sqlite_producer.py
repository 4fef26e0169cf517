"""The producer's side of the SQLite store: open the database, read the settings, enqueue.

Opening creates the file (0600, in a 0700 directory), refuses network file
systems, and creates or migrates the schema; writes run in explicit BEGIN
IMMEDIATE transactions, taken in turn through a writer lock (see
_WriterLock); any statement waits out a busy database for a while (see
BusyWaitingConnection); an enqueue is fsynced before it is acknowledged. SqliteStore
(sqlite.py) builds the workers' and the inspecting commands' operations on
this class. `queuectl enqueue` uses it alone, so a process per job imports
only this module and the schema's: no job, run or worker types, no `typing`,
no `contextlib`, and `random` only once a writer has to wait (see
docs/DECISIONS.md on start-up time).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import sqlite3
import stat
import time

from queuectl.errors import DuplicateJob, StoreUnavailable
from queuectl.paths import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE
from queuectl.settings import Config
from queuectl.store.sqlite_schema import LATEST_VERSION, MIGRATIONS
from queuectl.timeutil import to_micros

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see queuectl.records)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, Protocol, TypeVar

    from queuectl.spec import NewJob

    T = TypeVar("T")

    class _OnFile(Protocol):
        """What `translating` needs of the object whose methods it wraps."""

        path: str
        lock_wait: float


# How long a statement waits for a busy database (a writer for the write lock) before
# the command fails.
LOCK_WAIT_LIMIT = 30.0
# Each retry sleeps a random time up to this bound, so waiters do not march in step.
_LOCK_RETRY_MAX_SLEEP = 0.002
# Between tries for the writers' turn: from the first, doubling up to the max. A
# turn lasts a fraction of a millisecond; a try costs a system call.
_TURN_FIRST_SLEEP = 0.00005
_TURN_MAX_SLEEP = 0.0002
_WAL_SIZE_LIMIT = 64 * 1024 * 1024
# Beside the database: writers take turns through an flock on it (see _WriterLock).
WRITER_LOCK_SUFFIX = "-lock"
# Settings are re-read at most this often by a long-lived connection.
_CONFIG_TTL = 2.0
# A batch of more jobs than this is inserted with a page cache of up to this many KiB
# (see SqliteProducer.enqueue); SQLite's default cache is 2 MiB.
_BIG_BATCH_JOBS = 1000
# A worker's connections (two a worker) work on a few hot pages: the runnable index, the
# newest rows. SQLite's default 2 MiB cache each only filled up with pages read once, and
# a worker's memory grew by that much over its first 20,000 jobs.
_WORKER_CACHE_KIB = 512
_BIG_BATCH_CACHE_KIB = 64 * 1024
# File systems whose locking SQLite cannot trust (its documentation warns about them).
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "afs", "ceph")


def filesystem_type(path: str) -> str | None:
    """The type of the file system holding `path`, from /proc/self/mounts (Linux)."""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as handle:
            mounts = [line.split() for line in handle]
    except OSError:
        return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for fields in mounts:
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fields[2]
    return best_type


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    message = str(exc)
    return "locked" in message or "busy" in message


def translate_error(exc: sqlite3.Error, store: _OnFile) -> StoreUnavailable:
    """The queuectl error for a sqlite3 error of `store`'s database."""
    path = store.path
    message = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
        return StoreUnavailable(f"database {path} stayed locked for over {store.lock_wait:g}s")
    if "readonly" in message or "read-only" in message:
        return StoreUnavailable(f"database {path} is read-only: {message}")
    if "full" in message:
        return StoreUnavailable(f"no space left for database {path}: {message}")
    if "not a database" in message or "malformed" in message:
        return StoreUnavailable(f"database {path} is corrupt or not a queuectl database: {message}")
    if "unable to open" in message:
        if not os.access(os.path.dirname(path) or ".", os.W_OK):
            # WAL mode needs to create path-wal and path-shm beside the database.
            return StoreUnavailable(
                f"cannot open database {path}: its directory is read-only or not writable"
            )
        return StoreUnavailable(f"cannot open database {path}: {message}")
    return StoreUnavailable(f"database error on {path}: {message}")


def translating(method: Callable[..., T]) -> Callable[..., T]:
    """Public methods raise queuectl errors only, never sqlite3's (every SQLite store
    class: producer, store, insights)."""

    @functools.wraps(method)
    def wrapper(self: _OnFile, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise translate_error(exc, self) from exc

    return wrapper


class SqliteProducer:
    """One connection to a queue's SQLite file: open, settings, enqueue. One per thread."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durable: bool = True,
        clock: Callable[[], float] = time.time,
        lock_wait: float = LOCK_WAIT_LIMIT,
    ) -> None:
        self.path = os.fspath(path)
        self.description = self.path
        # Seconds any statement waits for a busy database before the store gives up.
        self.lock_wait = lock_wait
        self._clock = clock
        self._config: Config | None = None
        self._config_read_at = 0.0
        self._writer_lock = _WriterLock(self.path + WRITER_LOCK_SUFFIX, lock_wait)
        try:
            self._conn = self._connect(durable)
            self._migrate()
        except sqlite3.Error as exc:
            raise translate_error(exc, self) from exc
        self._file_id = file_identity(self.path)

    # --- connection and schema ----------------------------------------------------
    def _connect(self, durable: bool) -> BusyWaitingConnection:
        created = self._prepare_file()
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves.
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=0.002, factory=BusyWaitingConnection
        )
        conn.lock_wait = self.lock_wait
        conn.execute("PRAGMA busy_timeout = 2")
        # FULL syncs the WAL at every commit: an acknowledged enqueue survives power loss.
        # A worker's bookkeeping may use NORMAL: a power loss can at worst re-run a job.
        conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        if not durable:
            # A checkpoint fsyncs; keep it off the claim path. The worker's heartbeat
            # thread calls maintain() instead.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute(f"PRAGMA cache_size = {-_WORKER_CACHE_KIB}")
        # After a checkpoint, cut the WAL file back to this size: it stays bounded.
        conn.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
        if created:
            _fsync_directory(os.path.dirname(self.path))
        return conn

    def _prepare_file(self) -> bool:
        """Create the directory 0700 and the file 0600, whatever the umask.

        Refuses a network file system, where SQLite's locking cannot be trusted.
        """
        directory = os.path.dirname(self.path)
        if not os.path.exists(directory):
            try:
                os.makedirs(directory, mode=PRIVATE_DIR_MODE, exist_ok=True)
                os.chmod(directory, PRIVATE_DIR_MODE)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create {directory}: {exc.strerror}") from None
        fs_type = filesystem_type(directory)
        if fs_type in NETWORK_FILESYSTEMS:
            raise StoreUnavailable(
                f"{self.path} is on a network file system ({fs_type}), where SQLite's locking "
                "is unsafe and jobs could run twice: keep the database on a local disk, or "
                "use PostgreSQL (QUEUECTL_DB=postgresql://...)"
            )
        created = False
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
            os.close(fd)
            created = True
        except FileExistsError:
            _check_is_database(self.path)  # before touching anything that is not ours
        except OSError as exc:
            raise StoreUnavailable(f"cannot create database {self.path}: {exc.strerror}") from None
        return created

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        # SQLite has read the header: a SQLite file, so its modes are ours to tighten.
        for suffix in ("", "-wal", "-shm"):
            _make_private(self.path + suffix)
        if version == LATEST_VERSION:
            return
        if version > LATEST_VERSION:
            raise StoreUnavailable(
                f"database {self.path} has schema version {version}, newer than this queuectl "
                f"understands ({LATEST_VERSION}): upgrade queuectl"
            )
        tables = self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables == 0:
            # Only possible before the first table exists; lets purge give space back.
            self._conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        self._conn.execute("PRAGMA journal_mode = WAL")
        imported_legacy = False
        with self._write() as conn:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, _description, apply in MIGRATIONS:
                if number > current:
                    if number == 1:
                        imported_legacy = _has_table(conn, "jobs")
                    apply(conn)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                        (number, self._now_us()),
                    )
            conn.execute(f"PRAGMA user_version = {LATEST_VERSION}")
        if imported_legacy:
            # The original system's file had no auto_vacuum; VACUUM applies it now.
            self._conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            self._conn.execute("VACUUM")
        for suffix in ("", "-wal", "-shm"):
            _make_private(self.path + suffix)

    def _write(self) -> _WriteTransaction:
        """A write transaction: BEGIN IMMEDIATE with jittered retries, then COMMIT.

        `with self._write() as conn:`; an exception in the block rolls it back.
        """
        return _WriteTransaction(self._conn, self._writer_lock)

    def _now_us(self) -> int:
        return int(self._clock() * 1_000_000)

    @translating
    def close(self) -> None:
        self._conn.close()
        self._writer_lock.close()

    # --- configuration -------------------------------------------------------------
    @translating
    def stored_config(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM config").fetchall())

    def config(self) -> Config:
        moment = time.monotonic()
        if self._config is None or moment - self._config_read_at > _CONFIG_TTL:
            self._config = Config.from_stored(self.stored_config())
            self._config_read_at = moment
        return self._config

    # --- producers -------------------------------------------------------------------
    @translating
    def enqueue(self, jobs: Sequence[NewJob]) -> list[str]:
        now = self._now_us()
        rows = [
            (
                job.id,
                job.command,
                job.max_retries,
                job.priority,
                to_micros(job.run_at) if job.run_at else now + int(job.delay * 1_000_000),
                job.timeout,
                job.cwd,
                json.dumps(job.env, ensure_ascii=False) if job.env else "{}",
                now,
                now,
            )
            for job in jobs
        ]
        # Generated ids are random, so a big batch's land all over the id index, whose
        # pages then spill from the default 2 MiB cache to the WAL in mid-transaction
        # and are written again and again (100,000 jobs: ~1.2 s where ~0.9 s suffice).
        # The cache grows only as pages are used, and is given back after the batch.
        previous_cache = None
        if len(rows) > _BIG_BATCH_JOBS:
            previous_cache = self._conn.execute("PRAGMA cache_size").fetchone()[0]
            self._conn.execute(f"PRAGMA cache_size = {-_BIG_BATCH_CACHE_KIB}")
        try:
            with self._write() as conn:
                conn.executemany(
                    "INSERT INTO jobs (id, command, state, max_retries, priority, run_at, timeout,"
                    " cwd, env, created_at, updated_at) "
                    "VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                # Pending rows are not counted by a trigger (see migration 3).
                conn.execute(
                    "UPDATE job_counts SET n = n + ? WHERE state = 'pending'", (len(rows),)
                )
        except sqlite3.IntegrityError:
            # Rolled back by now, so only rows that existed before are seen.
            raise DuplicateJob(self._first_existing([job.id for job in jobs])) from None
        finally:
            if previous_cache is not None:
                self._conn.execute(f"PRAGMA cache_size = {int(previous_cache)}")
        return [job.id for job in jobs]

    def _first_existing(self, ids: list[str]) -> str:
        for job_id in ids:
            if self._conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
                return job_id
        return ids[0]


class BusyWaitingConnection(sqlite3.Connection):
    """A connection on which a statement that finds the database busy waits, up to
    `lock_wait` seconds, with short jittered retries.

    Not only a writer's BEGIN IMMEDIATE can find it busy: so can any statement of
    a new connection while the last connection of another process checkpoints the
    WAL as it closes (it holds the whole file, and fsyncs), or recovers the WAL,
    or switches the file to WAL mode; 20 commands started at once met that every
    few rounds. busy_timeout stays at 2 ms, because SQLite's own busy handler
    sleeps a millisecond and more between tries (see _WriterLock).

    Inside a write transaction a busy statement is not retried: SQLite asks for
    a rollback then, and _WriteTransaction makes one.
    """

    lock_wait = LOCK_WAIT_LIMIT
    in_write = False  # set by _WriteTransaction between BEGIN IMMEDIATE and COMMIT

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.OperationalError as exc:
            if self.in_write or not _is_busy(exc):
                raise
        import random  # at the first wait only (see the module docstring)

        deadline = time.monotonic() + self.lock_wait
        while True:
            # Jittered, so that waiters do not march in step.
            time.sleep(random.uniform(0.0001, _LOCK_RETRY_MAX_SLEEP))
            try:
                return super().execute(sql, parameters)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise


class _WriteTransaction:
    """What SqliteProducer._write returns: one write transaction for a `with` block.

    A class rather than a @contextlib.contextmanager generator: importing
    contextlib would cost every `queuectl enqueue` half a millisecond.
    """

    def __init__(self, conn: BusyWaitingConnection, writer_lock: _WriterLock) -> None:
        self._conn = conn
        self._writer_lock = writer_lock

    def __enter__(self) -> sqlite3.Connection:
        conn = self._conn
        self._writer_lock.__enter__()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._writer_lock.__exit__()
            raise
        conn.in_write = True
        return conn

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        conn = self._conn
        conn.in_write = False  # a busy COMMIT may be tried again
        try:
            if exc_type is None:
                try:
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            elif conn.in_transaction:
                conn.execute("ROLLBACK")
        finally:
            self._writer_lock.__exit__()


class _WriterLock:
    """Writers of one database take turns through an flock on a file beside it.

    Waiting on SQLite's own lock is slow: BEGIN IMMEDIATE on a locked database
    runs SQLite's busy handler, which sleeps a whole millisecond and more
    before trying again, so the lock sits free while its waiters sleep (2
    workers lost about a quarter of their throughput that way, and claims
    waited up to 70 ms). An flock attempt costs one system call, so a waiter
    can try every few tens of microseconds, and BEGIN IMMEDIATE then runs only
    once the turn is ours. SQLite's lock stays the real mutual exclusion: this
    one only orders the writers that take it, so a process that does not (an
    older queuectl, the sqlite3 shell) is still safe, only waited for the slow
    way.

    The wait is a loop rather than a blocking flock() so that it can end with
    an error after the store's lock_wait, as before, if a writer is frozen
    holding it. The lock dies with its holder's process. Without the file (a read-only
    directory) there is no turn-taking, only SQLite's lock.
    """

    def __init__(self, path: str, wait_limit: float) -> None:
        self._path = path
        self._wait_limit = wait_limit
        self._fd: int | None = None  # opened at the first write: the database is checked by then
        self._released_at = 0.0

    def __enter__(self) -> None:
        if self._fd is None:
            try:
                self._fd = os.open(
                    self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE
                )
            except OSError:
                self._fd = -1
        if self._fd < 0:
            return
        if time.monotonic() - self._released_at < _TURN_MAX_SLEEP:
            # Back to back (a purge in batches): pause so that a waiter, which tries
            # again within _TURN_MAX_SLEEP, gets its turn in between.
            time.sleep(_TURN_MAX_SLEEP * 1.5)
        delay = _TURN_FIRST_SLEEP
        deadline = 0.0
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                now = time.monotonic()
                if not deadline:
                    deadline = now + self._wait_limit
                elif now > deadline:
                    raise sqlite3.OperationalError("database is locked") from None
                # Jittered and growing: waiters do not march in step, and a long
                # wait costs little CPU.
                import random  # at the first wait only (see the module docstring)

                time.sleep(random.uniform(delay / 2, delay))
                delay = min(delay * 2, _TURN_MAX_SLEEP)

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None and self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._released_at = time.monotonic()

    def close(self) -> None:
        if self._fd is not None and self._fd >= 0:
            os.close(self._fd)
        self._fd = None


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return bool(
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
    )


def _check_is_database(path: str) -> None:
    """An existing path must be a file; SQLite then reads its header (see _migrate), and
    only after that are its modes changed: never chmod a stranger's file.

    Never open() the file here: closing that descriptor would release every POSIX lock
    this process holds on it, those of another thread's SQLite connection included (a
    worker opens a second store for its heartbeat thread). Other processes could then
    checkpoint and reset the WAL under that connection: a corrupt database.
    """
    if os.path.isdir(path):
        raise StoreUnavailable(f"{path} is a directory, not a database file")


def file_identity(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino)


def _make_private(path: str) -> None:
    """Take away the group's and others' permissions; never add any (a database made
    read-only on purpose stays so)."""
    try:
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode):
            return
        mode = stat.S_IMODE(status.st_mode)
        if mode & PRIVATE_FILE_MODE != mode:
            os.chmod(path, mode & PRIVATE_FILE_MODE)
    except OSError:
        pass  # gone, or not ours to change (e.g. read-only mount): opening will tell


def _fsync_directory(directory: str) -> None:
    """Make a new file's directory entry durable too."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
