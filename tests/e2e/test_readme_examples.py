"""The README's examples of `config list` and `doctor` are what the program prints."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tests.helpers import CliResult

README = Path(__file__).resolve().parents[2] / "README.md"


def _example_output(command: str) -> list[str]:
    """The lines the README shows after `$ queuectl COMMAND`, up to the next prompt or fence."""
    lines = README.read_text().splitlines()
    start = lines.index(f"$ queuectl {command}") + 1
    output = []
    for line in lines[start:]:
        if line.startswith(("$ ", "```")):
            break
        output.append(line)
    return output


def test_config_list_example_is_the_default_settings(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("config", "list")
    assert result.returncode == 0, result
    assert _example_output("config list") == result.stdout.splitlines()


def test_doctor_example_has_todays_checks_and_schema_version(
    run_cli: Callable[..., CliResult],
) -> None:
    result = run_cli("doctor")
    assert result.returncode == 0, result
    assert _checks(_example_output("doctor")) == _checks(result.stdout.splitlines())


def _checks(lines: list[str]) -> list[str]:
    """Each row's CHECK and STATUS, and the schema row whole: sizes and paths vary."""
    rows = lines[1:]  # after "Database: PATH"
    return [
        row if row.startswith("schema") else "  ".join(re.split(r"  +", row)[:2]) for row in rows
    ]
