"""The database server's clock steps back: a dead worker's job is still recovered in time.

PostgreSQL takes every time from the server's clock (now()). The server's clock
cannot be stepped from a test, so the test leaves what a step back leaves: a
heartbeat written before the step, now in the future by the size of the step.
The SQLite counterpart, with an injected clock, is in tests/reliability/test_clock.py.
"""

from __future__ import annotations

import time

import psycopg

from queuectl.paths import DatabaseLocation
from queuectl.store import open_store
from tests.helpers import new_job, worker_info

LEASE = 1.0
# Scheduling slack on a loaded two-CPU machine.
MARGIN = 2.0


def test_a_heartbeat_ahead_of_a_clock_stepped_back_does_not_strand_a_dead_workers_job(
    postgres_location: DatabaseLocation,
) -> None:
    doomed, rescuer = open_store(postgres_location), open_store(postgres_location)
    try:
        doomed.register_worker(worker_info("w-doomed"))
        doomed.enqueue([new_job("j", max_retries=3)])
        assert doomed.claim("w-doomed") is not None
        doomed.close()  # it dies, and then the server's clock steps back 10 minutes
        assert postgres_location.dsn is not None
        with psycopg.connect(postgres_location.dsn, autocommit=True) as admin:
            admin.execute(
                "UPDATE workers SET heartbeat_at = now() + interval '10 minutes'"
                " WHERE id = 'w-doomed'"
            )

        rescuer.register_worker(worker_info("w-rescuer"))
        began = time.monotonic()
        recovered = []
        while not recovered and time.monotonic() - began < 2 * LEASE + MARGIN:
            rescuer.heartbeat("w-rescuer")  # its heartbeat thread's tick
            recovered = rescuer.recover_expired(LEASE, lambda job: None)
            time.sleep(0.05)
        assert [job.job_id for job in recovered] == ["j"], "stranded until the clock catches up"
        job = rescuer.get_job("j")
        assert job is not None and job.last_error == "worker lost"
        assert "w-doomed" not in {w.id for w in rescuer.list_workers()}
    finally:
        doomed.close()
        rescuer.close()
