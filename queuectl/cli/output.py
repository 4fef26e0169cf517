"""Rendering for people (aligned tables) and for scripts (JSON on stdout only).

Stored strings reach both with their control and bidi characters escaped (queuectl.escape).
"""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from queuectl.domain import Job
from queuectl.escape import escape_json, escape_text
from queuectl.timeutil import format_timestamp

COMMAND_WIDTH = 40


def print_json(document: Any) -> None:
    sys.stdout.write(escape_json(json.dumps(document, ensure_ascii=False, indent=2)) + "\n")


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def shorten(text: str, width: int = COMMAND_WIDTH) -> str:
    """One line, at most `width` columns; tables may shorten commands, never ids.

    Escaped first, so a newline or tab shows as `\\n` / `\\t` and counts its columns.
    """
    flat = " ".join(escape_text(text).split())
    if _width(flat) <= width:
        return flat
    out = ""
    for char in flat:
        if _width(out + char) > width - 1:
            break
        out += char
    return out + "…"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Aligned columns; every cell escaped, since most hold stored strings (ids, hosts, ...)."""
    rows = [[escape_text(cell) for cell in row] for row in rows]
    widths = [_width(h) for h in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], _width(cell))
    lines = []
    for row in [headers, *rows]:
        cells = [cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    sys.stdout.write("\n".join(lines) + "\n")


def short_time(moment: datetime) -> str:
    """Second precision for tables; --json carries the microseconds."""
    return format_timestamp(moment)[:19] + "Z"


def job_rows(jobs: Sequence[Job], now: datetime) -> list[list[str]]:
    rows = []
    for job in jobs:
        next_run = ""
        if job.state.value in ("pending", "failed") and job.run_at > now:
            next_run = short_time(job.run_at)
        rows.append(
            [
                job.id,
                shorten(job.command),
                job.state.value,
                f"{job.attempts}/{job.max_retries}",
                short_time(job.updated_at),
                str(job.priority),
                next_run,
            ]
        )
    return rows


# The original system's columns first (its users' scripts grep them), then ours.
JOB_HEADERS = ("ID", "COMMAND", "STATE", "ATTEMPTS", "LAST_UPDATED", "PRIORITY", "NEXT_RUN")


def print_jobs(jobs: Sequence[Job], now: datetime) -> None:
    if not jobs:
        print("No jobs found.")
        return
    print_table(JOB_HEADERS, job_rows(jobs, now))
