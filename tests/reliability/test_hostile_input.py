"""Hostile input, property-based (hypothesis): the job-spec parser, `enqueue --file`,
config values and the --state/--count/--limit flags.

Any input is either accepted, and then its id, command, priority, max_retries, cwd and
env come back identical through the store (and through `show --json` for a sample run
through the real executable), or rejected with InvalidInput / exit 2 and the data
unchanged. Unicode, shell metacharacters, 1 MiB commands, duplicate keys and deeply
nested JSON included. Most cases call the library (fast); a small sample goes through
the executable.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from queuectl import spec
from queuectl.cli.parser import build_parser
from queuectl.errors import DuplicateJob, InvalidInput
from queuectl.settings import SETTINGS, Config, effective_values
from queuectl.spec import NewJob
from queuectl.store.sqlite import SqliteStore
from tests.e2e.worker_helpers import Queue
from tests.helpers import assert_error, run_cli
from tests.reliability.helpers import SOAK, log_problems

DEFAULTS = spec.SpecDefaults(max_retries=3, timeout=0.0, cwd="/srv/work")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MIB = 1024 * 1024

LIBRARY = settings(
    max_examples=1000 if SOAK else 200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Through the real executable: a few hundred milliseconds an example.
EXECUTABLE = settings(
    max_examples=60 if SOAK else 20,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)

# --- strategies ---------------------------------------------------------------------------
SHELL = [
    "echo $HOME `id` $(uname) ${PATH:-x}",
    "true; false || true && echo ok | cat > /dev/null 2>&1",
    "echo 'single' \"double\" \\\\ back",
    "printf '%s\\n' * ? [a-z] ~ !! # comment",
    "a=1; (exit 3); { echo $a; } < /dev/null",
    "echo \t tab \n newline \r cr",
    "cat <<'EOF'\nhere doc $x\nEOF",
    "echo 日本語 émoji 🎉 العربية",
    "rm -rf / --no-preserve-root # never run here",
    "\u202eRTL override \u200b zero width",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
# Mostly-valid ids: any Unicode (no surrogates), then the odd control or blank character.
likely_ids = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cc", "Cf", "Zs", "Zl", "Zp"]),
    min_size=1,
    max_size=40,
)
ids = st.one_of(
    likely_ids,
    st.text(max_size=210),
    st.integers(),
    json_values,
)
commands = st.one_of(
    st.sampled_from(SHELL),
    st.text(min_size=1, max_size=200),
    st.text(alphabet="$`'\"\\;|&<>(){}*?!#~\n\t \0", min_size=1, max_size=30),
    json_values,
)
integers = st.one_of(
    st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    st.sampled_from([INT64_MIN, INT64_MAX, INT64_MIN - 1, INT64_MAX + 1, 0, -1, 10**30]),
    json_values,
)
cwds = st.one_of(
    st.text(max_size=60).map(lambda text: "/" + text), st.text(max_size=20), json_values
)
envs = st.one_of(
    st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=5),
    st.dictionaries(st.text(max_size=5), json_values, max_size=2),
    json_values,
)
seconds = st.one_of(
    st.floats(min_value=0, max_value=4e9),
    st.integers(min_value=-5, max_value=4 * 10**9),
    json_values,
)
timestamps = st.one_of(
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.sampled_from(
        ["2030-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"]
    ),
    st.text(max_size=30),
    json_values,
)
specs = st.fixed_dictionaries(
    {},
    optional={
        "id": ids,
        "command": commands,
        "priority": integers,
        "max_retries": integers,
        "cwd": cwds,
        "env": envs,
        "timeout": seconds,
        "delay": seconds,
        "run_at": timestamps,
        "state": st.sampled_from(["pending", "completed", 0]),
        "attempts": st.sampled_from([0, 1, False, 0.0]),
        "created_at": timestamps,
        "unknown": json_values,
    },
)
# Specs the parser should mostly accept: a command, and valid-looking fields.
good_specs = st.fixed_dictionaries(
    {"command": st.one_of(st.sampled_from(SHELL), st.text(min_size=1, max_size=300))},
    optional={
        "id": likely_ids,
        "priority": st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
        "max_retries": st.integers(min_value=0, max_value=INT64_MAX),
        "cwd": st.text(max_size=60).map(lambda text: "/" + text),
        "env": st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=40), max_size=5),
    },
)


# --- the store they go into ------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path_factory.mktemp("hostile") / "queue.db", durable=False)
    yield opened
    opened.close()


def _total(store: SqliteStore) -> int:
    return sum(store.counts().values())


def _expected(spec_dict: dict[str, Any], job: NewJob) -> dict[str, Any]:
    return {
        "id": spec_dict.get("id", job.id),
        "command": spec_dict["command"],
        "priority": spec_dict.get("priority", 0),
        "max_retries": spec_dict.get("max_retries", DEFAULTS.max_retries),
        "cwd": spec_dict.get("cwd", DEFAULTS.cwd),
        "env": spec_dict.get("env", {}),
    }


def _accept_or_reject(store: SqliteStore, spec_dict: Any) -> NewJob | None:
    """Parse and store; check the round trip, or that a rejection changed nothing."""
    before = _total(store)
    try:
        job = spec.parse_job_spec(spec_dict, DEFAULTS)
        store.enqueue([job])
    except InvalidInput as exc:
        assert str(exc), "an error without a message"
        assert _total(store) == before
        if isinstance(exc, DuplicateJob):
            assert store.get_job(exc.job_id) is not None
        return None
    stored = store.get_job(job.id)
    assert stored is not None
    assert {key: getattr(stored, key) for key in _expected(spec_dict, job)} == _expected(
        spec_dict, job
    )
    assert _total(store) == before + 1
    return job


# --- the job-spec parser ---------------------------------------------------------------------
@LIBRARY
@given(spec_dict=specs)
@example(spec_dict={"command": "x" * MIB})
@example(spec_dict={"command": "x" * (MIB + 1)})
@example(spec_dict={"command": "é" * (MIB // 2)})
@example(spec_dict={"command": "é" * (MIB // 2) + "x"})
@example(spec_dict={"command": "\ud800"})
@example(spec_dict={"command": "true", "id": "a\u200bb"})
@example(spec_dict={"command": "true", "id": "-rf"})
@example(spec_dict={"command": "true", "env": {"A=B": "1"}})
@example(spec_dict={"command": "true", "env": {"\ud800": "1"}})
@example(spec_dict={"command": "true", "priority": True})
@example(spec_dict={"command": "true", "max_retries": INT64_MAX, "priority": INT64_MIN})
@example(spec_dict={"command": "true", "max_retries": INT64_MAX + 1})
@example(spec_dict={"command": "true", "run_at": "2030-01-01T00:00:00Z", "delay": 1})
@example(spec_dict={"command": "true", "timeout": 1e308})
def test_any_spec_is_stored_faithfully_or_rejected(store: SqliteStore, spec_dict: Any) -> None:
    _accept_or_reject(store, spec_dict)


@LIBRARY
@given(spec_dict=good_specs)
def test_valid_looking_specs_round_trip_through_json_and_the_store(
    store: SqliteStore, spec_dict: dict[str, Any]
) -> None:
    # What `enqueue` sees: the JSON text, strictly parsed.
    parsed = spec.load_json(json.dumps(spec_dict))
    assert parsed == spec_dict
    _accept_or_reject(store, parsed)


@LIBRARY
@given(
    text=st.one_of(
        st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))
    )
)
@example(text="[" * 100_000 + "]" * 100_000)
@example(text='{"a":' * 100_000 + "1" + "}" * 100_000)
@example(text="[" * 1_000_000)
@example(text="1" * 5000)
@example(text='{"command": NaN}')
@example(text='{"command": Infinity}')
@example(text='{"command": "a", "command": "b"}')
@example(text='{"command": "a", "env": {"X": "1", "X": "2"}}')
@example(text='{"command": "\\ud800"}')
@example(text="\ufeff{}")
def test_load_json_returns_a_value_or_invalid_input(text: str) -> None:
    try:
        value = spec.load_json(text)
    except InvalidInput as exc:
        assert str(exc).startswith("invalid JSON") or "JSON" in str(exc)
        return
    if isinstance(value, float):
        assert math.isfinite(value)


@LIBRARY
@given(spec_dict=good_specs, key=st.sampled_from(["command", "id", "priority", "env", "cwd"]))
def test_a_duplicate_key_anywhere_is_rejected(spec_dict: dict[str, Any], key: str) -> None:
    text = json.dumps(spec_dict)
    extra = f', "{key}": 1}}' if key in spec_dict else f', "{key}": 1, "{key}": 2}}'
    duplicated = text[:-1] + extra
    with pytest.raises(InvalidInput, match="duplicate key"):
        spec.load_json(duplicated)


# --- enqueue --file: the batch parser ---------------------------------------------------------
batch_items = st.lists(st.one_of(good_specs, specs), max_size=6)


@st.composite
def batch_texts(draw: st.DrawFn) -> str:
    items = draw(batch_items)
    form = draw(st.sampled_from(["lines", "array", "garbage"]))
    if form == "array":
        return json.dumps(items)
    if form == "lines":
        return "\n".join(json.dumps(item) for item in items) + draw(
            st.sampled_from(["", "\n", "\n\n  \n"])
        )
    return draw(st.text(max_size=200))


@LIBRARY
@given(text=batch_texts())
def test_a_batch_is_stored_whole_or_not_at_all(store: SqliteStore, text: str) -> None:
    before = _total(store)
    try:
        items = spec.load_batch(text)
        jobs = spec.parse_job_batch(items, DEFAULTS)
        if not jobs:
            return
        store.enqueue(jobs)
    except InvalidInput:
        assert _total(store) == before
        return
    assert _total(store) == before + len(jobs)
    for item, job in zip(items, jobs, strict=True):
        stored = store.get_job(job.id)
        assert stored is not None
        assert {key: getattr(stored, key) for key in _expected(item, job)} == _expected(item, job)


# --- config values -----------------------------------------------------------------------------
@LIBRARY
@given(
    key=st.sampled_from(sorted(SETTINGS)),
    text=st.one_of(
        st.text(max_size=30),
        st.integers().map(str),
        st.floats().map(repr),
        st.sampled_from(
            ["1e12", "1e13", "-0", "0x10", "1_000", "  5  ", "٥", "inf", "nan", "9" * 5000]
        ),
        st.from_regex(r"\A[0-9]{1,25}(\.[0-9]{1,5})?[smhdw]?\Z"),
    ),
)
def test_a_config_value_is_canonical_or_rejected(key: str, text: str) -> None:
    setting = SETTINGS[key]
    try:
        canonical = setting.validate(text)
    except InvalidInput as exc:
        assert key in str(exc)
        return
    assert setting.validate(canonical) == canonical, "canonical form is not stable"
    assert effective_values({key: canonical})[key] == canonical
    value = getattr(Config.from_stored({key: canonical}), key)
    assert math.isfinite(value)
    assert value == setting.parse(canonical)  # exact: integers stay integers


# --- flags ---------------------------------------------------------------------------------------
flag_texts = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(
        ["0", "1", "-1", "+5", " 7", "1_000", "٣", "1e3", "--", "-x", "PENDING", "dead "]
    ),
)


def _parse(argv: list[str]) -> argparse.Namespace | None:
    """The namespace, or None when argparse rejects (exit 2, `Error:` printed)."""
    try:
        return build_parser(argv[0]).parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 2
        return None


@settings(LIBRARY, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=flag_texts)
def test_flags_are_parsed_into_range_or_rejected(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _parse(["list", "--state", text])
    assert state is None or state.state in ("pending", "processing", "completed", "failed", "dead")
    limit = _parse(["list", "--limit", text])
    assert limit is None or 0 <= limit.limit <= INT64_MAX
    count = _parse(["worker", "start", "--count", text])
    assert count is None or 1 <= count.count <= INT64_MAX
    err = capsys.readouterr().err
    assert "Traceback" not in err
    rejected = [parsed for parsed in (state, limit, count) if parsed is None]
    assert err.count("Error:") == len(rejected)


# --- a sample through the real executable ----------------------------------------------------
@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile-cli") / "home"


def _cli(home: Path, *args: str, input: str | None = None, cwd: Path | None = None) -> Any:
    return run_cli(
        *args, input=input, env={"QUEUECTL_HOME": str(home), "QUEUECTL_DB": None}, cwd=cwd
    )


def _cli_total(home: Path) -> int:
    """Read through the library: one executable run an example is enough."""
    if not (home / "queue.db").exists():
        return 0
    store = SqliteStore(home / "queue.db")
    try:
        return _total(store)
    finally:
        store.close()


def _check_through_show(home: Path, job_id: str, spec_dict: dict[str, Any], cwd: str) -> None:
    shown = _cli(home, "show", job_id, "--json", "--show-env")
    assert shown.returncode == 0, shown
    document = json.loads(shown.stdout)
    expected = {
        "id": spec_dict.get("id", job_id),
        "command": spec_dict["command"],
        "priority": spec_dict.get("priority", 0),
        "max_retries": spec_dict.get("max_retries", 3),
        "cwd": spec_dict.get("cwd", cwd),
        "env": spec_dict.get("env", {}),
    }
    assert {key: document[key] for key in expected} == expected


@EXECUTABLE
@given(spec_dict=st.one_of(good_specs, specs))
def test_enqueue_and_show_through_the_executable(
    cli_home: Path, tmp_path: Path, spec_dict: dict[str, Any]
) -> None:
    before = _cli_total(cli_home)
    result = _cli(cli_home, "enqueue", json.dumps(spec_dict), cwd=tmp_path)
    assert "Traceback" not in result.stderr
    if result.returncode != 0:
        assert_error(result, 2)
        assert _cli_total(cli_home) == before
        return
    _check_through_show(cli_home, result.stdout.strip(), spec_dict, str(tmp_path))


@EXECUTABLE
@given(text=batch_texts())
def test_enqueue_file_through_the_executable(cli_home: Path, tmp_path: Path, text: str) -> None:
    before = _cli_total(cli_home)
    path = tmp_path / "jobs.jsonl"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = _cli(cli_home, "enqueue", "--file", str(path), "--json", cwd=tmp_path)
    assert "Traceback" not in result.stderr
    if result.returncode != 0:
        assert_error(result, 2)
        assert _cli_total(cli_home) == before
        return
    assert _cli_total(cli_home) == before + len(json.loads(result.stdout))


@EXECUTABLE
@given(
    text=flag_texts.filter(lambda text: "\0" not in text),  # no NUL can be in an argv
    which=st.sampled_from(["--state", "--limit", "--count"]),
)
def test_flags_through_the_executable(cli_home: Path, text: str, which: str) -> None:
    argv = ["worker", "start", "--count", text] if which == "--count" else ["list", which, text]
    if which == "--count" and _parse(argv) is not None:
        return  # a valid count would start that many workers: the parser check above covers it
    result = _cli(cli_home, *argv)
    assert "Traceback" not in result.stderr
    if result.returncode != 0:
        assert_error(result, 2)
    else:
        assert _parse(argv) is not None


def test_one_mib_commands_and_deep_nesting_through_the_executable(
    cli_home: Path, tmp_path: Path
) -> None:
    exact = {"id": "mib-exact", "command": "true #" + "é" * ((MIB - 6) // 2)}
    assert len(exact["command"].encode()) == MIB
    over = {"id": "mib-over", "command": exact["command"] + "x"}
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps(exact, ensure_ascii=False) + "\n")
    assert _cli(cli_home, "enqueue", "--file", str(path), cwd=tmp_path).stdout.strip() == "1"
    _check_through_show(cli_home, "mib-exact", exact, str(tmp_path))

    before = _cli_total(cli_home)
    path.write_text(json.dumps(exact | {"id": "ok-2"}) + "\n" + json.dumps(over) + "\n")
    result = _cli(cli_home, "enqueue", "--file", str(path))
    assert_error(result, 2)
    assert "job 2" in result.stderr and "1048576 bytes" in result.stderr
    assert _cli_total(cli_home) == before, "a batch with one bad job wrote the others"

    deep = "[" * 50_000 + "]" * 50_000
    assert_error(_cli(cli_home, "enqueue", deep), 2)
    path.write_text('{"command": ' + "[" * 500_000 + "]" * 500_000 + "}\n")
    assert_error(_cli(cli_home, "enqueue", "--file", str(path)), 2)
    path.write_text('{"command": "a"}\n{"command": "b", "command": "c"}\n')
    assert "duplicate key" in _cli(cli_home, "enqueue", "--file", str(path)).stderr
    assert _cli_total(cli_home) == before


# --- accepted config values must not break a worker --------------------------------------------
EXTREMES = {
    "max_retries": str(INT64_MAX),
    "backoff_base": "1e12",
    "backoff_max": "1e12",
    "job_timeout": "1e12",
    "lease_seconds": "1e12",
    "poll_interval": "1e12",
    "output_limit": str(INT64_MAX),
    "retention": "99999999999w",
}


def test_the_most_extreme_accepted_settings_do_not_break_a_worker(queue: Queue) -> None:
    accepted = {}
    for key, value in EXTREMES.items():
        if key not in SETTINGS:
            continue
        result = queue.cli("config", "set", key, value, check=False)
        assert "Traceback" not in result.stderr
        if result.returncode == 0:
            accepted[key] = value
        else:
            assert_error(result, 2)
    out = queue.files / "out"
    ok = queue.enqueue(f"echo ran > {out}")
    failing = queue.enqueue("exit 3", max_retries=2)
    result = queue.cli("worker", "run", "--burst", check=False, timeout=60)
    assert result.returncode == 0, result
    assert "Traceback" not in result.stderr and "ERROR" not in result.stderr, result.stderr
    assert queue.job(ok)["state"] == "completed", accepted
    assert out.read_text() == "ran\n"
    failed = queue.job(failing)
    assert failed["state"] == "failed" and failed["attempts"] == 1
    assert log_problems(queue.home) == []


def test_a_job_timeout_longer_than_poll_can_wait_does_not_crash_the_worker(queue: Queue) -> None:
    """poll() takes at most 2^31 - 1 ms (24.8 days): a longer timeout once crashed it."""
    job_id = queue.enqueue("echo ok", timeout=30 * 86_400)
    result = queue.cli("worker", "run", "--burst", check=False, timeout=60)
    assert result.returncode == 0, result
    assert queue.job(job_id)["state"] == "completed"
