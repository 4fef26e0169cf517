"""Errors the library raises; the CLI maps each to an exit code.

InvalidInput -> exit 2 (the user can fix the input), OperationFailed -> exit 1
(the operation could not be carried out as things stand).
"""

from __future__ import annotations


class QueuectlError(Exception):
    """Base of every error meant to reach the user as an `Error:` line."""

    exit_code = 1


class InvalidInput(QueuectlError):
    """The user's input is malformed or breaks a rule; nothing was changed."""

    exit_code = 2


class OperationFailed(QueuectlError):
    """A well-formed request that cannot be carried out now."""

    exit_code = 1


class JobNotFound(OperationFailed):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class WrongState(OperationFailed):
    """The job exists but is not in a state the command accepts."""


class DuplicateJob(InvalidInput):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"a job with id {job_id!r} already exists")
        self.job_id = job_id


class StoreUnavailable(OperationFailed):
    """The database cannot be opened, read or written."""
