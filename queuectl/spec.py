"""The job spec: strict JSON parsing and validation of what `enqueue` accepts. Pure."""

from __future__ import annotations

import functools
import json
import math
import os

from queuectl.errors import InvalidInput
from queuectl.records import NamedTuple
from queuectl.settings import INT64_MAX
from queuectl.timeutil import parse_timestamp

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see queuectl.records)
if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from typing import Any

MAX_ID_LENGTH = 200
MAX_COMMAND_BYTES = 1024 * 1024
MAX_ENV_BYTES = 1024 * 1024
MAX_ENV_ENTRY_BYTES = 128 * 1024
# Far enough for any real schedule, short enough that now + delay never overflows.
MAX_DELAY_SECONDS = 100 * 365 * 86_400
MAX_TIMEOUT_SECONDS = 100 * 365 * 86_400

SPEC_FIELDS = (
    "id",
    "command",
    "max_retries",
    "priority",
    "run_at",
    "delay",
    "timeout",
    "cwd",
    "env",
)
# The original system's users send the whole job record; these fit a new job only as below.
LEGACY_FIELDS = ("state", "attempts", "created_at", "updated_at")
_ALLOWED_FIELDS = frozenset(SPEC_FIELDS + LEGACY_FIELDS)
_LEGACY_FIELD_SET = frozenset(LEGACY_FIELDS)


class NewJob(NamedTuple):
    """A validated job spec, ready to be stored. `run_at` None means "now".

    Defined here, not in queuectl.domain, so that `queuectl enqueue` does not
    import the job, run and worker types it never uses (start-up time).
    """

    id: str
    command: str
    max_retries: int
    priority: int
    run_at: datetime | None
    delay: float
    timeout: float
    cwd: str
    env: dict[str, str]


class SpecDefaults(NamedTuple):
    """What a field takes when the spec leaves it out (from config and the caller)."""

    max_retries: int
    timeout: float
    cwd: str | None  # None: the caller's directory is gone, so each job must give its own


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # dict() in C, and a loop only to name the duplicate: this runs for every object.
    result = dict(pairs)
    if len(result) < len(pairs):
        seen = set()
        for key, _value in pairs:
            if key in seen:
                raise InvalidInput(f"duplicate key {key!r} in JSON object")
            seen.add(key)
    return result


def _reject_constant(name: str) -> Any:
    raise InvalidInput(f"{name} is not valid JSON")


@functools.cache
def _decoder() -> json.JSONDecoder:
    """One strict decoder, built once: json.loads with hooks builds one per call."""
    return json.JSONDecoder(
        object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
    )


def load_json(text: str, *, what: str = "JSON") -> Any:
    """Parse JSON strictly: no duplicate keys, no NaN/Infinity. Raises InvalidInput."""
    try:
        return _decoder().decode(text)
    except (ValueError, RecursionError) as exc:
        raise _invalid_json(exc, what) from None


def _invalid_json(exc: ValueError | RecursionError, what: str) -> InvalidInput:
    if isinstance(exc, json.JSONDecodeError):
        return InvalidInput(f"invalid {what}: {exc.msg} at line {exc.lineno} column {exc.colno}")
    if isinstance(exc, RecursionError):
        return InvalidInput(f"invalid {what}: nested too deeply")
    # e.g. an integer literal longer than Python's int conversion limit (4300 digits)
    return InvalidInput(f"invalid {what}: {exc}")


def load_batch(text: str) -> list[Any]:
    """A JSON array of job objects, or JSON Lines (one object per non-blank line)."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        items = load_json(text)
        if not isinstance(items, list):
            raise InvalidInput("invalid job file: expected a JSON array or JSON Lines")
        return items
    decode = _decoder().decode  # as load_json does, without its overhead per line
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line and not line.isspace():
            try:
                items.append(decode(line))
            except (ValueError, RecursionError) as exc:
                raise _invalid_json(exc, f"JSON on line {number}") from None
    return items


def new_job_id() -> str:
    """64 random bits in hex: short enough to type, unique in practice."""
    return os.urandom(8).hex()


def _job_ids(count: int) -> Callable[[], str]:
    """new_job_id for up to `count` jobs, from one os.urandom call rather than one each."""
    pool = os.urandom(8 * count).hex()
    return (pool[start : start + 16] for start in range(0, len(pool), 16)).__next__


def validate_id(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"'id' must be a string, not {_type_name(value)}")
    if not 1 <= len(value) <= MAX_ID_LENGTH:
        raise InvalidInput(f"'id' must be 1-{MAX_ID_LENGTH} characters long")
    if value.startswith("-"):
        raise InvalidInput("'id' must not start with '-'")
    if value.isprintable() and " " not in value:
        # No character of Unicode's "Other" or "Separator" categories (but for " ",
        # which isprintable allows): none that the loop below rejects, and no lookup
        # per character (tests/unit/test_spec.py checks this for every code point).
        return value
    import unicodedata  # only for the ids that need the loop

    for char in value:
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            raise InvalidInput(f"'id' must not contain whitespace or control characters ({char!r})")
    return value


def _validate_command(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"'command' must be a string, not {_type_name(value)}")
    if not value or value.isspace():
        raise InvalidInput("'command' must not be blank")
    if "\0" in value:
        raise InvalidInput("'command' must not contain a NUL character")
    # ASCII text is as many bytes as characters, and has no lone surrogate to reject.
    if (len(value) if value.isascii() else len(_utf8(value, "command"))) > MAX_COMMAND_BYTES:
        raise InvalidInput(f"'command' is longer than {MAX_COMMAND_BYTES} bytes")
    return value


def _validate_int(name: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name!r} must be an integer, not {_type_name(value)}")
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise InvalidInput(f"{name!r} is outside the 64-bit integer range")
    if minimum is not None and value < minimum:
        raise InvalidInput(f"{name!r} must be >= {minimum}")
    return value


def _validate_seconds(name: str, value: Any, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{name!r} must be a number of seconds, not {_type_name(value)}")
    if isinstance(value, int) and abs(value) > INT64_MAX:
        raise InvalidInput(f"{name!r} is outside the 64-bit integer range")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidInput(f"{name!r} must be a number >= 0")
    if seconds > maximum:
        raise InvalidInput(f"{name!r} must be at most {maximum:.0f} seconds")
    return seconds


def _validate_cwd(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"'cwd' must be a string, not {_type_name(value)}")
    if not value or "\0" in value:
        raise InvalidInput("'cwd' must be a non-empty path without NUL characters")
    if not os.path.isabs(value):
        raise InvalidInput(f"'cwd' must be an absolute path, not {value!r}")
    _utf8(value, "cwd")
    return value


def _validate_env(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidInput(f"'env' must be an object of strings, not {_type_name(value)}")
    size = 0
    for key, item in value.items():
        if not key or "=" in key or "\0" in key:
            raise InvalidInput(f"'env' has an invalid variable name {key!r}")
        if not isinstance(item, str):
            raise InvalidInput(f"'env' value of {key!r} must be a string, not {_type_name(item)}")
        if "\0" in item:
            raise InvalidInput(f"'env' value of {key!r} must not contain a NUL character")
        entry = len(_utf8(key, "env")) + 1 + len(_utf8(item, "env"))
        if entry >= MAX_ENV_ENTRY_BYTES:
            # Linux refuses any single NAME=value string this long (MAX_ARG_STRLEN).
            raise InvalidInput(f"'env' variable {key!r} is longer than {MAX_ENV_ENTRY_BYTES} bytes")
        size += entry
    if size > MAX_ENV_BYTES:
        raise InvalidInput(f"'env' is larger than {MAX_ENV_BYTES} bytes")
    return dict(value)


def _check_legacy_fields(spec: dict[str, Any]) -> None:
    if "state" in spec and spec["state"] != "pending":
        raise InvalidInput("'state' of a new job can only be \"pending\"")
    if "attempts" in spec and (
        isinstance(spec["attempts"], bool)
        or spec["attempts"] != 0
        or not isinstance(spec["attempts"], int)
    ):
        raise InvalidInput("'attempts' of a new job can only be 0")
    for name in ("created_at", "updated_at"):
        if name in spec:
            if not isinstance(spec[name], str):
                raise InvalidInput(f"{name!r} must be a timestamp string")
            parse_timestamp(spec[name])


def parse_job_spec(
    spec: Any, defaults: SpecDefaults, *, make_id: Callable[[], str] = new_job_id
) -> NewJob:
    """Validate one job spec (already parsed JSON). Raises InvalidInput naming the problem."""
    if not isinstance(spec, dict):
        raise InvalidInput(f"a job must be a JSON object, not {_type_name(spec)}")
    if not _ALLOWED_FIELDS.issuperset(spec):
        unknown = next(key for key in spec if key not in _ALLOWED_FIELDS)
        allowed = ", ".join(SPEC_FIELDS)
        raise InvalidInput(f"unknown field {unknown!r} (allowed: {allowed})")
    if "command" not in spec:
        raise InvalidInput("'command' is required")
    if not _LEGACY_FIELD_SET.isdisjoint(spec):
        _check_legacy_fields(spec)
    if "run_at" in spec and "delay" in spec:
        raise InvalidInput("give either 'run_at' or 'delay', not both")

    run_at = None
    if "run_at" in spec:
        if not isinstance(spec["run_at"], str):
            raise InvalidInput(
                f"'run_at' must be an ISO 8601 string, not {_type_name(spec['run_at'])}"
            )
        run_at = parse_timestamp(spec["run_at"])

    return NewJob(
        id=validate_id(spec["id"]) if "id" in spec else make_id(),
        command=_validate_command(spec["command"]),
        max_retries=(
            _validate_int("max_retries", spec["max_retries"], minimum=0)
            if "max_retries" in spec
            else defaults.max_retries
        ),
        priority=_validate_int("priority", spec["priority"]) if "priority" in spec else 0,
        run_at=run_at,
        delay=_validate_seconds("delay", spec["delay"], MAX_DELAY_SECONDS)
        if "delay" in spec
        else 0.0,
        timeout=(
            _validate_seconds("timeout", spec["timeout"], MAX_TIMEOUT_SECONDS)
            if "timeout" in spec
            else defaults.timeout
        ),
        cwd=_validate_cwd(spec["cwd"]) if "cwd" in spec else _default_cwd(defaults),
        env=_validate_env(spec["env"]) if "env" in spec else {},
    )


def _default_cwd(defaults: SpecDefaults) -> str:
    if defaults.cwd is None:
        raise InvalidInput('the current directory no longer exists: give "cwd" in the job')
    return defaults.cwd


def parse_job_batch(items: list[Any], defaults: SpecDefaults) -> list[NewJob]:
    """Validate every job of a batch; a duplicate id inside the batch is invalid too."""
    jobs: list[NewJob] = []
    seen: set[str] = set()
    make_id = _job_ids(len(items))
    for index, item in enumerate(items, start=1):
        try:
            job = parse_job_spec(item, defaults, make_id=make_id)
        except InvalidInput as exc:
            raise InvalidInput(f"job {index}: {exc}") from None
        if job.id in seen:
            raise InvalidInput(f"job {index}: duplicate id {job.id!r} within the batch")
        seen.add(job.id)
        jobs.append(job)
    return jobs


def _utf8(text: str, name: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{name!r} is not valid Unicode (lone surrogate)") from None


def _type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)
