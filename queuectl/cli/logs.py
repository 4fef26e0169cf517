"""A run's captured output, from any host: `queuectl logs ID [--attempt N] [--follow] [--raw]`,
and the last lines of it that end `queuectl show ID`."""

from __future__ import annotations

import codecs
import sys

from queuectl.domain import RunOutput
from queuectl.errors import JobNotFound, OperationFailed
from queuectl.escape import escape_output, escape_text
from queuectl.store.base import Store

_FOLLOW_POLL_SECONDS = 0.25
# Lines of the latest run's output at the end of `show`: enough for the error that ended
# it and its context, few enough that the job's fields stay on the screen.
TAIL_LINES = 10


class _Printer:
    """Writes a run's output as it grows: as bytes, or as escaped text for a terminal.

    Piped or redirected (`logs ID > file`), and with --raw, the bytes go out as the job
    wrote them. On a terminal they are decoded (invalid UTF-8 becomes U+FFFD, never a
    crash) and control and bidi characters escaped, lines and tabs kept: a job's output
    must not recolour, clear or rewrite the reader's terminal.
    """

    def __init__(self, raw: bool) -> None:
        self._decoder = None if raw else codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.printed_total = 0

    def show(self, output: RunOutput) -> None:
        new = output.total_bytes - self.printed_total
        if new <= 0:
            return
        chunk = output.data[-new:] if new <= len(output.data) else output.data
        if new > len(output.data):
            sys.stdout.write(f"[... {new - len(output.data)} earlier bytes not kept ...]\n")
        if self._decoder is None:
            sys.stdout.flush()  # the notice above goes first
            sys.stdout.buffer.write(chunk)
        else:
            sys.stdout.write(escape_output(self._decoder.decode(chunk, final=output.finished)))
        sys.stdout.flush()
        self.printed_total = output.total_bytes


def show_logs(
    store: Store, job_id: str, attempt: int | None, follow: bool, raw: bool = False
) -> int:
    """Print a run's output; `raw`: its bytes unchanged even on a terminal."""
    job = store.get_job(job_id)
    if job is None:
        raise JobNotFound(job_id)
    output = store.get_output(job_id, attempt)
    if output is None and attempt is not None:
        raise OperationFailed(f"job {job_id!r} has no run {attempt} (it has {job.runs_total})")
    printer = _Printer(raw or not sys.stdout.isatty())
    while output is None:  # following a job that has not started yet
        if not follow:
            raise OperationFailed(f"job {job_id!r} has not run yet")
        store.wait_for_jobs(_FOLLOW_POLL_SECONDS, lambda: False)
        output = store.get_output(job_id)
    printer.show(output)
    while follow and not output.finished:
        store.wait_for_jobs(_FOLLOW_POLL_SECONDS, lambda: False)
        latest = store.get_output(job_id, output.n)
        if latest is not None:
            output = latest
            printer.show(output)
    return 0


def print_tail(store: Store, job_id: str) -> None:
    """The last TAIL_LINES lines of the latest run's output, under a header saying what they are.

    Escaped as every line of `show` is (tabs too): they are part of its text, on a terminal
    or not. `logs` is for the output as written.
    """
    output = store.get_output(job_id)
    if output is None:
        return
    running = "" if output.finished else ", still running"
    if output.total_bytes == 0:
        print(f"output of run {output.n}: none{running}")
        return
    # Split on newlines only: a \r (a progress bar) stays in its line, escaped.
    lines = output.data.decode("utf-8", errors="replace").removesuffix("\n").split("\n")
    if len(lines) > TAIL_LINES or len(output.data) < output.total_bytes:
        print(
            f"output (last {min(len(lines), TAIL_LINES)} lines of run {output.n}, "
            f"{output.total_bytes} bytes{running}; queuectl logs {escape_text(job_id)} for all):"
        )
    else:
        print(f"output of run {output.n} ({output.total_bytes} bytes{running}):")
    for line in lines[-TAIL_LINES:]:
        print(escape_text(line))
