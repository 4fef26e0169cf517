"""Timestamps: one representation inside (aware UTC datetimes), ISO 8601 outside.

Pure functions; the clock is always passed in by the caller.
"""

from __future__ import annotations

import functools
import math
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


def parse_timestamp(text: str, *, local: bool = False) -> datetime:
    """Parse an ISO 8601 timestamp into aware UTC. Raises InvalidInput.

    No zone means UTC (the JSON `run_at`), or with `local` the local time of this
    machine (`add --at`, typed by a person), read through the TZ rules of the C library:
    a time that occurs twice as the clocks go back is the first of the two.
    """
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
            # A naive datetime's astimezone() takes it as local time.
            parsed = parsed.astimezone() if local else parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except ValueError as exc:
        raise InvalidInput(f"invalid timestamp {text!r}: {exc}") from None
    except (OverflowError, OSError):
        # e.g. 9999-12-31T23:59:59-01:00 is past the last representable UTC instant;
        # OSError: a local time the C library cannot convert (year 1 in some zones)
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


_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> float:
    """Seconds from '90', '90s', '1.5h', '10m', '2h', '1d', '1w'. Raises InvalidInput.

    The one reader of durations: every flag and setting that takes one uses it.
    Lower-case units only ("M" would be months to some readers); no sign, no exponent.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise InvalidInput(f"invalid duration {text!r}: expected e.g. 90, 30s, 15m, 2h, 1d")
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not math.isfinite(seconds):  # hundreds of digits
        raise InvalidInput(f"invalid duration {text!r}: out of range")
    return seconds


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
