"""Configuration keys: their defaults and the rules their values obey. Pure."""

from __future__ import annotations

import math

from queuectl.errors import InvalidInput
from queuectl.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see queuectl.records)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

INT64_MAX = 2**63 - 1


def _parse_int(text: str) -> int:
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise InvalidInput(f"{text!r} is not an integer") from None
    if abs(value) > INT64_MAX:
        raise InvalidInput(f"{text!r} is out of range")
    return value


_MAX_NUMBER = 1e12


def _parse_number(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise InvalidInput(f"{text!r} is not a number") from None
    if not math.isfinite(value) or abs(value) > _MAX_NUMBER:
        raise InvalidInput(f"{text!r} is out of range")
    return value


def _parse_seconds(text: str) -> float:
    """Seconds, or a duration like 90s, 10m, 2h (stored as the number of seconds)."""
    try:
        float(text.strip())
    except ValueError:
        from queuectl.timeutil import parse_duration

        seconds = parse_duration(text)
        if seconds > _MAX_NUMBER:
            raise InvalidInput(f"{text!r} is out of range") from None
        return seconds
    return _parse_number(text)


# An age past a century keeps everything anyway; far larger ones overflow the date
# arithmetic of the workers' purge (`now - retention`).
_MAX_AGE_SECONDS = 100 * 365 * 86_400


def _parse_age(text: str) -> float:
    """Seconds, or an age like 7d, 12h, 30m."""
    from queuectl.timeutil import parse_duration

    try:
        value = float(text.strip())  # plain seconds, as written back (1e-05 included)
    except ValueError:
        value = parse_duration(text)
    if not value <= _MAX_AGE_SECONDS:  # also NaN and infinity
        raise InvalidInput(f"{text!r} is out of range (at most 100 years)")
    return value


class Setting(NamedTuple):
    key: str
    default: str
    parse: Callable[[str], float]
    minimum: float
    minimum_inclusive: bool
    help: str

    def validate(self, text: str) -> str:
        """Return the canonical text of a valid value; raise InvalidInput otherwise."""
        try:
            value = self.parse(text)
        except InvalidInput as exc:
            raise InvalidInput(f"invalid value for {self.key}: {exc}") from None
        too_small = value < self.minimum if self.minimum_inclusive else value <= self.minimum
        if too_small:
            relation = ">=" if self.minimum_inclusive else ">"
            raise InvalidInput(
                f"invalid value for {self.key}: {text!r} (must be {relation} {_fmt(self.minimum)})"
            )
        return _fmt(value)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in (
        Setting("max_retries", "3", _parse_int, 0, True, "runs per job in all (0 counts as 1)"),
        Setting("backoff_base", "2", _parse_number, 1, True, "retry delay = base^n seconds"),
        Setting("backoff_max", "3600", _parse_seconds, 0, False, "cap on the retry delay, seconds"),
        Setting("job_timeout", "0", _parse_seconds, 0, True, "default job timeout, 0 = none"),
        Setting(
            "lease_seconds", "30", _parse_seconds, 1, True, "silence before a job is recovered"
        ),
        Setting("poll_interval", "1", _parse_seconds, 0, False, "longest idle sleep, seconds"),
        Setting("output_limit", "1048576", _parse_int, 0, True, "bytes of output kept per attempt"),
        Setting(
            "retention", "0", _parse_age, 0, True, "workers purge finished jobs older (0 = off)"
        ),
    )
}


def normalize_key(key: str) -> str:
    """`max-retries` and `max_retries` name the same key."""
    return key.strip().lower().replace("-", "_")


def lookup(key: str) -> Setting:
    setting = SETTINGS.get(normalize_key(key))
    if setting is None:
        known = ", ".join(SETTINGS)
        raise InvalidInput(f"unknown config key {key!r} (known keys: {known})")
    return setting


class Config(NamedTuple):
    """Effective settings, typed. Built from stored overrides over the defaults."""

    max_retries: int
    backoff_base: float
    backoff_max: float
    job_timeout: float
    lease_seconds: float
    poll_interval: float
    output_limit: int
    retention: float

    @classmethod
    def from_stored(cls, stored: Mapping[str, str]) -> Config:
        values = effective_values(stored)
        return cls(
            max_retries=int(values["max_retries"]),
            backoff_base=float(values["backoff_base"]),
            backoff_max=float(values["backoff_max"]),
            job_timeout=float(values["job_timeout"]),
            lease_seconds=float(values["lease_seconds"]),
            poll_interval=float(values["poll_interval"]),
            output_limit=int(values["output_limit"]),
            retention=float(values["retention"]),
        )


def effective_values(stored: Mapping[str, str]) -> dict[str, str]:
    """Every key with its effective text value; invalid stored values fall back to defaults."""
    values = {}
    for key, setting in SETTINGS.items():
        text = stored.get(key)
        if text is None:
            values[key] = setting.default
            continue
        try:
            values[key] = setting.validate(text)
        except InvalidInput:
            values[key] = setting.default
    return values
