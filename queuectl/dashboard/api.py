"""The JSON API under /api/ that the page itself uses (documented in the README).

Handlers are plain functions: Starlette runs them in its thread pool, and each
thread reads through its own store (stores.ThreadStores). GETs only read; the
one state change, a DLQ retry, is a POST (auth.py guards it against cross-site
requests). Job objects are the CLI's `--json` shapes, `env` values masked; in lists
the command is shortened (see _listed).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from queuectl.domain import JobState
from queuectl.errors import InvalidInput, JobNotFound, QueuectlError, WrongState
from queuectl.store.insights import InsightsStore, parse_window
from queuectl.timeutil import format_timestamp

MAX_PAGE = 500
DEFAULT_PAGE = 50
# A job page shows at most this much of a run's kept output (the tail).
OUTPUT_SHOWN = 256 * 1024
# A list shows at most this much of each command (characters); the job's own page, all
# of it. Commands can be megabytes, and the page polls its lists every 2 seconds.
COMMAND_LISTED = 200


class Api:
    """The endpoints, bound to a way of getting the current thread's store."""

    def __init__(self, store: Callable[[], InsightsStore]) -> None:
        self._store = store

    # --- reads -----------------------------------------------------------------------
    def stats(self, request: Request) -> Response:
        """GET /api/stats?since=1h: the `queuectl stats --json` document."""
        window = parse_window(request.query_params.get("since", "1h"))
        return _json(self._store().stats(window).to_json())

    def jobs(self, request: Request) -> Response:
        """GET /api/jobs?state=&q=&offset=&limit=: a page of jobs, newest first."""
        params = request.query_params
        state = _state(params.get("state") or None)
        text = (params.get("q") or "").strip() or None
        offset = _int(params.get("offset"), "offset", 0, 0, 10**12)
        limit = _int(params.get("limit"), "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        page = self._store().search_jobs(state=state, text=text, offset=offset, limit=limit)
        return _json(
            {
                "jobs": [_listed(job.to_json()) for job in page.jobs],
                "total": page.total,
                "total_exact": page.total_exact,
                "offset": page.offset,
                "limit": page.limit,
            }
        )

    def job(self, request: Request) -> Response:
        """GET /api/jobs/{id}?run=N or /api/jobs/?id=ID&run=N: the job, its attempts and one
        run's output (default the latest).

        The query form carries every id: a path segment `.` or `..` (even written `%2e`)
        is normalised away by browsers and most HTTP clients before it is sent.
        """
        job_id = request.path_params["job_id"] or request.query_params.get("id", "")
        if not job_id:
            raise InvalidInput("name the job: /api/jobs/ID or /api/jobs/?id=ID")
        store = self._store()
        job = store.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        run_param = request.query_params.get("run")
        run_no = None if run_param is None else _int(run_param, "run", 1, 1, 2**31)
        document = job.to_json()
        document["runs"] = [run.to_json() for run in store.get_runs(job_id)]
        output = store.get_output(job_id, run_no)
        document["output"] = None
        if output is not None:
            kept = output.data[-OUTPUT_SHOWN:]
            document["output"] = {
                "run": output.n,
                "text": kept.decode("utf-8", errors="replace"),
                "shown_bytes": len(kept),
                "total_bytes": output.total_bytes,
                "finished": output.finished,
            }
        return _json(document)

    def workers(self, request: Request) -> Response:
        """GET /api/workers: live workers (heartbeat younger than lease_seconds)."""
        store = self._store()
        now = store.now()
        lease = store.config().lease_seconds
        live = []
        for worker in store.list_workers():
            age = (now - worker.heartbeat_at).total_seconds()
            if age < lease:
                document = worker.to_json()
                document["heartbeat_age"] = round(max(age, 0.0), 3)
                live.append(document)
        return _json({"now": format_timestamp(now), "workers": live})

    # --- the one write ----------------------------------------------------------------
    async def dlq_retry(self, request: Request) -> Response:
        """POST /api/dlq/retry {"ids": [...]} or {"all": true}: dead jobs back to pending."""
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise InvalidInput("the body must be JSON") from None
        except RecursionError:  # json's parser recurses once per nesting level
            raise InvalidInput("the body is nested too deeply") from None
        return await run_in_threadpool(self._retry, body)

    def _retry(self, body: Any) -> Response:
        if not isinstance(body, dict) or set(body) - {"ids", "all"}:
            raise InvalidInput('send {"ids": ["..."]} or {"all": true}')
        ids, everything = body.get("ids"), body.get("all", False)
        if everything is True and ids is None:
            return _json({"retried": len(self._store().retry_all_dead())})
        if (
            everything is not False
            or not isinstance(ids, list)
            or not ids
            or not all(isinstance(i, str) for i in ids)
        ):
            raise InvalidInput('send {"ids": ["..."]} (a non-empty list of ids) or {"all": true}')
        unique = list(dict.fromkeys(ids))
        self._store().retry_dead(unique)
        return _json({"retried": len(unique)})


def error_response(exc: QueuectlError) -> Response:
    """The HTTP status that matches the CLI's exit code, with the message."""
    if isinstance(exc, InvalidInput):
        status = 400
    elif isinstance(exc, JobNotFound):
        status = 404
    elif isinstance(exc, WrongState):
        status = 409
    else:
        status = 503  # the database is unavailable or the operation failed
    return _json({"error": str(exc)}, status)


def _listed(job: dict[str, Any]) -> dict[str, Any]:
    """A job as lists show it: the command cut to COMMAND_LISTED characters, with its
    whole length and whether it was cut."""
    command = job["command"]
    job["command"] = command[:COMMAND_LISTED]
    job["command_length"] = len(command)
    job["command_shortened"] = len(command) > COMMAND_LISTED
    return job


def _json(document: Any, status: int = 200) -> Response:
    return JSONResponse(document, status_code=status, headers={"Cache-Control": "no-store"})


def _state(text: str | None) -> JobState | None:
    if text is None:
        return None
    try:
        return JobState(text.lower())
    except ValueError:
        states = ", ".join(state.value for state in JobState)
        raise InvalidInput(f"invalid state {text!r} (choose from {states})") from None


def _int(text: str | None, name: str, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text, 10)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, not {text!r}") from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}")
    return value
