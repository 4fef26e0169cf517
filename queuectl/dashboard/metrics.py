"""/metrics in the Prometheus text format, read from the store on every scrape.

A custom collector rather than counters kept in this process: the numbers belong
to the queue (every worker on every host), and the store's all-time totals
never decrease, so restarting the dashboard never resets a counter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from queuectl.domain import JobState
from queuectl.store.insights import InsightsStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class QueueCollector(Collector):
    """Jobs by state, run counters, the run duration histogram, workers, queue latency."""

    def __init__(self, store: Callable[[], InsightsStore]) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        store = self._store()
        counts = store.counts()
        totals = store.run_totals()
        oldest = store.oldest_pending_age()
        now = store.now()
        lease = store.config().lease_seconds
        live = [w for w in store.list_workers() if (now - w.heartbeat_at).total_seconds() < lease]

        jobs = GaugeMetricFamily("queuectl_jobs", "Jobs in each state now.", labels=["state"])
        for state in JobState:
            jobs.add_metric([state.value], counts[state])
        yield jobs

        # Counters from the store's all-time totals: they never decrease, even when jobs
        # are purged.
        for name, documentation, value in (
            ("queuectl_jobs_completed", "Jobs completed (successful runs).", totals.completed),
            (
                "queuectl_runs_failed",
                "Failed runs: non-zero exit, signal, timeout, interrupted, worker lost.",
                totals.failed,
            ),
            (
                "queuectl_job_retries",
                "Failed runs after which the job was retried.",
                totals.retries,
            ),
            (
                "queuectl_jobs_dead_lettered",
                "Failed runs that moved their job to the DLQ.",
                totals.dead_lettered,
            ),
        ):
            yield CounterMetricFamily(name, documentation, value=value)

        durations = totals.durations
        yield HistogramMetricFamily(
            "queuectl_job_duration_seconds",
            "How long finished runs took, successful or not.",
            buckets=[(_bound(le), count) for le, count in durations.cumulative()],
            sum_value=durations.sum_seconds,
        )
        yield GaugeMetricFamily("queuectl_workers", "Live workers.", value=len(live))
        yield GaugeMetricFamily(
            "queuectl_oldest_pending_age_seconds",
            "How long the longest-waiting runnable job has waited (0 when none waits).",
            value=oldest or 0.0,
        )


def _bound(value: float) -> str:
    return "+Inf" if math.isinf(value) else repr(value)


class Metrics:
    """The /metrics endpoint: one registry holding only the queue's collector."""

    def __init__(self, store: Callable[[], InsightsStore]) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(QueueCollector(store))

    def endpoint(self, request: Request) -> Response:
        return Response(
            generate_latest(self._registry),
            media_type=CONTENT_TYPE,
            headers={"Cache-Control": "no-store"},
        )
