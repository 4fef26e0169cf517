"""The retry decision after a failed attempt: a pure function of the counts and settings."""

from __future__ import annotations

from queuectl.domain import JobState
from queuectl.records import NamedTuple

# A delay this long is "never" for practical purposes and stays clear of datetime overflow.
_MAX_DELAY_SECONDS = 10 * 365 * 86_400.0


class RetryDecision(NamedTuple):
    state: JobState  # FAILED (will run again) or DEAD
    delay: float  # seconds until it may run again; 0 when dead


def retry_delay(failures: int, backoff_base: float, backoff_max: float) -> float:
    """Delay after the n-th failure: min(base^n, backoff_max) seconds."""
    try:
        delay = float(backoff_base) ** failures
    except OverflowError:
        delay = float("inf")
    return min(delay, backoff_max, _MAX_DELAY_SECONDS)


def decide_after_failure(
    attempts_done: int, max_retries: int, backoff_base: float, backoff_max: float
) -> RetryDecision:
    """`attempts_done` counts the failure just recorded. max_retries 3 means 3 runs in all."""
    if attempts_done >= max(max_retries, 1):
        return RetryDecision(JobState.DEAD, 0.0)
    return RetryDecision(JobState.FAILED, retry_delay(attempts_done, backoff_base, backoff_max))
