"""The store contract, workers: registration, heartbeats and stop requests, and idle workers
woken by an enqueue.

Run against every backend (tests/contract/helpers.py says how)."""

from __future__ import annotations

import threading
import time

from queuectl.domain import HeartbeatReply
from queuectl.store import Store, open_store
from tests.contract.helpers import LEASE, close_to, no_callback
from tests.helpers import SUCCESS, new_job, wait_until, worker_info
from tests.stores import StoreFactory

# --- workers ----------------------------------------------------------------------------


def test_worker_registration_heartbeat_stop_and_unregister(store: Store) -> None:
    info = worker_info("w1", pid=4321, host="host-a")
    store.register_worker(info)
    (listed,) = store.list_workers()
    assert (listed.id, listed.host, listed.pid) == ("w1", "host-a", 4321)
    assert listed.pid_start_time == info.pid_start_time
    assert listed.started_at == info.started_at
    assert listed.job_id is None
    assert close_to(listed.heartbeat_at, store.now(), 5)

    first_beat = listed.heartbeat_at
    assert store.heartbeat("w1") is HeartbeatReply.CONTINUE
    wait_until(
        lambda: store.heartbeat("w1") and store.list_workers()[0].heartbeat_at > first_beat,
        timeout=5,
        what="the heartbeat to advance",
    )

    store.request_stop(["w1", "no-such-worker"])
    assert store.heartbeat("w1") is HeartbeatReply.STOP
    assert store.heartbeat("w1") is HeartbeatReply.STOP

    store.unregister_worker("w1")
    assert store.list_workers() == []
    assert store.heartbeat("w1") is HeartbeatReply.UNKNOWN
    store.unregister_worker("w1")  # twice is fine

    store.register_worker(worker_info("w1"))
    assert store.heartbeat("w1") is HeartbeatReply.CONTINUE


def test_list_workers_shows_each_workers_current_job(store: Store) -> None:
    store.enqueue([new_job("a"), new_job("b")])
    store.register_worker(worker_info("w1", pid=1))
    store.register_worker(worker_info("w2", pid=2))
    store.register_worker(worker_info("w3", pid=3))
    claim_a = store.claim("w1")
    claim_b = store.claim("w2")
    assert claim_a is not None and claim_b is not None
    current = {w.id: w.job_id for w in store.list_workers()}
    assert current == {"w1": "a", "w2": "b", "w3": None}
    assert store.finish(claim_a, SUCCESS).recorded
    current = {w.id: w.job_id for w in store.list_workers()}
    assert current == {"w1": None, "w2": "b", "w3": None}


def test_request_stop_reaches_only_the_named_workers(store: Store) -> None:
    store.register_worker(worker_info("w1"))
    store.register_worker(worker_info("w2"))
    store.request_stop(["w2"])
    assert store.heartbeat("w1") is HeartbeatReply.CONTINUE
    assert store.heartbeat("w2") is HeartbeatReply.STOP


def test_a_silent_idle_worker_is_dropped_by_recovery(store: Store) -> None:
    store.register_worker(worker_info("idle"))
    wait_until(
        lambda: store.recover_expired(LEASE, no_callback) == [] and store.list_workers() == [],
        timeout=10,
        what="the idle worker to be dropped",
    )
    assert store.heartbeat("idle") is HeartbeatReply.UNKNOWN


# --- waking idle workers -----------------------------------------------------------------


def test_wait_for_jobs_wakes_up_on_an_enqueue(store: Store, store_factory: StoreFactory) -> None:
    store.register_worker(worker_info("w"))

    def produce() -> None:
        # A store belongs to the thread that opened it.
        producer = open_store(store_factory.location)
        try:
            producer.enqueue([new_job("wake")])
        finally:
            producer.close()

    timer = threading.Timer(0.2, produce)
    started = time.monotonic()
    timer.start()
    try:
        store.wait_for_jobs(10, lambda: False)
    finally:
        timer.join()
    assert time.monotonic() - started < 5
    assert store.claim("w") is not None


def test_wait_for_jobs_times_out_and_honours_should_stop(store: Store) -> None:
    started = time.monotonic()
    store.wait_for_jobs(0.2, lambda: False)
    assert 0.15 <= time.monotonic() - started < 5
    started = time.monotonic()
    store.wait_for_jobs(10, lambda: True)
    assert time.monotonic() - started < 2
