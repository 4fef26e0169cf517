"""`queuectl completion`: the scripts, run by the real shells through the real executable."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import queuectl_executable

QUEUECTL = queuectl_executable()
STATES = ["pending", "processing", "completed", "failed", "dead"]
TOP_LEVEL = ["init-db", "enqueue", "worker", "status", "list", "show", "wait", "dlq", "config"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A temporary queue, with this queuectl first on PATH (the scripts call `queuectl`)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("QUEUECTL_DB", "QUEUECTL_DEBUG")}
    environ["QUEUECTL_HOME"] = str(tmp_path / "home")
    environ["PATH"] = f"{Path(str(QUEUECTL)).parent}{os.pathsep}{environ.get('PATH', '')}"
    return environ


def _queuectl(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(QUEUECTL), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def bash_script(env: dict[str, str], tmp_path: Path) -> Path:
    path = tmp_path / "queuectl.bash"
    path.write_text(_queuectl(env, "completion", "bash"))
    return path


def bash_complete(script: Path, env: dict[str, str], line: str) -> list[str]:
    """Candidates bash offers for `line` (the last word is the one being completed)."""
    words = line.split(" ")
    # The function the script registers for queuectl (`complete -F FUNCTION queuectl`).
    program = (
        'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
        'spec=$(complete -p queuectl); function=${spec##* -F }; "${function%% *}"; '
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(
        ["bash", "-c", program, "bash", str(script), *words],
        env=env,
        cwd=script.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return [word for word in result.stdout.splitlines() if word]


def test_bash_completes_commands_at_every_level(bash_script: Path, env: dict[str, str]) -> None:
    assert bash_complete(bash_script, env, "queuectl wor") == ["worker"]
    assert set(TOP_LEVEL) <= set(bash_complete(bash_script, env, "queuectl "))
    assert bash_complete(bash_script, env, "queuectl worker ") == ["start", "stop"]
    assert bash_complete(bash_script, env, "queuectl dlq ") == ["list", "retry"]
    assert bash_complete(bash_script, env, "queuectl config ") == ["list", "get", "set"]
    # Options before the command do not hide it; a command's value is not a command.
    assert bash_complete(bash_script, env, "queuectl --db /tmp/x.db worker s") == [
        "start",
        "stop",
    ]
    assert bash_complete(bash_script, env, "queuectl worker start ") == []


def test_bash_hides_internal_commands(bash_script: Path, env: dict[str, str]) -> None:
    assert "run" not in bash_complete(bash_script, env, "queuectl worker ")


def test_bash_completes_options_per_command(bash_script: Path, env: dict[str, str]) -> None:
    options = bash_complete(bash_script, env, "queuectl list -")
    assert {"--state", "--limit", "--json", "--help"} <= set(options)
    assert "--count" not in options
    assert "--count" in bash_complete(bash_script, env, "queuectl worker start --")
    assert "--db" in bash_complete(bash_script, env, "queuectl --")


def test_bash_knows_global_options_after_the_command(
    bash_script: Path, env: dict[str, str]
) -> None:
    # `--db PATH` after the command takes a value: PATH is not the command's positional.
    assert bash_complete(bash_script, env, "queuectl completion --db /tmp/x.db ") == [
        "bash",
        "zsh",
        "fish",
    ]
    # Accepted there, offered only before the command (where the help lists them).
    assert "--db" not in bash_complete(bash_script, env, "queuectl list --")


def test_bash_completes_add_and_its_options(bash_script: Path, env: dict[str, str]) -> None:
    assert bash_complete(bash_script, env, "queuectl ad") == ["add"]
    options = set(bash_complete(bash_script, env, "queuectl add --"))
    assert {"--id", "--priority", "--delay", "--at", "--timeout", "--max-retries"} <= options
    assert {"--cwd", "--env", "--json"} <= options
    (bash_script.parent / "subdir").mkdir()
    assert bash_complete(bash_script, env, "queuectl add --cwd subd") == ["subdir"]
    # The value of --priority is not taken for the command.
    assert "--json" in bash_complete(bash_script, env, "queuectl add --priority 3 --j")


def test_bash_completes_states(bash_script: Path, env: dict[str, str]) -> None:
    assert bash_complete(bash_script, env, "queuectl list --state ") == STATES
    assert bash_complete(bash_script, env, "queuectl list -s d") == ["dead"]
    # `--state=p`: bash splits the word at `=`.
    assert bash_complete(bash_script, env, "queuectl list --state = p") == [
        "pending",
        "processing",
    ]
    # The value of --state is not taken for a positional: options still complete after it.
    assert "--json" in bash_complete(bash_script, env, "queuectl list --state dead --j")


def test_bash_completes_the_states_purge_takes(bash_script: Path, env: dict[str, str]) -> None:
    assert bash_complete(bash_script, env, "queuectl purge --state ") == ["completed", "dead"]


def test_bash_completes_paths_where_a_path_goes(bash_script: Path, env: dict[str, str]) -> None:
    (bash_script.parent / "subdir").mkdir()
    (bash_script.parent / "subfile.jsonl").write_text("")
    both = ["subdir", "subfile.jsonl"]
    assert sorted(bash_complete(bash_script, env, "queuectl backup sub")) == both
    assert sorted(bash_complete(bash_script, env, "queuectl enqueue --file sub")) == both
    assert sorted(bash_complete(bash_script, env, "queuectl --db sub")) == both
    # --db after the command: accepted there, so its value is a path there too.
    assert sorted(bash_complete(bash_script, env, "queuectl list --db sub")) == both
    # A directory goes after --cwd: files are not offered.
    assert bash_complete(bash_script, env, "queuectl add --cwd sub") == ["subdir"]


def test_bash_completes_config_keys(bash_script: Path, env: dict[str, str]) -> None:
    keys = bash_complete(bash_script, env, "queuectl config set ")
    assert "max_retries" in keys
    assert "backoff_base" in keys
    assert bash_complete(bash_script, env, "queuectl config get max") == ["max_retries"]
    assert bash_complete(bash_script, env, "queuectl config set max_retries ") == []


def test_bash_completes_other_choices(bash_script: Path, env: dict[str, str]) -> None:
    assert bash_complete(bash_script, env, "queuectl completion ") == ["bash", "zsh", "fish"]


def test_bash_completes_job_ids(bash_script: Path, env: dict[str, str]) -> None:
    for spec in (
        '{"id": "alpha-1", "command": "true"}',
        '{"id": "alpha-2", "command": "true"}',
        '{"id": "b$(touch${IFS}pwned)", "command": "true"}',
    ):
        _queuectl(env, "enqueue", spec)
    assert bash_complete(bash_script, env, "queuectl show alp") == ["alpha-1", "alpha-2"]
    assert bash_complete(bash_script, env, "queuectl wait alpha-1 alpha-") == [
        "alpha-1",
        "alpha-2",
    ]
    # An id is data: it comes back quoted for the command line and is never run.
    offered = bash_complete(bash_script, env, "queuectl show b")
    assert offered == ["b\\$\\(touch\\$\\{IFS\\}pwned\\)"]
    assert not (bash_script.parent / "pwned").exists()
    # Only dead jobs are retried from the DLQ; there are none.
    assert bash_complete(bash_script, env, "queuectl dlq retry ") == []


def test_zsh_script_is_generated(env: dict[str, str], tmp_path: Path) -> None:
    script = _queuectl(env, "completion", "zsh")
    assert script.startswith("#compdef queuectl\n")
    for name in [*TOP_LEVEL, "start", "stop", "retry", "max_retries", *STATES]:
        assert name in script
    if shutil.which("zsh") is not None:
        path = tmp_path / "_queuectl"
        path.write_text(script)
        result = subprocess.run(["zsh", "-n", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completes(env: dict[str, str], tmp_path: Path) -> None:
    functions = tmp_path / "functions"
    functions.mkdir()
    (functions / "_queuectl").write_text(_queuectl(env, "completion", "zsh"))
    for job_id in ("alpha-1", "alpha-2"):
        _queuectl(env, "enqueue", f'{{"id": "{job_id}", "command": "true"}}')

    def complete(line: str) -> list[str]:
        """What zsh offers for TAB after `line` (tests/e2e/zsh_complete.zsh), sorted."""
        result = subprocess.run(
            ["zsh", str(Path(__file__).with_name("zsh_complete.zsh")), str(functions), line],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return sorted(set(result.stdout.splitlines()))

    assert complete("queuectl wor") == ["worker"]
    assert complete("queuectl worker ") == ["start", "stop"]  # never the hidden `run`
    assert complete("queuectl list --state ") == sorted(STATES)
    assert complete("queuectl purge --state ") == ["completed", "dead"]
    assert "max_retries" in complete("queuectl config set ")
    assert complete("queuectl config set max_retries ") == []
    assert complete("queuectl show ") == ["alpha-1", "alpha-2"]
    assert complete("queuectl wait alpha-1 ") == ["alpha-1", "alpha-2"]  # every ID of ID...
    assert complete("queuectl add --cwd func") == ["functions"]
    # Global options: offered before the command only, recognised after it too.
    assert "--db" in complete("queuectl --")
    assert "--db" not in complete("queuectl list --")
    assert complete("queuectl completion --db /tmp/x.db ") == ["bash", "fish", "zsh"]
    assert "max_retries" in complete("queuectl config set --db /tmp/x.db ")


def test_fish_script_is_generated(env: dict[str, str]) -> None:
    script = _queuectl(env, "completion", "fish")
    for name in [*TOP_LEVEL, "start", "stop", "retry", "max_retries", *STATES]:
        assert name in script


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "queuectl.fish"
    path.write_text(_queuectl(env, "completion", "fish"))
    _queuectl(env, "enqueue", '{"id": "alpha-1", "command": "true"}')

    def complete(line: str) -> list[str]:
        result = subprocess.run(
            [
                "fish",
                "--no-config",
                "-c",
                'source $argv[1]; complete -C"$argv[2]"',
                str(path),
                line,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return [candidate.split("\t")[0] for candidate in result.stdout.splitlines()]

    assert complete("queuectl wor") == ["worker"]
    assert complete("queuectl worker ") == ["start", "stop"]
    assert sorted(complete("queuectl list --state ")) == sorted(STATES)
    assert "max_retries" in complete("queuectl config set ")
    assert complete("queuectl config set max_retries ") == []
    assert complete("queuectl show ") == ["alpha-1"]
    assert complete("queuectl purge --state ") == ["completed", "dead"]
    # --db after the command: its value is not taken for the command's positional.
    assert complete("queuectl completion --db /tmp/x.db ") == ["bash", "zsh", "fish"]
