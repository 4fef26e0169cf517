"""`queuectl stats`: the queue now, and its runs over a window."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from queuectl.cli.context import open_cli_store
from queuectl.cli.output import print_json, print_table, short_time
from queuectl.domain import JobState
from queuectl.store.insights import QueueStats, parse_window, with_insights
from queuectl.timeutil import humanize_age

# "·" marks a minute without runs, so the time axis stays visible.
_BARS = "·▁▂▃▄▅▆▇█"
_CHART_WIDTH = 64


def stats(args: argparse.Namespace) -> int:
    window = parse_window(args.since)
    store = with_insights(open_cli_store(args))
    figures = store.stats(window)
    if args.json:
        print_json(figures.to_json())
    else:
        print_stats(figures, args.since.strip())
    return 0


def print_stats(figures: QueueStats, window_text: str) -> None:
    counts = figures.counts
    print("Jobs now:")
    print_table(
        ("STATE", "COUNT"),
        [[state.value, str(counts[state])] for state in JobState]
        + [["total", str(sum(counts.values()))]],
    )
    oldest = figures.oldest_pending_age
    print()
    print(f"DLQ size:        {figures.dlq_size}")
    print(f"Oldest waiting:  {'-' if oldest is None else humanize_age(oldest)}")
    print()

    runs = figures.runs
    print(f"Runs in the last {window_text} (since {short_time(figures.since)}):")
    rate = runs.success_rate
    print(f"  completed     {runs.completed}")
    print(
        f"  failed        {runs.failed} (retried {runs.retries}, into the DLQ {runs.dead_lettered})"
    )
    print(f"  success rate  {'-' if rate is None else f'{rate * 100:.1f}%'}")
    summary = figures.duration_summary()
    print(
        "  duration      "
        + "  ".join(f"{name} {format_seconds(summary[name])}" for name in ("p50", "p95", "max"))
    )
    if runs.completed + runs.failed:
        print()
        minutes = len(figures.per_minute)
        per_bar = max(1, -(-minutes // _CHART_WIDTH))
        label = "minute" if per_bar == 1 else f"{per_bar} minutes"
        completed = [m.completed for m in figures.per_minute]
        failed = [m.failed for m in figures.per_minute]
        top = max(_sums(completed, per_bar) + _sums(failed, per_bar))
        print(f"Per {label}, oldest first (one scale for both):")
        print("  completed  " + sparkline(completed, per_bar, top))
        print("  failed     " + sparkline(failed, per_bar, top))
    if figures.per_worker:
        print()
        print_table(
            ("WORKER", "COMPLETED", "FAILED"),
            [[w.worker_id or "-", str(w.completed), str(w.failed)] for w in figures.per_worker],
        )


def sparkline(values: Sequence[int], per_bar: int, top: int) -> str:
    """One character per `per_bar` values, the tallest for `top`."""
    return "".join(
        _BARS[0] if value == 0 else _BARS[max(1, round(value / max(top, 1) * (len(_BARS) - 1)))]
        for value in _sums(values, per_bar)
    )


def _sums(values: Sequence[int], per_bar: int) -> list[int]:
    return [sum(values[i : i + per_bar]) for i in range(0, len(values), per_bar)]


def format_seconds(value: float | None) -> str:
    """A duration for people: 0.4ms, 12ms, 3.2s, 5m."""
    if value is None:
        return "-"
    if value < 0.01:
        return f"{value * 1000:.1f}ms"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.1f}s"
    return humanize_age(value)
