"""The job spec (README "The job spec"): every rule of what `enqueue` accepts."""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from queuectl import spec
from queuectl.errors import InvalidInput

DEFAULTS = spec.SpecDefaults(max_retries=3, timeout=0.0, cwd="/home/user/project")
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def parse(**fields: Any) -> Any:
    fields.setdefault("command", "echo hi")
    return spec.parse_job_spec(fields, DEFAULTS)


def rejected(**fields: Any) -> str:
    fields.setdefault("command", "echo hi")
    with pytest.raises(InvalidInput) as caught:
        spec.parse_job_spec(fields, DEFAULTS)
    return str(caught.value)


# --- defaults -------------------------------------------------------------------------


def test_minimal_spec_takes_the_defaults() -> None:
    job = spec.parse_job_spec({"command": "echo hi"}, DEFAULTS, make_id=lambda: "generated")
    assert job.id == "generated"
    assert job.command == "echo hi"
    assert job.max_retries == 3
    assert job.priority == 0
    assert job.run_at is None
    assert job.delay == 0
    assert job.timeout == 0
    assert job.cwd == "/home/user/project"
    assert job.env == {}


def test_generated_ids_are_valid_and_distinct() -> None:
    ids = {spec.new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    for job_id in ids:
        assert spec.validate_id(job_id) == job_id


def test_every_field_is_taken() -> None:
    job = parse(
        id="job-1",
        command="make -C /src all",
        max_retries=7,
        priority=-5,
        run_at="2030-01-02T03:04:05.123456Z",
        timeout=12.5,
        cwd="/srv",
        env={"A": "1", "B": "ünïcödé"},
    )
    assert job.id == "job-1"
    assert job.max_retries == 7
    assert job.priority == -5
    assert job.run_at == datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    assert job.timeout == 12.5
    assert job.cwd == "/srv"
    assert job.env == {"A": "1", "B": "ünïcödé"}


def test_config_defaults_apply_when_fields_are_missing() -> None:
    defaults = spec.SpecDefaults(max_retries=0, timeout=30.0, cwd="/")
    job = spec.parse_job_spec({"command": "x"}, defaults)
    assert (job.max_retries, job.timeout, job.cwd) == (0, 30.0, "/")


# --- id -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "job_id",
    [
        "a",
        "x" * 200,
        "é" * 200,  # 200 characters, 400 bytes: the limit counts characters
        "job_1.2:3/4",
        "a'b;\"c",
        "Robert');DROP/**/TABLE/**/jobs;--",
        "日本語のジョブ",
        "🚀rocket",
        "%_*?[]",
        "a-b",  # '-' is fine after the first character
    ],
)
def test_valid_ids(job_id: str) -> None:
    assert parse(id=job_id).id == job_id


@pytest.mark.parametrize(
    ("job_id", "message"),
    [
        ("", "1-200"),
        ("x" * 201, "1-200"),
        ("é" * 201, "1-200"),
        ("-rf", "'-'"),
        ("--help", "'-'"),
        ("has space", "whitespace"),
        ("tab\there", "whitespace"),
        ("new\nline", "whitespace"),
        ("cr\rhere", "whitespace"),
        ("nbsp\u00a0here", "whitespace"),
        ("ideographic\u3000space", "whitespace"),
        ("line\u2028sep", "whitespace"),
        ("nul\x00here", "control"),
        ("bell\x07", "control"),
        ("del\x7f", "control"),
        ("c1\x85", "control"),
        ("zero\u200bwidth", "control"),
        ("bidi\u202eoverride", "control"),
        ("surrogate\ud800", "control"),
    ],
)
def test_invalid_ids(job_id: str, message: str) -> None:
    assert message in rejected(id=job_id)


@pytest.mark.parametrize("job_id", [1, 1.5, True, None, ["a"], {"a": 1}])
def test_id_must_be_a_string(job_id: Any) -> None:
    assert "'id' must be a string" in rejected(id=job_id)


# --- command --------------------------------------------------------------------------


def test_command_is_required() -> None:
    with pytest.raises(InvalidInput, match="'command' is required"):
        spec.parse_job_spec({"id": "a"}, DEFAULTS)


@pytest.mark.parametrize("command", ["", " ", "\t\n  "])
def test_blank_command_is_rejected(command: str) -> None:
    assert "blank" in rejected(command=command)


def test_command_with_nul_is_rejected() -> None:
    assert "NUL" in rejected(command="echo a\x00b")


@pytest.mark.parametrize("command", [1, None, True, ["echo", "hi"], {"sh": "x"}])
def test_command_must_be_a_string(command: Any) -> None:
    assert "'command' must be a string" in rejected(command=command)


def test_command_size_limit_is_one_mebibyte_of_utf8() -> None:
    limit = spec.MAX_COMMAND_BYTES
    assert limit == 1024 * 1024
    assert len(parse(command="x" * limit).command) == limit
    assert "longer than" in rejected(command="x" * (limit + 1))
    # Bytes, not characters: 'é' is 2 bytes in UTF-8.
    assert "longer than" in rejected(command="é" * (limit // 2 + 1))


def test_command_with_lone_surrogate_is_rejected() -> None:
    assert "Unicode" in rejected(command="echo \ud800")


def test_multiline_unicode_command_is_kept_verbatim() -> None:
    command = "for i in 1 2 3; do\n  echo \"$i ü\" 'quoted;'\ndone  "
    assert parse(command=command).command == command


# --- integers -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["max_retries", "priority"])
@pytest.mark.parametrize("value", [True, False, 1.0, 2.5, "3", None, [1], {"n": 1}])
def test_integer_fields_reject_other_types(name: str, value: Any) -> None:
    assert "must be an integer" in rejected(**{name: value})


@pytest.mark.parametrize("value", [INT64_MAX + 1, INT64_MIN - 1, 10**30, -(10**30)])
def test_priority_outside_64_bits_is_rejected(value: int) -> None:
    assert "64-bit" in rejected(priority=value)


@pytest.mark.parametrize("value", [INT64_MIN, -1, 0, 1, INT64_MAX])
def test_priority_inside_64_bits_is_accepted(value: int) -> None:
    assert parse(priority=value).priority == value


def test_max_retries_range() -> None:
    assert parse(max_retries=0).max_retries == 0
    assert parse(max_retries=INT64_MAX).max_retries == INT64_MAX
    assert ">= 0" in rejected(max_retries=-1)
    assert "64-bit" in rejected(max_retries=INT64_MAX + 1)


# --- run_at and delay -----------------------------------------------------------------


def test_run_at_without_zone_is_utc() -> None:
    assert parse(run_at="2030-06-01T12:00:00").run_at == datetime(
        2030, 6, 1, 12, tzinfo=timezone.utc
    )


def test_run_at_with_offset_is_converted_to_utc() -> None:
    assert parse(run_at="2030-06-01T12:00:00+02:00").run_at == datetime(
        2030, 6, 1, 10, tzinfo=timezone.utc
    )


@pytest.mark.parametrize(
    "value", ["tomorrow", "", "2030-13-01T00:00:00Z", "1700000000", "2030-06-01T25:00:00"]
)
def test_bad_run_at_strings_are_rejected(value: str) -> None:
    assert "invalid timestamp" in rejected(run_at=value)


@pytest.mark.parametrize("value", [1700000000, 1.5, None, True, ["2030-01-01"]])
def test_run_at_must_be_a_string(value: Any) -> None:
    assert "'run_at' must be an ISO 8601 string" in rejected(run_at=value)


def test_run_at_and_delay_together_are_rejected() -> None:
    assert "not both" in rejected(run_at="2030-01-01T00:00:00Z", delay=5)


@pytest.mark.parametrize("value", [0, 0.25, 5, 86_400 * 365])
def test_delay_accepts_non_negative_seconds(value: float) -> None:
    assert parse(delay=value).delay == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, ">= 0"),
        (-0.001, ">= 0"),
        (True, "number of seconds"),
        ("5", "number of seconds"),
        (None, "number of seconds"),
        (10**30, "64-bit"),
        (spec.MAX_DELAY_SECONDS + 1, "at most"),
    ],
)
def test_bad_delays_are_rejected(value: Any, message: str) -> None:
    assert message in rejected(delay=value)


# --- timeout, cwd, env ----------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 0.5, 30, 3600.25])
def test_timeout_accepts_non_negative_seconds(value: float) -> None:
    assert parse(timeout=value).timeout == value


@pytest.mark.parametrize("value", [-1, "30", True, None, spec.MAX_TIMEOUT_SECONDS + 1])
def test_bad_timeouts_are_rejected(value: Any) -> None:
    rejected(timeout=value)


@pytest.mark.parametrize("value", ["/", "/tmp", "/path with spaces/ü"])
def test_absolute_cwd_is_accepted(value: str) -> None:
    assert parse(cwd=value).cwd == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("relative/dir", "absolute"),
        (".", "absolute"),
        ("~/x", "absolute"),
        ("", "non-empty"),
        ("/tmp/\x00x", "NUL"),
        (1, "must be a string"),
        (None, "must be a string"),
    ],
)
def test_bad_cwd_is_rejected(value: Any, message: str) -> None:
    assert message in rejected(cwd=value)


def test_env_object_of_strings_is_accepted() -> None:
    env = {"PATH_EXTRA": "/opt/bin", "EMPTY": "", "UNI": "ü€", "lower": "x"}
    assert parse(env=env).env == env


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["A=1"], "object of strings"),
        ("A=1", "object of strings"),
        (None, "object of strings"),
        ({"A": 1}, "must be a string"),
        ({"A": None}, "must be a string"),
        ({"A": True}, "must be a string"),
        ({"A": ["x"]}, "must be a string"),
        ({"": "x"}, "invalid variable name"),
        ({"A=B": "x"}, "invalid variable name"),
        ({"A\x00": "x"}, "invalid variable name"),
        ({"A": "x\x00y"}, "NUL"),
        ({"A": "x" * (spec.MAX_ENV_BYTES + 1)}, "longer than"),
        ({"A": "x" * spec.MAX_ENV_ENTRY_BYTES}, "longer than"),  # one entry past MAX_ARG_STRLEN
        ({f"V{i}": "x" * 100_000 for i in range(11)}, "larger than"),  # over 1 MiB in all
    ],
)
def test_bad_env_is_rejected(value: Any, message: str) -> None:
    assert message in rejected(env=value)


# --- unknown fields and the original system's whole-record form ------------------------


@pytest.mark.parametrize("field", ["retries", "Command", "ID", "extra", "output_limit"])
def test_unknown_fields_are_rejected(field: str) -> None:
    assert f"unknown field {field!r}" in rejected(**{field: 1})


def test_spec_must_be_an_object() -> None:
    for value in (["echo"], "echo", 1, None):
        with pytest.raises(InvalidInput, match="must be a JSON object"):
            spec.parse_job_spec(value, DEFAULTS)


LEGACY_RECORD = {
    "id": "job1",
    "command": "sleep 2",
    "state": "pending",
    "attempts": 0,
    "max_retries": 3,
    "created_at": "2025-11-04T10:30:00Z",
    "updated_at": "2025-11-04T10:30:00Z",
}


def test_legacy_whole_record_is_accepted_as_a_new_job() -> None:
    job = spec.parse_job_spec(dict(LEGACY_RECORD), DEFAULTS)
    assert (job.id, job.command, job.max_retries) == ("job1", "sleep 2", 3)


def test_legacy_record_with_the_original_systems_timestamps() -> None:
    record = dict(LEGACY_RECORD, created_at="2025-11-04T10:30:00.123456+00:00")
    assert spec.parse_job_spec(record, DEFAULTS).id == "job1"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("state", "processing"),
        ("state", "completed"),
        ("state", "failed"),
        ("state", "dead"),
        ("state", "PENDING"),
        ("state", None),
        ("attempts", 1),
        ("attempts", -1),
        ("attempts", 0.0),
        ("attempts", False),
        ("attempts", "0"),
        ("created_at", "yesterday"),
        ("created_at", 1700000000),
        ("updated_at", "not a time"),
        ("updated_at", None),
    ],
)
def test_legacy_record_that_does_not_fit_a_new_job_is_rejected(field: str, value: Any) -> None:
    with pytest.raises(InvalidInput):
        spec.parse_job_spec(dict(LEGACY_RECORD, **{field: value}), DEFAULTS)


# --- strict JSON ----------------------------------------------------------------------


def test_duplicate_keys_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="duplicate key 'command'"):
        spec.load_json('{"command": "a", "command": "b"}')


def test_duplicate_keys_are_rejected_when_nested() -> None:
    with pytest.raises(InvalidInput, match="duplicate key 'A'"):
        spec.load_json('{"command": "a", "env": {"A": "1", "A": "2"}}')


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_constants_are_rejected(constant: str) -> None:
    with pytest.raises(InvalidInput, match="not valid JSON"):
        spec.load_json(f'{{"command": "a", "timeout": {constant}}}')


def test_number_overflowing_to_infinity_is_rejected_by_validation() -> None:
    item = spec.load_json('{"command": "a", "timeout": 1e400}')
    with pytest.raises(InvalidInput):
        spec.parse_job_spec(item, DEFAULTS)


def test_huge_integer_literal_is_invalid_input() -> None:
    # Longer than Python's int conversion limit: must be InvalidInput, not a ValueError.
    with pytest.raises(InvalidInput):
        spec.load_json('{"command": "a", "priority": ' + "9" * 5000 + "}")


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deep_nesting_is_invalid_input(depth: int) -> None:
    with pytest.raises(InvalidInput, match="nested too deeply"):
        spec.load_json("[" * depth + "]" * depth)


@pytest.mark.parametrize(
    "text", ["", "{", '{"command": }', "{'command': 'x'}", '{"command": "x"} trailing', "\ufeff{}"]
)
def test_malformed_json_is_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput, match="invalid"):
        spec.load_json(text)


# --- batches --------------------------------------------------------------------------


def test_json_lines_batch() -> None:
    text = '{"command": "a"}\n\n  \n{"id": "b", "command": "b"}\r\n{"command": "c"}\n'
    items = spec.load_batch(text)
    assert [item["command"] for item in items] == ["a", "b", "c"]


def test_json_array_batch() -> None:
    text = '\n  [\n {"command": "a"},\n {"command": "b"}\n]\n'
    assert [item["command"] for item in spec.load_batch(text)] == ["a", "b"]


def test_empty_batches_parse_to_nothing() -> None:
    assert spec.load_batch("") == []
    assert spec.load_batch("\n\n") == []
    assert spec.load_batch("[]") == []


def test_json_lines_error_names_the_line() -> None:
    with pytest.raises(InvalidInput, match="line 2"):
        spec.load_batch('{"command": "a"}\n{"command": \n')


def test_pretty_printed_single_object_is_not_json_lines() -> None:
    with pytest.raises(InvalidInput):
        spec.load_batch(json.dumps({"command": "a"}, indent=2))


def test_batch_validates_every_job_and_names_the_bad_one() -> None:
    items = [{"command": "a"}, {"command": "b", "bogus": 1}]
    with pytest.raises(InvalidInput, match="job 2: unknown field 'bogus'"):
        spec.parse_job_batch(items, DEFAULTS)


def test_duplicate_id_inside_a_batch_is_rejected() -> None:
    items = [{"id": "x", "command": "a"}, {"id": "y", "command": "b"}, {"id": "x", "command": "c"}]
    with pytest.raises(InvalidInput, match="job 3: duplicate id 'x' within the batch"):
        spec.parse_job_batch(items, DEFAULTS)


def test_batch_generates_distinct_ids() -> None:
    jobs = spec.parse_job_batch([{"command": "a"}] * 50, DEFAULTS)
    assert len({job.id for job in jobs}) == 50


def test_batch_item_must_be_an_object() -> None:
    with pytest.raises(InvalidInput, match="job 1"):
        spec.parse_job_batch([["echo"]], DEFAULTS)


# --- the shortcuts of the per-job checks (enqueue --file runs them 100,000 times) --------


_REJECTED_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")


def _id_characters_allowed(value: str) -> bool:
    """The id rule, one character at a time (what validate_id's shortcut must agree with)."""
    return not any(
        char.isspace() or unicodedata.category(char) in _REJECTED_CATEGORIES for char in value
    )


def test_printable_characters_are_never_ones_the_id_rule_rejects() -> None:
    # validate_id accepts an isprintable() id without " " at once: sound for every code point.
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if char.isprintable() and char != " ":
            assert _id_characters_allowed(char), f"U+{code:04X}"


@given(st.text(min_size=1, max_size=12).filter(lambda text: not text.startswith("-")))
def test_id_verdicts_match_the_per_character_rule(job_id: str) -> None:
    try:
        spec.validate_id(job_id)
        accepted = True
    except InvalidInput:
        accepted = False
    assert accepted == _id_characters_allowed(job_id)


def test_the_first_duplicate_key_is_named() -> None:
    with pytest.raises(InvalidInput, match="duplicate key 'b'"):
        spec.load_json('{"a": 1, "b": 2, "c": 3, "b": 4, "a": 5}')


def test_the_first_unknown_field_is_named() -> None:
    assert "unknown field 'zz'" in rejected(zz=1, aa=2)


def test_ascii_command_limit_is_exact() -> None:
    assert parse(command="x" * spec.MAX_COMMAND_BYTES).command
    assert "longer than" in rejected(command="x" * (spec.MAX_COMMAND_BYTES + 1))


@pytest.mark.parametrize("command", ["\u3000", "\u2028", " \x0b\x0c\x1c "])
def test_unicode_blank_commands_are_rejected(command: str) -> None:
    assert "blank" in rejected(command=command)


def test_batch_ids_are_generated_like_single_ones() -> None:
    items = [{"command": "a"}, {"id": "given", "command": "b"}, {"command": "c"}]
    jobs = spec.parse_job_batch(items, DEFAULTS)
    assert jobs[1].id == "given"
    for job in (jobs[0], jobs[2]):
        assert re.fullmatch(r"[0-9a-f]{16}", job.id)
    assert jobs[0].id != jobs[2].id


def test_json_lines_errors_name_their_line_and_kind() -> None:
    lines = ['{"command": "a"}', "", '{"command": "b", "n": ' + "9" * 5000 + "}"]
    with pytest.raises(InvalidInput, match=r"^invalid JSON on line 3: Exceeds the limit"):
        spec.load_batch("\n".join(lines))
    with pytest.raises(InvalidInput, match=r"^duplicate key 'command' in JSON object$"):
        spec.load_batch('{"command": "a"}\n{"command": "a", "command": "b"}\n')
    with pytest.raises(InvalidInput, match=r"^invalid JSON on line 2: nested too deeply$"):
        spec.load_batch('{"command": "a"}\n' + "[" * 100_000 + "]" * 100_000)
    with pytest.raises(InvalidInput, match=r"^invalid JSON on line 2: Expecting value"):
        spec.load_batch('{"command": "a"}\n\u00a0{}')  # not JSON whitespace
