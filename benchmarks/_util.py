"""Helpers shared by the benchmark sections: plan, statistics, /proc readers, the table."""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Plan:
    """How much work each section does; `quick` trades precision for a ~1 minute run."""

    runs: int
    ceiling_seconds: float
    e2e_jobs: int
    pickup_jobs: int
    pickup_rate: float
    idle_seconds: float
    bulk_jobs: int
    single_enqueues: int
    scale_small: int
    scale_big: int
    scale_pending: int
    scale_claims: int
    cli_repeats: int
    memory_jobs: int
    memory_warmup: int
    claim_jobs: int
    recovery_lease: float
    capture_jobs: int
    purge_jobs: int
    stats_jobs: int
    dashboard_jobs: int
    requests: int

    @classmethod
    def full(cls) -> Plan:
        return cls(
            runs=3,
            ceiling_seconds=3.0,
            e2e_jobs=5_000,
            pickup_jobs=200,
            pickup_rate=20.0,
            idle_seconds=5.0,
            bulk_jobs=100_000,
            single_enqueues=50,
            scale_small=1_000,
            scale_big=1_000_000,
            scale_pending=1_000,
            scale_claims=500,
            cli_repeats=5,
            memory_jobs=20_000,
            memory_warmup=1_000,
            claim_jobs=12_000,
            recovery_lease=5.0,
            capture_jobs=2_000,
            purge_jobs=100_000,
            stats_jobs=1_000_000,
            dashboard_jobs=100_000,
            requests=20,
        )

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            runs=1,
            ceiling_seconds=1.0,
            e2e_jobs=1_000,
            pickup_jobs=60,
            pickup_rate=20.0,
            idle_seconds=2.0,
            bulk_jobs=20_000,
            single_enqueues=15,
            scale_small=1_000,
            scale_big=100_000,
            scale_pending=1_000,
            scale_claims=200,
            cli_repeats=3,
            memory_jobs=2_000,
            memory_warmup=200,
            claim_jobs=2_000,
            recovery_lease=2.0,
            capture_jobs=1_000,
            purge_jobs=20_000,
            stats_jobs=100_000,
            dashboard_jobs=20_000,
            requests=5,
        )


@dataclass(frozen=True)
class Row:
    """One figure of the table. `section` groups rows; `label` identifies the row."""

    section: str
    label: str
    value: str
    target: str = ""


# --- statistics -----------------------------------------------------------------------------
def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction in 0..1) of unsorted values."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def number(value: float, decimals: int = 0) -> str:
    return f"{value:,.{decimals}f}"


def summary(values: Sequence[float], unit: str = "", decimals: int = 0) -> str:
    """The median of per-run figures, with the range across runs when there are several."""
    if not values:
        return "no data"
    text = number(statistics.median(values), decimals) + (f" {unit}" if unit else "")
    if len(values) > 1:
        text += f"  [{number(min(values), decimals)}-{number(max(values), decimals)}]"
    return text


def med(values: Sequence[float]) -> float:
    return statistics.median(values)


# --- processes ------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat utime + stime)."""
    data = Path(f"/proc/{pid}/stat").read_bytes()
    fields = data[data.rindex(b")") + 2 :].split()  # the name may hold spaces and ')'
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` every 10 ms; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f}s")
        time.sleep(0.01)


def write_jobs(path: Path, count: int, command: str = "true") -> Path:
    """A JSON Lines file of `count` jobs for `queuectl enqueue --file`."""
    line = json.dumps({"command": command}) + "\n"
    path.write_text(line * count, encoding="utf-8")
    return path


_STARTED = time.monotonic()


def progress(message: str) -> None:
    """Progress goes to stderr; stdout holds only the header and the table."""
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


# --- the table ------------------------------------------------------------------------------
class Table:
    """Figures side by side: one row per label, one column per backend, then the target."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self._cells: dict[str, dict[str, str]] = {}
        self._targets: dict[str, str] = {}
        self._sections: dict[str, str] = {}
        self._titles: dict[str, str] = {}
        self._fills: dict[tuple[str, str], str] = {}  # (column, section) -> text

    def add(self, column: str, rows: Iterable[Row]) -> None:
        for row in rows:
            self._cells.setdefault(row.label, {})[column] = row.value
            self._sections[row.label] = row.section
            if row.target:
                self._targets[row.label] = row.target

    def fill(self, column: str, section: str, title: str, text: str) -> None:
        """Show `text` in every row of `section` for `column`: why it has no figures there."""
        self._fills[(column, section)] = text
        self._titles[section] = title

    def _rows(self) -> list[tuple[str, str, list[str]]]:
        """(section, label, cells) in order: sections by number, rows as first added."""
        rows = [
            (section, label, [self._cell(label, section, c) for c in self.columns])
            for label, section in self._sections.items()
        ]
        for section, title in self._titles.items():
            if section not in self._sections.values():  # no figures anywhere: one row
                rows.append(
                    (section, title, [self._fills.get((c, section), "-") for c in self.columns])
                )
        return sorted(rows, key=lambda row: int(row[0]))  # stable: keeps the order of addition

    def _cell(self, label: str, section: str, column: str) -> str:
        if column in self._cells[label]:
            return self._cells[label][column]
        return self._fills.get((column, section), "-")

    def render(self) -> str:
        rows = self._rows()
        header = ["figure", *self.columns, "target"]
        body = [[label, *cells, self._targets.get(label, "")] for _, label, cells in rows]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

        def line(cells: Sequence[str]) -> str:
            pairs = zip(cells, widths, strict=True)
            return "  ".join(cell.ljust(width) for cell, width in pairs).rstrip()

        lines = [line(header), line(["-" * width for width in widths])]
        for index, cells in enumerate(body):
            if index and rows[index][0] != rows[index - 1][0]:
                lines.append("")
            lines.append(line(cells))
        return "\n".join(lines)
