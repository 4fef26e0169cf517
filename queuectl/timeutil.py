"""Timestamps: one representation inside (aware UTC datetimes), ISO 8601 outside.

Pure functions; the clock is always passed in by the caller.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timedelta, timezone

from queuectl.errors import InvalidInput

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@functools.cache
def _iso_re() -> re.Pattern[str]:
    """Python's fromisoformat (3.10) is stricter than ISO 8601 about "Z"; normalise first.

    Compiled at the first use: most `queuectl enqueue` runs parse no timestamp.
    """
    return re.compile(
        r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?$",
        re.IGNORECASE,
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 timestamp; no zone means UTC. Raises InvalidInput."""
    candidate = text.strip()
    if not _iso_re().match(candidate):
        raise InvalidInput(
            f"invalid timestamp {text!r}: expected ISO 8601, e.g. 2026-12-01T09:00:00Z"
        )
    if candidate[-1] in "zZ":
        candidate = candidate[:-1] + "+00:00"
    # fromisoformat in 3.10 takes at most 6 fractional digits.
    candidate = re.sub(r"(\.\d{6})\d+", r"\1", candidate)
    # and wants +HH:MM, not +HHMM
    candidate = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", candidate)
    try:
        parsed = datetime.fromisoformat(candidate)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except ValueError as exc:
        raise InvalidInput(f"invalid timestamp {text!r}: {exc}") from None
    except OverflowError:
        # e.g. 9999-12-31T23:59:59-01:00 is past the last representable UTC instant
        raise InvalidInput(f"invalid timestamp {text!r}: out of range") from None


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with microseconds, ending in Z (the JSON contract)."""
    # isoformat, not strftime("%Y"): strftime does not zero-pad years before 1000.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch: exact, sortable, cheap to store."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def parse_duration(text: str) -> float:
    """Parse '90', '90s', '15m', '2h', '7d' into seconds. Raises InvalidInput."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise InvalidInput(f"invalid duration {text!r}: expected e.g. 30s, 15m, 2h, 7d")
    value = float(match.group(1))
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}[match.group(2)]
    return value * unit


def humanize_age(seconds: float) -> str:
    """A short age for tables: 850ms, 12s, 5m, 3h, 2d."""
    if seconds < 1:
        return f"{max(seconds, 0) * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86_400:.1f}d"
