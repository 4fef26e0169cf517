"""Stored strings never reach the terminal raw: control characters and bidi overrides escaped.

Jobs whose command, cwd, env, worker id and host hold ESC [ 31 m, \\r, \\b, the 8-bit CSI
\\x9b and U+202E go through the real executable on both backends; no raw control byte or
bidi character may reach stdout or stderr, in text or in `--json`. `logs` escapes a job's
output on a terminal (a real pseudo-terminal here), and writes its bytes unchanged when
piped or given `--raw`.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.worker_helpers import FAST_CONFIG, Queue, fresh_queue, kill_quietly
from tests.helpers import (
    CliResult,
    assert_error,
    postgres_cli_url,
    queuectl_executable,
    read_until_closed,
)

# What a hostile string carries: colour, carriage return, backspace, 8-bit CSI, DEL, a bidi
# override and isolate, a tab and a newline (which break a table row).
HOSTILE = "\x1b[31mred\r\b\x9b2J\x7f\u202etxt.sh\u2066\tx\ny"
# How text output shows it.
ESCAPED = "\\x1b[31mred\\r\\x08\\x9b2J\\x7f\\u202etxt.sh\\u2066\\tx\\ny"

BIDI = {"\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F))}
BIDI |= {*map(chr, range(0x2066, 0x206A)), "\u2028", "\u2029"}


def raw_characters(text: str, allowed: str = "\n") -> list[str]:
    """Control (C0, DEL, C1) and bidi characters in `text`, other than `allowed`."""
    return [
        char
        for char in text
        if char not in allowed and (ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 or char in BIDI)
    ]


def assert_clean(result: CliResult | subprocess.CompletedProcess[bytes]) -> None:
    for stream in (result.stdout, result.stderr):
        text = stream.decode() if isinstance(stream, bytes) else stream
        assert not raw_characters(text), f"raw control or bidi characters in {text!r}"


def run_exactly(
    args: list[str], environment: dict[str, str], cwd: Path, timeout: float = 60
) -> CliResult:
    """The real executable, its output decoded without newline translation (\\r stays)."""
    completed = subprocess.run(
        [queuectl_executable(), *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env=environment,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    return CliResult(completed.returncode, completed.stdout.decode(), completed.stderr.decode())


class EscapeQueue(Queue):
    """A queue in its own home whose CLI calls all go to one database (`QUEUECTL_DB`)."""

    def __init__(self, home: Path, files: Path, db: str | None) -> None:
        super().__init__(home, files)
        self.db = db

    def cli(  # type: ignore[override]
        self,
        *args: str,
        check: bool = True,
        timeout: float = 60,
        env: dict[str, str | None] | None = None,
    ) -> CliResult:
        """As Queue.cli, on this queue's database, through run_exactly."""
        environment = self.environment()
        for key, value in (env or {}).items():
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value
        result = run_exactly(list(args), environment, self.files, timeout)
        if check:
            assert result.returncode == 0, f"queuectl {' '.join(args)} failed: {result}"
            assert "Traceback" not in result.stderr, result
        return result

    def environment(self) -> dict[str, str]:
        environment = {**os.environ, "QUEUECTL_HOME": str(self.home)}
        environment.pop("QUEUECTL_DB", None)
        if self.db:
            environment["QUEUECTL_DB"] = self.db
        return environment


@pytest.fixture(params=["sqlite", "postgresql"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EscapeQueue]:
    """Each backend: SQLite in the queue's home, or a fresh PostgreSQL schema."""
    home, files = tmp_path / "home", tmp_path / "files"
    if request.param == "sqlite":
        with fresh_queue(home, files) as sqlite_queue:
            yield EscapeQueue(sqlite_queue.home, sqlite_queue.files, None)
        return
    for url in postgres_cli_url("queuectl_escape"):
        home.mkdir(mode=0o700)
        postgres_queue = EscapeQueue(home, files, url)
        postgres_queue.configure(**FAST_CONFIG)
        try:
            yield postgres_queue
        finally:
            postgres_queue.cleanup()


def _enqueue_hostile(queue: EscapeQueue) -> tuple[str, str]:
    """A job that completes in a hostile cwd, and one that dies on a hostile missing cwd."""
    workdir = queue.files / f"dir{HOSTILE.replace(chr(10), '')}"
    workdir.mkdir()
    env = {f"KEY{HOSTILE}": f"value{HOSTILE}"}
    done = queue.enqueue(f": '{HOSTILE}'", cwd=str(workdir), env=env)
    dead = queue.enqueue(f": '{HOSTILE}'", cwd=f"/nonexistent/{HOSTILE}", max_retries=1)
    return done, dead


def test_text_output_escapes_stored_strings(queue: EscapeQueue) -> None:
    done, dead = _enqueue_hostile(queue)
    # A worker with a hostile id and host, logging to stderr, runs both jobs.
    worker = queue.cli(
        "worker", "run", "--burst", "--id", f"w{HOSTILE}", env={"QUEUECTL_HOSTNAME": HOSTILE}
    )
    assert_clean(worker)
    assert f"host {ESCAPED}" in worker.stderr, worker.stderr
    assert queue.job(done)["state"] == "completed"
    assert queue.job(dead)["state"] == "dead"

    for args in (["list"], ["dlq", "list"]):
        table = queue.cli(*args)
        assert_clean(table)
        assert ": '\\x1b[31mred\\r\\x08" in table.stdout, table.stdout
    # One line per job: a newline in a command cannot start a fake row.
    assert len(queue.cli("list").stdout.splitlines()) == 3

    for job_id in (done, dead):
        for flags in ([], ["--show-env"]):
            shown = queue.cli("show", job_id, *flags)
            assert_clean(shown)
            assert f"command:      : '{ESCAPED}'" in shown.stdout, shown.stdout
    shown = queue.cli("show", done, "--show-env").stdout
    assert f"KEY{ESCAPED}=value{ESCAPED}" in shown
    assert "dir" + ESCAPED.replace("\\n", "") in shown
    assert f"w{ESCAPED}" in shown  # worker_id, and the WORKER column of the runs
    assert "/nonexistent/\\x1b[31m" in queue.cli("show", dead).stdout  # the error

    for args in (["stats"], ["doctor"], ["wait", done, dead]):
        result = queue.cli(*args, check=False)
        assert "Traceback" not in result.stderr
        assert_clean(result)


def test_status_escapes_a_hostile_host(queue: EscapeQueue) -> None:
    queue.start(1, env={"QUEUECTL_HOSTNAME": HOSTILE})
    queue.wait_workers(1)
    status = queue.cli("status")
    assert_clean(status)
    row = status.stdout.splitlines()[-1]
    assert ESCAPED in row, status.stdout
    stopped = queue.cli("worker", "stop", "--timeout", "10")
    assert_clean(stopped)
    logs = queue.home / "logs"
    for path in logs.iterdir():
        assert not raw_characters(path.read_text()), path.read_text()


def test_doctor_escapes_a_silent_workers_host(queue: EscapeQueue) -> None:
    [pid] = queue.start(1, env={"QUEUECTL_HOSTNAME": HOSTILE})
    queue.wait_workers(1)
    kill_quietly([pid])  # SIGKILL: it stays registered, silent, "on another host"

    def silent() -> CliResult | None:
        result = queue.cli("doctor", check=False)
        return result if "workers not heart-beating" in result.stdout else None

    doctor = queue.wait(silent, timeout=15, what="doctor to report the silent worker")
    assert_clean(doctor)
    assert f"on {ESCAPED} (silent" in doctor.stdout, doctor.stdout


def test_json_escapes_bidi_c1_and_del(queue: EscapeQueue) -> None:
    done, dead = _enqueue_hostile(queue)
    queue.cli("worker", "run", "--burst", env={"QUEUECTL_HOSTNAME": HOSTILE})
    for args in (
        ["list", "--json"],
        ["dlq", "list", "--json"],
        ["show", done, "--json", "--show-env"],
        ["show", dead, "--json"],
        ["stats", "--json"],
    ):
        result = queue.cli(*args)
        assert_clean(result)
        assert "\\u202e" in result.stdout or args[0] == "stats", result.stdout
    # The strings come back whole through a JSON reader.
    document = json.loads(queue.cli("show", done, "--json", "--show-env").stdout)
    assert document["command"] == f": '{HOSTILE}'"
    assert document["env"] == {f"KEY{HOSTILE}": f"value{HOSTILE}"}


def test_error_lines_escape_what_they_quote(tmp_path: Path) -> None:
    environment = {**os.environ, "QUEUECTL_HOME": str(tmp_path / "home")}
    result = run_exactly(["list", HOSTILE], environment, tmp_path)  # "unrecognized arguments"
    assert_error(result, 2)
    assert_clean(result)
    assert ESCAPED in result.stderr


# --- logs -------------------------------------------------------------------------------------
OUTPUT = b"\x1b[31mred\x1b[0m\r\b\xc2\x9b2J\xe2\x80\xaeabc\tz\n\xff\n"


def _run_on_a_terminal(argv: list[str], environment: dict[str, str]) -> bytes:
    """Run `argv` with stdout and stderr on a pseudo-terminal; everything it wrote, unchanged."""
    leader, follower = pty.openpty()
    attributes = termios.tcgetattr(follower)
    attributes[1] &= ~termios.OPOST  # no \n -> \r\n translation: the bytes as written
    termios.tcsetattr(follower, termios.TCSANOW, attributes)
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=environment
        )
    finally:
        os.close(follower)
    try:
        written = read_until_closed(leader)
    finally:
        os.close(leader)
        process.wait(timeout=30)
    assert process.returncode == 0, written
    return written


def test_logs_escapes_on_a_terminal_and_passes_bytes_through_otherwise(tmp_path: Path) -> None:
    with fresh_queue(tmp_path / "home", tmp_path / "files") as plain:
        queue = EscapeQueue(plain.home, plain.files, None)
        script = queue.files / "emit"
        script.write_bytes(OUTPUT)
        job_id = queue.enqueue(f"cat {script}")
        queue.cli("worker", "run", "--burst")
        argv = [queuectl_executable(), "logs", job_id]

        piped = subprocess.run(argv, capture_output=True, env=queue.environment(), check=True)
        assert piped.stdout == OUTPUT  # `logs ID > file` keeps the real output

        raw = _run_on_a_terminal([*argv, "--raw"], queue.environment())
        assert raw == OUTPUT

        shown = _run_on_a_terminal(argv, queue.environment()).decode()
        assert not raw_characters(shown, allowed="\n\t"), shown
        assert shown == ("\\x1b[31mred\\x1b[0m\\r\\x08\\x9b2J\\u202eabc\tz\n\ufffd\n"), shown
