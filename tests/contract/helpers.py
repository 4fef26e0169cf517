"""What the store contract's modules (tests/contract/test_*_contract.py) share.

The contract (docs/ARCHITECTURE.md) is written against the `store` and `store_factory`
fixtures only, so every backend runs it unchanged: no SQL, no backend imports, no injected
clock. Time-dependent behaviour uses short real leases and delays with `wait_until`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from queuectl.domain import RecoveredJob
from queuectl.store import Store

UTC = timezone.utc
# Short enough to keep the suite fast, long enough that a polling loop never misses it.
LEASE = 0.5


def ids(jobs: list) -> list[str]:
    return [job.id for job in jobs]


def fast_retries(store: Store, backoff_max: str = "0.05") -> None:
    """Failed jobs become runnable again almost at once."""
    store.set_config("backoff_max", backoff_max)


def no_callback(_job: RecoveredJob) -> None:
    return None


def close_to(a: datetime, b: datetime, seconds: float = 0.01) -> bool:
    return abs((a - b).total_seconds()) <= seconds
