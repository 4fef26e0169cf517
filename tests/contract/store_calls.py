"""Every public method of the store, as a list of calls on a prepared queue.

For the tests that must reach every method (a lock held by another session:
test_lock_contract.py, tests/sqlite/test_lock_budget.py). `covered` is checked
against the store interface, so a new method cannot be forgotten here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from queuectl.domain import Claim, JobState
from queuectl.store import Store
from queuectl.store.insights import InsightsStore, with_insights
from tests.helpers import SUCCESS, fail, new_job, worker_info

WORKER = "w-lock"
FINAL = (JobState.COMPLETED, JobState.DEAD)


def interface_methods() -> set[str]:
    """The public methods of the store interface, insights included."""
    return {name for name in dir(InsightsStore) if not name.startswith("_")}


def prepare(store: Store) -> tuple[Claim, Claim]:
    """A registered worker, a dead job, jobs waiting, and two claims held: (to finish,
    to release)."""
    store.set_config("backoff_max", "0.05")
    store.register_worker(worker_info(WORKER))
    store.enqueue([new_job("doomed", max_retries=0, priority=9)])
    doomed = store.claim(WORKER)
    assert doomed is not None and doomed.job.id == "doomed"
    store.finish(doomed, fail())
    store.enqueue([new_job(f"waiting-{n}", priority=5 - n) for n in range(4)])
    to_finish, to_release = store.claim(WORKER), store.claim(WORKER)
    assert to_finish is not None and to_release is not None
    return to_finish, to_release


def every_call(
    store: Store, scratch: Path, held: tuple[Claim, Claim]
) -> list[tuple[str, Callable[[], object]]]:
    """(method name, call) for every method, each call independent of the others' results
    (so each may fail alone); `close` comes last. `held`: prepare's claims."""
    insights = with_insights(store)
    to_finish, to_release = held
    long_ago = store.now() - timedelta(days=1)
    return [
        ("enqueue", lambda: store.enqueue([new_job("added")])),
        ("config", store.config),
        ("stored_config", store.stored_config),
        ("set_config", lambda: store.set_config("max_retries", "4")),
        ("get_job", lambda: store.get_job("doomed")),
        ("get_runs", lambda: store.get_runs("doomed")),
        ("get_output", lambda: store.get_output("doomed")),
        ("list_jobs", store.list_jobs),
        ("job_states", lambda: store.job_states(["doomed", "waiting-0"])),
        ("unfinished_job_ids", store.unfinished_job_ids),
        ("counts", store.counts),
        ("next_run_at", store.next_run_at),
        ("now", store.now),
        ("maintain", store.maintain),
        ("retry_dead", lambda: store.retry_dead(["doomed"])),
        ("retry_all_dead", store.retry_all_dead),
        ("purgeable_counts", lambda: store.purgeable_counts(FINAL, long_ago)),
        ("purge", lambda: store.purge(FINAL, long_ago, 10)),
        ("reclaim_space", store.reclaim_space),
        ("backup", lambda: store.backup(str(scratch / "backup.db"))),
        ("diagnostics", store.diagnostics),
        ("heartbeat", lambda: store.heartbeat(WORKER)),
        ("request_stop", lambda: store.request_stop(["w-nobody"])),
        ("list_workers", store.list_workers),
        ("wait_for_jobs", lambda: store.wait_for_jobs(0.01, lambda: False)),
        ("claim", lambda: store.claim(WORKER)),
        ("publish_output", lambda: store.publish_output(to_finish, b"out", 3)),
        ("finish", lambda: store.finish(to_finish, SUCCESS)),
        ("release", lambda: store.release(to_release)),
        ("settle", lambda: store.settle(WORKER, [], [], 1)),
        ("recover_expired", lambda: store.recover_expired(3600, lambda _job: None)),
        ("stats", lambda: insights.stats(600)),
        ("run_totals", insights.run_totals),
        ("oldest_pending_age", insights.oldest_pending_age),
        ("search_jobs", lambda: insights.search_jobs(text="waiting")),
        ("unregister_worker", lambda: store.unregister_worker(WORKER)),
        ("register_worker", lambda: store.register_worker(worker_info(WORKER))),
        ("close", store.close),
    ]
