"""The retry decision (docs/ARCHITECTURE.md, section 3): delay min(base^n, backoff_max), dead after
max(max_retries, 1) runs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from queuectl.domain import JobState
from queuectl.retry import decide_after_failure, retry_delay


@pytest.mark.parametrize(
    ("failures", "base", "cap", "delay"),
    [
        (1, 2, 3600, 2),
        (2, 2, 3600, 4),
        (3, 2, 3600, 8),
        (11, 2, 3600, 2048),
        (12, 2, 3600, 3600),  # 4096 capped
        (3, 3, 3600, 27),
        (5, 1, 3600, 1),  # base 1: one second every time
        (2, 1.5, 3600, 2.25),
        (4, 2, 10, 10),
        (1, 2, 0.05, 0.05),
        (0, 2, 3600, 1),
    ],
)
def test_retry_delay(failures: int, base: float, cap: float, delay: float) -> None:
    assert retry_delay(failures, base, cap) == pytest.approx(delay)


def test_huge_exponent_does_not_overflow() -> None:
    assert retry_delay(100_000, 10, 3600) == 3600
    assert retry_delay(10**9, 2.5, 1e12) > 0


@given(
    failures=st.integers(min_value=1, max_value=10_000),
    base=st.floats(min_value=1, max_value=1e6),
    cap=st.floats(min_value=0.001, max_value=1e12),
)
def test_delay_never_exceeds_the_cap_and_grows(failures: int, base: float, cap: float) -> None:
    delay = retry_delay(failures, base, cap)
    assert 0 < delay <= cap
    assert retry_delay(failures + 1, base, cap) >= delay


@pytest.mark.parametrize(("max_retries", "runs"), [(0, 1), (1, 1), (2, 2), (3, 3), (5, 5)])
def test_a_job_dies_after_max_of_max_retries_and_one_runs(max_retries: int, runs: int) -> None:
    for attempt in range(1, runs):
        decision = decide_after_failure(attempt, max_retries, 2, 3600)
        assert decision.state is JobState.FAILED
        assert decision.delay == 2**attempt
    final = decide_after_failure(runs, max_retries, 2, 3600)
    assert final.state is JobState.DEAD
    assert final.delay == 0


def test_max_retries_zero_means_one_run() -> None:
    assert decide_after_failure(1, 0, 2, 3600).state is JobState.DEAD


def test_delay_is_capped_in_the_decision() -> None:
    decision = decide_after_failure(20, 100, 2, 60)
    assert decision.state is JobState.FAILED
    assert decision.delay == 60


def test_more_attempts_than_allowed_is_dead() -> None:
    # e.g. max_retries lowered after the job had run more often
    assert decide_after_failure(7, 3, 2, 3600).state is JobState.DEAD
