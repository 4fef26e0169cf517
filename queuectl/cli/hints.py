"""The hint for a job given in the wrong shape: the JSON object it should be, and `add`.

Nearly every new user's first `enqueue` passes a shell command, or JSON the shell split
into words. Imported only on the way to that error, so enqueue's start-up pays nothing.
"""

from __future__ import annotations

import json
import shlex

# A command longer than this is not repeated in the hint: it would bury the advice.
_LONGEST_EXAMPLE = 80


def job_shape(command: str | None) -> str:
    """What a job must be, with `command` (the shell command the user seems to mean, if
    any) as the example: follows "the job must be"."""
    if not command or not command.strip() or len(command) > _LONGEST_EXAMPLE:
        command = "echo hello"
    job = shlex.quote(json.dumps({"command": command}, ensure_ascii=False))
    return (
        f"a JSON object, such as {job} (in single quotes); "
        f"or, without JSON: queuectl add -- {_add_words(command)}"
    )


def split_job(words: list[str]) -> str:
    """The hint for a job that reached enqueue as several arguments."""
    if words[0].lstrip().startswith("{"):
        # JSON the shell split (and took the quotes out of): it cannot be put back.
        return (
            "The shell split the job's JSON into words: put it in single quotes, "
            """as in queuectl enqueue '{"command": "echo hi"}'; """
            "or, without JSON: queuectl add -- echo hi"
        )
    return f"The job must be one argument: {job_shape(' '.join(words))}"


def _add_words(command: str) -> str:
    """`command` as words for `queuectl add --` that give back the same command: plain
    words as they are, else the whole command quoted as one word (add's rule for one)."""
    try:
        if shlex.join(shlex.split(command)) == command:
            return command
    except ValueError:  # an unbalanced quote
        pass
    return shlex.quote(command)
