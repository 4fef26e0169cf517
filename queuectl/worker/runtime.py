"""The worker: claim a job, run it, record the outcome, repeat; stop cleanly on a signal.

The main thread runs jobs. A heartbeat thread, with its own store connection,
renews the worker's lease (so a busy worker keeps it), takes back jobs of
workers that vanished (so recovery needs no separate daemon), and notices a
stop requested through the store (`worker stop --all-hosts`). Signal handlers
only set flags.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import FrameType

from queuectl.domain import Claim, HeartbeatReply, JobState, RecoveredJob, WorkerInfo
from queuectl.errors import QueuectlError
from queuectl.store.base import Store
from queuectl.worker import procinfo
from queuectl.worker.executor import Executor
from queuectl.worker.output import OutputCapture

log = logging.getLogger("queuectl.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# `worker stop --force`: interrupt the running job at once.
FORCE_SIGNAL = signal.SIGUSR1
# In the worker's scratch directory: "RUN PID JOB_ID" of the job process running now.
RUN_FILE = "current-run"
# Also there: which database the worker serves (one QUEUECTL_HOME may serve several).
DATABASE_FILE = "database"
# Jobs purged per heartbeat tick under the `retention` setting: a short transaction.
_RETENTION_BATCH = 200
# Short jobs never publish live output: the finished run carries it.
_PUBLISH_AFTER_SECONDS = 0.5
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Event.wait() overflows past threading.TIMEOUT_MAX (about 292 years): huge lease_seconds
# and poll_interval settings are valid, so the wait between heartbeats is capped.
_MAX_HEARTBEAT_INTERVAL = 60.0


def host_name() -> str:
    return os.environ.get("QUEUECTL_HOSTNAME") or os.uname().nodename


@dataclass
class StopFlags:
    """Set from signal handlers and the heartbeat thread; read by the main loop."""

    stop: threading.Event = field(default_factory=threading.Event)
    force: threading.Event = field(default_factory=threading.Event)
    stop_signals: int = 0

    def on_stop_signal(self) -> None:
        """SIGTERM/SIGINT/SIGHUP: the first stops gracefully, a second interrupts the job."""
        self.stop_signals += 1
        if self.stop_signals > 1:
            self.force.set()
        self.stop.set()

    def request_stop(self) -> None:
        """A graceful stop from elsewhere (the store's flag): never escalates to force,
        so `worker stop`, which both sets the flag and signals, stops gracefully."""
        self.stop.set()


class Worker:
    def __init__(
        self,
        open_store: Callable[[], Store],
        worker_id: str,
        scratch_root: Path,
    ) -> None:
        self.id = worker_id
        self.host = host_name()
        self._open_store = open_store
        self.store = open_store()
        self.flags = StopFlags()
        self.scratch = scratch_root / worker_id
        self._run_file = -1
        self._running: tuple[Claim, float] | None = None  # read by the heartbeat thread
        self._wakeup_read, self._wakeup_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        pid = os.getpid()
        self.info = WorkerInfo(
            id=worker_id,
            host=self.host,
            pid=pid,
            pid_start_time=procinfo.start_time(pid) or 0,
            started_at=self.store.now(),
            heartbeat_at=self.store.now(),
        )

    # --- signals ------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            self.flags.on_stop_signal()

        def on_force(signum: int, _frame: FrameType | None) -> None:
            self.flags.stop.set()
            self.flags.force.set()

        for signum in STOP_SIGNALS:
            signal.signal(signum, on_stop)
        signal.signal(FORCE_SIGNAL, on_force)
        # Any signal also writes a byte here, waking the wait on a running job.
        signal.set_wakeup_fd(self._wakeup_write, warn_on_full_buffer=False)

    # --- main loop -----------------------------------------------------------------
    def run(self, *, burst: bool = False) -> int:
        """Work until stopped (or, with burst, until nothing is runnable). Returns jobs run."""
        # Registered before anything is created: a worker that cannot even register
        # (full disk, read-only or corrupt database) leaves no scratch files behind.
        self.store.register_worker(self.info)
        self.scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.scratch / DATABASE_FILE).write_text(self.store.description)
        self.capture = OutputCapture(self.scratch / "output", self.store.config().output_limit)
        executor = Executor(self.scratch, self.capture, self._wakeup_read, self.flags.force.is_set)
        self._run_file = os.open(
            self.scratch / RUN_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        # Held for life, frozen or not: no other worker sweeps this scratch away.
        fcntl.flock(self._run_file, fcntl.LOCK_EX)
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        log.info("worker %s started (pid %d, host %s)", self.id, self.info.pid, self.host)
        done = 0
        claim: Claim | None = None
        try:
            while not self.flags.stop.is_set():
                if claim is None:
                    claim = self.store.claim(self.id)
                if claim is None:
                    if burst:
                        break
                    self._idle()
                    continue
                claim = self._run_claim(executor, claim)
                done += 1
            if claim is not None:
                # Claimed together with the last outcome, just as the stop came: not started.
                self.store.release(claim)
        finally:
            self.flags.stop.set()
            heartbeat.join(timeout=5)
            os.close(self._run_file)
            shutil.rmtree(self.scratch, ignore_errors=True)
            # Last: with a failing database this raises, and the scratch is gone already.
            self.store.unregister_worker(self.id)
            log.info("worker %s stopped after %d job(s)", self.id, done)
        return done

    def _idle(self) -> None:
        config = self.store.config()
        timeout = config.poll_interval
        next_run = self.store.next_run_at()
        if next_run is not None:
            until_next = (next_run - self.store.now()).total_seconds()
            timeout = max(0.0, min(timeout, until_next))
        self.store.wait_for_jobs(timeout, self.flags.stop.is_set)

    def _run_claim(self, executor: Executor, claim: Claim) -> Claim | None:
        """Run the job, record its outcome and, unless stopping, claim the next one."""
        job = claim.job
        log.debug("run %d of job %s started", claim.run_no, job.id)

        def on_started(pid: int) -> None:
            # A local note, not a database write: only a recoverer on this host can use it.
            note = f"{claim.run_no} {pid} {job.id}".encode()
            os.pwrite(self._run_file, note, 0)
            os.ftruncate(self._run_file, len(note))

        self.capture.limit = self.store.config().output_limit
        self._running = (claim, time.monotonic())
        try:
            outcome = executor.run(job, claim.run_no, on_started)
        finally:
            self._running = None
        output, total = self.capture.snapshot()
        result = self.store.finish(
            claim, outcome, output, total, claim_next=not self.flags.stop.is_set()
        )
        if not result.recorded:
            log.warning(
                "outcome of job %s run %d discarded: the lease was lost and the job taken over",
                job.id,
                claim.run_no,
            )
        else:
            log.debug("run %d of job %s: %s", claim.run_no, job.id, outcome.error or "succeeded")
        return result.next_claim

    # --- heartbeat thread --------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        store = self._open_store()
        try:
            while not self.flags.stop.is_set():
                config = store.config()
                reply = store.heartbeat(self.id)
                if reply is HeartbeatReply.UNKNOWN:
                    log.warning("registration of worker %s was gone; registering again", self.id)
                    store.register_worker(self.info)
                elif reply is HeartbeatReply.STOP:
                    log.info("stop requested through the store")
                    self.flags.request_stop()
                    os.write(self._wakeup_write, b"\0")
                    break
                store.recover_expired(config.lease_seconds, self._end_lost_run)
                self._sweep_scratch(store)
                store.maintain()
                self._publish_output(store)
                self._apply_retention(store, config.retention)
                interval = min(config.lease_seconds / 3, config.poll_interval)
                self.flags.stop.wait(min(max(0.05, interval), _MAX_HEARTBEAT_INTERVAL))
        except QueuectlError as exc:
            # The database failed (full disk, deleted, corrupt): one clear line, no traceback.
            log.error("stopping the worker: %s", exc)
            self.flags.request_stop()
        except Exception:
            log.exception("heartbeat thread failed; stopping the worker")
            self.flags.request_stop()
        finally:
            store.close()

    def _apply_retention(self, store: Store, retention: float) -> None:
        """With the `retention` setting, purge one small batch of old finished jobs a tick."""
        if retention <= 0:
            return
        before = store.now() - timedelta(seconds=retention)
        if store.purge((JobState.COMPLETED, JobState.DEAD), before, _RETENTION_BATCH):
            store.reclaim_space(max_pages=_RETENTION_BATCH)

    def _publish_output(self, store: Store) -> None:
        """Share the output of a job running for a while, for `logs --follow` on any host."""
        running = self._running
        if running is None or time.monotonic() - running[1] < _PUBLISH_AFTER_SECONDS:
            return
        snapshot = self.capture.changed_since_publish()
        if snapshot is not None:
            store.publish_output(running[0], *snapshot)

    def _sweep_scratch(self, store: Store) -> None:
        """Remove the scratch of workers that died, once recovered (a worker killed while
        idle has no job whose recovery would remove it). A live worker, even one frozen
        past its lease, holds the flock on its run file; a dead one still registered may
        yet be recovered, which reads that file. Workers register before they create
        their scratch, so a starting worker is never mistaken for a dead one. Only workers
        of this database: another's may still need its files for its own recovery."""
        registered: set[str] | None = None
        for entry in os.scandir(self.scratch.parent):
            if entry.name == self.id:
                continue
            try:
                fd = os.open(os.path.join(entry.path, RUN_FILE), os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # alive
            finally:
                os.close(fd)
            try:
                if Path(entry.path, DATABASE_FILE).read_text() != store.description:
                    continue
            except OSError:
                continue
            if registered is None:
                registered = {worker.id for worker in store.list_workers()}
            if entry.name not in registered:
                shutil.rmtree(entry.path, ignore_errors=True)

    def _end_lost_run(self, job: RecoveredJob) -> None:
        """Before a lost job runs again, end its processes if they ran on this host."""
        log.warning("job %s recovered from lost worker %s", job.job_id, job.worker_id)
        if (
            job.worker_host != self.host
            or not job.worker_id
            or not _SAFE_ID.fullmatch(job.worker_id)
        ):
            return
        lost_scratch = self.scratch.parent / job.worker_id
        leader: int | None = None
        try:
            run_no, pid, job_id = (lost_scratch / RUN_FILE).read_text().split(" ", 2)
            if job_id == job.job_id and int(run_no) == job.run_no:
                leader = int(pid)
        except (OSError, ValueError):
            pass
        if leader is None:
            # It died between starting this run and noting its pid (or before starting it).
            leader = procinfo.find_run_leader(lost_scratch / "output", job.job_id, job.run_no)
        if leader is not None and procinfo.kill_job_group(leader, job.job_id, job.run_no):
            log.warning("ended the leftover processes of job %s", job.job_id)
        # A worker frozen past its lease is alive and will carry on: keep its files.
        if job.worker_pid is None or not procinfo.is_alive(
            job.worker_pid, job.worker_pid_start_time or 0
        ):
            shutil.rmtree(lost_scratch, ignore_errors=True)
