"""The worker: claim a job, run it, record the outcome, repeat; stop cleanly on a signal.

The main thread runs jobs. A heartbeat thread, with its own store connection,
renews the worker's lease (so a busy worker keeps it), takes back jobs of
workers that vanished (so recovery needs no separate daemon), and notices a
stop requested through the store (`worker stop --all-hosts`). It beats until
the worker has recorded its last outcome: a worker finishing its job after a
stop request still holds the job's lease. Signal handlers only set flags. A
watchdog process (watchdog.py) ends the running job should the worker die.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import FrameType

from queuectl.domain import (
    Claim,
    FinishedRun,
    HeartbeatReply,
    JobState,
    LostRun,
    RecoveredJob,
    WorkerInfo,
)
from queuectl.errors import QueuectlError
from queuectl.settings import Config
from queuectl.store.base import LostRunFate, Store
from queuectl.worker import procinfo, scratch, watchdog
from queuectl.worker.executor import SLOW_SECONDS, Executor
from queuectl.worker.output import OutputCapture

log = logging.getLogger("queuectl.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# `worker stop --force`: interrupt the running job at once.
FORCE_SIGNAL = signal.SIGUSR1
# Jobs purged per heartbeat tick under the `retention` setting: a short transaction.
_RETENTION_BATCH = 200
# Short jobs never publish live output: the finished run carries it.
_PUBLISH_AFTER_SECONDS = 0.5
# Event.wait() overflows past threading.TIMEOUT_MAX (about 292 years): huge lease_seconds
# and poll_interval settings are valid, so the wait between heartbeats is capped.
_MAX_HEARTBEAT_INTERVAL = 60.0
# While the database fails, the heartbeat thread says so at most this often.
_FAILURE_LOG_SECONDS = 60.0


def host_name() -> str:
    return os.environ.get("QUEUECTL_HOSTNAME") or os.uname().nodename


@dataclass
class StopFlags:
    """Set from signal handlers and the heartbeat thread; read by the main loop."""

    stop: threading.Event = field(default_factory=threading.Event)
    force: threading.Event = field(default_factory=threading.Event)
    # Set once the last outcome is recorded (or cannot be): the heartbeat thread ends.
    exiting: threading.Event = field(default_factory=threading.Event)
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
        self._running: tuple[Claim, float] | None = None  # read by the heartbeat thread
        # Claimed in one go with others and not yet started, and when they were claimed.
        self._held: deque[Claim] = deque()
        self._held_since = 0.0
        # Ended, outcome not yet recorded: the next settle() records them all at once.
        self._finished: list[FinishedRun] = []
        # Jobs to claim while the job now starting runs (0: none; see _settle_while_started).
        self._claim_ahead = 0
        # When the heartbeat thread last renewed the lease (time.monotonic()).
        self._renewed_at = 0.0
        # The store knows that this worker is stopping (see _beat).
        self._stop_published = False
        self._sweeper = scratch.Sweeper(str(scratch_root), worker_id, self.store.description)
        # The heartbeat thread's store: set once it is open (or failed to open, see run()).
        self._heartbeat_opened = threading.Event()
        self._heartbeat_error: BaseException | None = None
        # Set once the worker is registered and its scratch made: the heartbeat loop starts.
        self._heartbeat_go = threading.Event()
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
        # The heartbeat's own connection first, opened in its thread (a store stays in the
        # thread that opened it): a worker that cannot have it (a PostgreSQL server at its
        # connection limit) fails here, unregistered, rather than run jobs with no lease.
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        self._heartbeat_opened.wait()
        if self._heartbeat_error is not None:
            raise self._heartbeat_error
        # Registered before anything is created: a worker that cannot even register
        # (full disk, read-only or corrupt database) leaves no scratch files behind.
        try:
            self.store.register_worker(self.info)
        except BaseException:
            self.flags.stop.set()
            self.flags.exiting.set()
            self._heartbeat_go.set()  # the heartbeat thread ends
            raise
        self._renewed_at = time.monotonic()
        try:
            self._notes = scratch.OwnNotes(str(self.scratch), self.store.description)
            # Kept open for life, never written: its closing is what tells the watchdog.
            watchdog_pipe = watchdog.start(str(self.scratch))
            self.capture = OutputCapture(
                self.scratch / scratch.OUTPUT_FILE, self.store.config().output_limit
            )
            executor = Executor(
                self.scratch, self.capture, self._wakeup_read, self.flags.force.is_set
            )
        except BaseException:
            # No job ran: nothing for a recoverer to read, no registration to leave.
            self.flags.stop.set()
            self.flags.exiting.set()
            self._heartbeat_go.set()
            shutil.rmtree(self.scratch, ignore_errors=True)
            with contextlib.suppress(QueuectlError):
                self.store.unregister_worker(self.id)
            raise
        self._heartbeat_go.set()
        log.info("worker %s started (pid %d, host %s)", self.id, self.info.pid, self.host)
        done = 0
        # Claims per settle(): doubles while jobs end within SLOW_SECONDS, back to 1
        # after a slow one or an idle spell. Long jobs are claimed one at a time, so a
        # job never waits behind another worker's long one.
        batch = 1
        try:
            while not self.flags.stop.is_set():
                if not self._held:
                    self._settle(claim_up_to=batch)
                    if not self._held:
                        if burst:
                            break
                        batch = 1
                        self._idle()
                        continue
                elif not self._lease_fresh():
                    # Frozen or starved past half a lease: the held jobs may have been
                    # taken back by a recoverer. Give them back (fenced) rather than run them.
                    self._settle(claim_up_to=0, release=True)
                    continue
                claim = self._held.popleft()
                following = min(batch * 2, self.store.max_claim_batch)
                # The last held job, after a short one: the next batch is claimed while it
                # runs (the batch it earns if it proves short; given back by
                # _settle_while_running if not). After a slow job (batch 1) the next claim
                # waits for this one to end, or slow jobs would each claim and give back.
                self._claim_ahead = following if not self._held and batch > 1 else 0
                short = self._run_claim(executor, claim)
                done += 1
                batch = following if short else 1
            # Stopping: record what ran, give back what was claimed and not started.
            self._settle(claim_up_to=0, release=True)
        finally:
            self.flags.stop.set()
            # Only now: until the last outcome is recorded the lease must stay ours, or
            # another worker would take the job over (and run it again).
            self.flags.exiting.set()
            heartbeat.join(timeout=5)
            executor.close()
            unrecorded = bool(self._finished or self._held)
            if unrecorded:
                # The database failed before the last outcomes were recorded: the notes in
                # the scratch directory (finished runs, the run started last) are left for
                # the recoverer, which records those outcomes instead of running the jobs
                # again. The registration stays too: its expiry is what starts recovery.
                log.error(
                    "stopping with %d outcome(s) not recorded and %d claimed job(s) not "
                    "given back; the worker that recovers them reads the notes in %s",
                    len(self._finished),
                    len(self._held),
                    self.scratch,
                )
            else:
                shutil.rmtree(self.scratch, ignore_errors=True)
            self._notes.close()
            os.close(watchdog_pipe)
            if not unrecorded:
                # Last: with a failing database this raises, and the scratch is gone already.
                self.store.unregister_worker(self.id)
            log.info("worker %s stopped after %d job(s)", self.id, done)
        return done

    def _lease_fresh(self) -> bool:
        lease = self.store.config().lease_seconds
        return time.monotonic() - self._renewed_at < lease / 2

    def _settle(self, *, claim_up_to: int, release: bool = False) -> None:
        """Record the finished runs, give back the held claims (with `release`), and claim
        up to `claim_up_to` jobs: one transaction."""
        released = list(self._held) if release else []
        if not self._finished and not released and claim_up_to <= 0:
            return  # nothing to record, give back or claim: no transaction
        settled = self.store.settle(self.id, self._finished, released, claim_up_to)
        self._finished = []
        if release:
            self._held.clear()
        self._notes.recorded()
        for lost in settled.discarded:
            log.warning(
                "outcome of job %s run %d discarded: the lease was lost and the job taken over",
                lost.claim.job.id,
                lost.claim.run_no,
            )
        if settled.claims:
            self._held.extend(settled.claims)
            self._held_since = time.monotonic()

    def _settle_while_started(self) -> None:
        """The last held job has started: record what ended and claim the next jobs while
        it runs, so that this transaction does not stand between two jobs. (A store that
        claims one job at a time fuses it with recording, between jobs, instead.)"""
        claim_up_to = self._claim_ahead
        if claim_up_to <= 0:
            return
        if self.flags.stop.is_set() or not self._lease_fresh():
            claim_up_to = 0  # the main loop records and gives back as it stops or waits
        try:
            self._settle(claim_up_to=claim_up_to)
        except QueuectlError as exc:
            log.warning("could not record finished runs while a job runs: %s", exc)

    def _settle_while_running(self) -> None:
        """A job turned out slow: record what is pending and let others have the held
        jobs, rather than keep them waiting for this one."""
        if not self._finished and not self._held:
            return
        try:
            self._settle(claim_up_to=0, release=True)
        except QueuectlError as exc:
            log.warning("could not record finished runs while a job runs: %s", exc)

    def _idle(self) -> None:
        config = self.store.config()
        timeout = config.poll_interval
        next_run = self.store.next_run_at()
        if next_run is not None:
            until_next = (next_run - self.store.now()).total_seconds()
            timeout = max(0.0, min(timeout, until_next))
        self.store.wait_for_jobs(timeout, self.flags.stop.is_set)

    def _run_claim(self, executor: Executor, claim: Claim) -> bool:
        """Run the job and keep its outcome for the next settle(). True if it was short."""
        job = claim.job
        log.debug("run %d of job %s started", claim.run_no, job.id)
        self._notes.starting(claim.run_no, job.id)
        self.capture.limit = self.store.config().output_limit
        started = time.monotonic()
        self._running = (claim, started)
        try:
            outcome = executor.run(
                job, claim.run_no, self._settle_while_running, self._settle_while_started
            )
        finally:
            self._running = None
        ended = time.monotonic()
        output, total = self.capture.snapshot()
        # On the store's clock: the claim's time, moved on by this host's monotonic clock.
        began_at = claim.started_at + timedelta(seconds=max(0.0, started - self._held_since))
        done = FinishedRun(
            claim, outcome, output, total, began_at, began_at + timedelta(seconds=ended - started)
        )
        self._finished.append(done)
        self._notes.finished(done)
        log.debug("run %d of job %s: %s", claim.run_no, job.id, outcome.error or "succeeded")
        return ended - started < SLOW_SECONDS

    # --- heartbeat thread --------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        try:
            store = self._open_store()
        except BaseException as exc:
            self._heartbeat_error = exc  # run() raises it
            return
        finally:
            self._heartbeat_opened.set()
        self._heartbeat_go.wait()
        failing_since: float | None = None
        logged_at = 0.0
        config: Config | None = None
        try:
            while not self.flags.exiting.is_set():
                try:
                    config = store.config()
                    self._beat(store, config)
                    if failing_since is not None:
                        log.info("the database works again")
                    failing_since = None
                except QueuectlError as exc:
                    # The database failed (full disk, deleted, corrupt): one clear line, no
                    # traceback; the worker stops, but this thread goes on trying until it
                    # exits, so that the lease is kept should the database come back.
                    now = time.monotonic()
                    if failing_since is None or now - logged_at >= _FAILURE_LOG_SECONDS:
                        log.error("stopping the worker: %s", exc)
                        logged_at = now
                    if failing_since is None:
                        failing_since = now
                        self.flags.request_stop()
                        self._wake_main_thread()
                interval = (
                    1.0 if config is None else min(config.lease_seconds / 3, config.poll_interval)
                )
                self.flags.exiting.wait(min(max(0.05, interval), _MAX_HEARTBEAT_INTERVAL))
        except Exception:
            log.exception("heartbeat thread failed; stopping the worker")
            self.flags.request_stop()
            self._wake_main_thread()
        finally:
            store.close()

    def _beat(self, store: Store, config: Config) -> None:
        """One heartbeat: renew the lease, act on a stop request, recover lost jobs of
        others, and the housekeeping that rides along."""
        reply = store.heartbeat(self.id)
        if reply is not HeartbeatReply.UNKNOWN:
            self._renewed_at = time.monotonic()
        if reply is HeartbeatReply.UNKNOWN:
            log.warning("registration of worker %s was gone; registering again", self.id)
            store.register_worker(self.info)
        elif reply is HeartbeatReply.STOP and not self.flags.stop.is_set():
            log.info("stop requested through the store")
            self.flags.request_stop()
            self._stop_published = True
            self._wake_main_thread()
        if self.flags.stop.is_set() and not self._stop_published:
            # Stopping on a signal: say so in the store, so that `worker stop` waits for
            # this worker rather than send a second signal, which would interrupt its job.
            store.request_stop([self.id])
            self._stop_published = True
        store.recover_expired(config.lease_seconds, self._end_lost_run)
        for dead in self._sweeper.sweep(lambda: {w.id for w in store.list_workers()}):
            log.warning("ended the leftover processes of dead worker %s", dead)
        store.maintain()
        self._publish_output(store)
        self._apply_retention(store, config.retention)

    def _wake_main_thread(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wakeup_write, b"\0")

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

    def _end_lost_run(self, job: RecoveredJob) -> LostRunFate:
        """Before a lost job runs again, end its processes if they ran on this host, and
        tell from the lost worker's notes whether its run ended or never started. Its
        scratch goes in the sweep, once the worker is dead and unregistered."""
        log.warning("job %s recovered from lost worker %s", job.job_id, job.worker_id)
        if job.worker_host != self.host:
            return LostRun.LOST
        return scratch.lost_run_fate(str(self.scratch.parent), job)
