"""`queuectl stats` through the real executable, after a real worker ran real jobs."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.helpers import CliResult, assert_error


def test_stats_after_a_burst_of_work(run_cli: Callable[..., CliResult]) -> None:
    for spec in (
        '{"id": "ok", "command": "true"}',
        '{"id": "bad", "command": "exit 3", "max_retries": 1}',
        '{"id": "later", "command": "true", "delay": 3600}',
    ):
        assert run_cli("enqueue", spec).returncode == 0
    result = run_cli("worker", "run", "--burst")
    assert result.returncode == 0, result

    document = json.loads(run_cli("stats", "--json").stdout)
    assert document["jobs"] == {
        "pending": 1,
        "processing": 0,
        "completed": 1,
        "failed": 0,
        "dead": 1,
        "total": 3,
    }
    assert document["runs"] == {
        "completed": 1,
        "failed": 1,
        "retries": 0,
        "dead_lettered": 1,
        "success_rate": 0.5,
    }
    assert document["dlq_size"] == 1
    assert document["oldest_pending_age"] is None  # "later" is not due
    assert len(document["workers"]) == 1 and document["workers"][0]["completed"] == 1
    assert 0 <= document["duration"]["p50"] <= document["duration"]["max"] < 10
    assert sum(m["failed"] for m in document["per_minute"]) == 1

    text = run_cli("stats", "--since", "15m")
    assert text.returncode == 0, text
    assert "Runs in the last 15m" in text.stdout
    assert "success rate  50.0%" in text.stdout
    assert "failed        1 (retried 0, into the DLQ 1)" in text.stdout
    assert document["workers"][0]["worker_id"] in text.stdout


def test_stats_refuses_a_window_it_cannot_answer(run_cli: Callable[..., CliResult]) -> None:
    for window in ("8d", "soon", "0"):
        assert_error(run_cli("stats", "--since", window), 2)
