"""Helpers for the job execution end-to-end tests (test_execution.py).

They add to worker_helpers.py: the CLI's raw bytes (for exact output sizes), a
job's processes found through QUEUECTL_JOB_ID in their environment, `logs --follow`
read line by line as it prints, and a sampler of the workers' scratch output files.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.worker_helpers import Queue, is_running
from tests.helpers import queuectl_executable

# `logs` prints this line before a tail when earlier output was not kept.
_NOT_KEPT_RE = re.compile(rb"\A\[\.\.\. (\d+) earlier bytes not kept \.\.\.\]\n")


def cli_environment(queue: Queue) -> dict[str, str]:
    environment = dict(os.environ)
    environment["QUEUECTL_HOME"] = str(queue.home)
    environment.pop("QUEUECTL_DB", None)
    return environment


def cli_bytes(queue: Queue, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """Run the real executable and keep stdout as bytes (sizes are exact, nothing decoded)."""
    return subprocess.run(
        [queuectl_executable(), *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env=cli_environment(queue),
        cwd=queue.files,
        timeout=timeout,
        check=False,
    )


def split_not_kept_notice(output: bytes) -> tuple[int | None, bytes]:
    """(bytes `logs` said it did not keep, or None; the output after that notice)."""
    match = _NOT_KEPT_RE.match(output)
    if match is None:
        return None, output
    return int(match.group(1)), output[match.end() :]


def wait_done(queue: Queue, *job_ids: str, timeout: float = 15) -> int:
    """`queuectl wait`: one process that blocks until every job is completed or dead."""
    result = queue.cli(
        "wait", *job_ids, "--timeout", str(timeout), check=False, timeout=timeout + 30
    )
    assert result.returncode in (0, 1), (
        f"jobs {job_ids} not finished in {timeout}s: {result}\n"
        f"--- worker logs ---\n{queue.worker_logs()}"
    )
    return result.returncode


def processes_of_job(job_id: str) -> list[int]:
    """Running processes with QUEUECTL_JOB_ID=<job_id> in their environment."""
    needle = f"QUEUECTL_JOB_ID={job_id}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environ and is_running(int(name)):
            found.append(int(name))
    return found


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "(gone)"


def padded_command(size: int, tail: str = "echo big-ok") -> str:
    """A shell command of exactly `size` bytes: a `:` line of padding, then `tail`."""
    head = ": "
    padding = size - len(head) - 1 - len(tail)
    assert padding > 0
    command = head + "x" * padding + "\n" + tail
    assert len(command.encode()) == size
    return command


@dataclass
class FollowedLine:
    at: float  # time.time() when the line was read
    text: str


@dataclass
class Follower:
    """`queuectl logs ID --follow` as a child, its stdout read line by line as it arrives."""

    process: subprocess.Popen[bytes]
    lines: list[FollowedLine] = field(default_factory=list)
    stderr: bytes = b""
    _readers: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def start(cls, queue: Queue, job_id: str) -> Follower:
        process = subprocess.Popen(
            [queuectl_executable(), "logs", job_id, "--follow"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_environment(queue),
            cwd=queue.files,
        )
        follower = cls(process)
        # Only these threads read the pipes (communicate() would compete for the lines).
        for target in (follower._read_stdout, follower._read_stderr):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            follower._readers.append(thread)
        return follower

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            self.lines.append(FollowedLine(time.time(), raw.decode(errors="replace").rstrip("\n")))

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()

    def wait(self, timeout: float) -> tuple[int, str]:
        """(exit code, stderr); kills it and fails if it is still running after `timeout`."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"logs --follow still running after {timeout}s") from None
        for thread in self._readers:
            thread.join(timeout=5)
        return code, self.stderr.decode(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class PeakSize:
    """Samples the disk space the workers' scratch output files take, in a thread; keeps the
    largest. Space on disk, not st_size: the worker frees a runaway file's head by punching
    a hole, so its size stays the exact byte count while its blocks stay within the cap."""

    def __init__(self, run_dir: Path, interval: float = 0.001) -> None:
        self.run_dir = run_dir
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                workers = list(self.run_dir.iterdir())
            except OSError:
                workers = []
            for worker in workers:
                with contextlib.suppress(OSError):
                    self.peak = max(self.peak, (worker / "output").stat().st_blocks * 512)
            time.sleep(self.interval)

    def __enter__(self) -> PeakSize:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def lateness_summary(lateness_ms: list[float]) -> str:
    return (
        f"lateness of {len(lateness_ms)} scheduled jobs: "
        f"median {statistics.median(lateness_ms):.1f} ms, worst {max(lateness_ms):.1f} ms, "
        f"best {min(lateness_ms):.1f} ms"
    )
