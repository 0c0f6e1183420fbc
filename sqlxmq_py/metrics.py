"""Prometheus metrics: runner hooks that count jobs, and a collector that reads queue depth.

Needs the optional ``prometheus_client`` (``pip install 'sqlxmq_py[metrics]'``).

- :class:`PrometheusHooks` (give it to ``JobRunnerOptions.set_hooks``) counts jobs started and
  finished per job name, channel and outcome, times them, and counts lease renewals.
- :class:`QueueCollector` reads :func:`~sqlxmq_py.admin.queue_counts` and the blocked ordered chains
  at every scrape, on a short-lived connection: queue depth per channel and state, and the age
  of the oldest ready job.
- :func:`metrics_registry` combines both; :func:`metrics_asgi_app` serves them over ASGI (the
  dashboard mounts it at ``/metrics``), and ``sqlxmq worker --metrics-port`` over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.metrics_core import GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised with the module hidden
    raise ImportError(
        "sqlxmq_py.metrics needs prometheus_client: pip install 'sqlxmq_py[metrics]'"
    ) from exc

import psycopg

from ._logging import logger, redact_conninfo
from .admin import blocked_chains, queue_counts
from .hooks import JobOutcome, RunnerHooks
from .sql import query

if TYPE_CHECKING:
    from .current_job import JobInfo

__all__ = [
    "DURATION_BUCKETS",
    "QUEUE_STATES",
    "ASGIApp",
    "PrometheusHooks",
    "QueueCollector",
    "metrics_asgi_app",
    "metrics_registry",
]

DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0, 1800.0, 3600.0,
)  # fmt: skip
"""Buckets of ``sqlxmq_job_duration_seconds``: from 5 ms to an hour."""

QUEUE_STATES = ("uncommitted", "scheduled", "waiting", "ready", "running", "failed")
"""The states ``sqlxmq_queue_jobs`` reports for every channel (0 when none)."""

_JOB_LABELS = ("job_name", "channel")

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class _JobMetrics:
    started: Counter
    finished: dict[str, Counter]
    duration: Histogram
    running: Gauge
    polls: Counter
    leased: Counter
    renewals: Counter


_registered: weakref.WeakKeyDictionary[CollectorRegistry, _JobMetrics] = weakref.WeakKeyDictionary()
_registered_lock = threading.Lock()

_OUTCOME_COUNTERS: dict[str, tuple[str, str]] = {
    "completed": ("sqlxmq_jobs_completed", "Jobs completed"),
    "failed": ("sqlxmq_jobs_failed", "Jobs failed for good (no attempts left)"),
    "retrying": ("sqlxmq_jobs_retried", "Attempts that failed with a retry to come"),
    "cancelled": ("sqlxmq_jobs_cancelled", "Jobs cancelled while running"),
    "lease_lost": ("sqlxmq_jobs_lease_lost", "Attempts whose lease passed to another runner"),
    "interrupted": (
        "sqlxmq_jobs_interrupted",
        "Attempts handed back unfinished when a runner stopped (not counted as attempts)",
    ),
    "abandoned": (
        "sqlxmq_jobs_abandoned",
        "Jobs that returned without completing (auto_complete=False)",
    ),
}


def _job_metrics(registry: CollectorRegistry) -> _JobMetrics:
    """The job metrics registered in ``registry`` (created once per registry, so that any
    number of hooks can share it)."""
    with _registered_lock:
        found = _registered.get(registry)
        if found is not None:
            return found
        metrics = _JobMetrics(
            started=Counter(
                "sqlxmq_jobs_started", "Job attempts started", _JOB_LABELS, registry=registry
            ),
            finished={
                outcome: Counter(name, doc, _JOB_LABELS, registry=registry)
                for outcome, (name, doc) in _OUTCOME_COUNTERS.items()
            },
            duration=Histogram(
                "sqlxmq_job_duration_seconds",
                "How long job attempts ran, by outcome",
                (*_JOB_LABELS, "outcome"),
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
            running=Gauge(
                "sqlxmq_jobs_running", "Job functions running now", _JOB_LABELS, registry=registry
            ),
            polls=Counter("sqlxmq_runner_polls", "Polls for ready jobs", registry=registry),
            leased=Counter("sqlxmq_runner_jobs_leased", "Jobs leased by polls", registry=registry),
            renewals=Counter(
                "sqlxmq_lease_renewals",
                "Leases renewed by the lease keeper (result=renewed), or found lost (result=lost)",
                ("result",),
                registry=registry,
            ),
        )
        _registered[registry] = metrics
        return metrics


class PrometheusHooks(RunnerHooks):
    """Runner hooks that export job metrics to Prometheus.

    Counters (labels ``job_name``, ``channel``): ``sqlxmq_jobs_started_total``,
    ``sqlxmq_jobs_completed_total``, ``sqlxmq_jobs_failed_total`` (final failures),
    ``sqlxmq_jobs_retried_total``, ``sqlxmq_jobs_cancelled_total``,
    ``sqlxmq_jobs_lease_lost_total``, ``sqlxmq_jobs_interrupted_total``,
    ``sqlxmq_jobs_abandoned_total``; the histogram ``sqlxmq_job_duration_seconds`` (plus label
    ``outcome``); the gauge ``sqlxmq_jobs_running``; and ``sqlxmq_runner_polls_total``,
    ``sqlxmq_runner_jobs_leased_total``, ``sqlxmq_lease_renewals_total{result}``.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Registers the metrics in ``registry`` (default: prometheus_client's global
        ``REGISTRY``); hooks given the same registry share its metrics."""
        self.registry = REGISTRY if registry is None else registry
        self._m = _job_metrics(self.registry)

    def polled(self, leased: int, wanted: int) -> None:
        """Counts the poll and the jobs it leased."""
        self._m.polls.inc()
        if leased:
            self._m.leased.inc(leased)

    def job_started(self, job: JobInfo) -> None:
        """Counts the attempt."""
        self._m.started.labels(job.name, job.channel_name).inc()

    @contextlib.contextmanager
    def running(self, job: JobInfo) -> Iterator[None]:
        """Counts the job function as running while it runs."""
        gauge = self._m.running.labels(job.name, job.channel_name)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def job_finished(self, job: JobInfo, outcome: JobOutcome, duration_s: float | None) -> None:
        """Counts the outcome and observes the duration."""
        counter = self._m.finished.get(outcome)
        if counter is not None:
            counter.labels(job.name, job.channel_name).inc()
        if duration_s is not None:
            self._m.duration.labels(job.name, job.channel_name, outcome).observe(duration_s)

    def leases_renewed(self, renewed: int, lost: int) -> None:
        """Counts renewed and lost leases."""
        if renewed:
            self._m.renewals.labels("renewed").inc(renewed)
        if lost:
            self._m.renewals.labels("lost").inc(lost)


class QueueCollector(Collector):
    """Reads the queue at every scrape, on a short-lived connection of its own.

    Gauges: ``sqlxmq_queue_jobs{channel,state}`` (every state of :data:`QUEUE_STATES` for each
    channel that has jobs), ``sqlxmq_queue_oldest_ready_age_seconds{channel}`` (0 when none is
    ready), ``sqlxmq_queue_blocked_chains{channel}`` (ordered chains stopped by a failed head),
    ``sqlxmq_queue_up`` (1 if the queue could be read, else 0) and
    ``sqlxmq_queue_scrape_duration_seconds``. A database that cannot be reached makes
    ``sqlxmq_queue_up`` 0, not a failed scrape.
    """

    def __init__(self, conninfo: str, *, timeout: float = 5.0) -> None:
        """Reads the database of ``conninfo``, giving up after ``timeout`` seconds."""
        self._conninfo = conninfo
        self._timeout = timeout

    def _families(self) -> dict[str, GaugeMetricFamily]:
        return {
            "jobs": GaugeMetricFamily(
                "sqlxmq_queue_jobs",
                "Jobs in the queue per channel and state",
                labels=["channel", "state"],
            ),
            "age": GaugeMetricFamily(
                "sqlxmq_queue_oldest_ready_age_seconds",
                "How long the oldest ready job of the channel has waited to run",
                labels=["channel"],
            ),
            "blocked": GaugeMetricFamily(
                "sqlxmq_queue_blocked_chains",
                "Ordered chains stopped by a failed head (retry or cancel the head)",
                labels=["channel"],
            ),
            "up": GaugeMetricFamily(
                "sqlxmq_queue_up", "1 if the last scrape could read the queue, else 0"
            ),
            "duration": GaugeMetricFamily(
                "sqlxmq_queue_scrape_duration_seconds", "How long reading the queue took"
            ),
        }

    def describe(self) -> Iterable[Metric]:
        """The metric families, without reading the database."""
        return list(self._families().values())

    def _read(self) -> tuple[dict[tuple[str, str], int], dict[str, float], dict[str, int]]:
        deadline = max(1, round(self._timeout))
        with (
            psycopg.connect(self._conninfo, connect_timeout=deadline) as conn,
            conn.transaction(),
        ):
            # transaction-local: behind a pooler, the server session goes back without it
            conn.execute(
                query("set_statement_timeout"), {"milliseconds": str(int(self._timeout * 1000))}
            )
            counts: dict[tuple[str, str], int] = {}
            ages: dict[str, float] = {}
            for c in queue_counts(conn):
                key = (c.channel_name, c.state)
                counts[key] = counts.get(key, 0) + c.count
                if c.oldest_ready_age_s is not None:
                    ages[c.channel_name] = max(ages.get(c.channel_name, 0.0), c.oldest_ready_age_s)
            blocked: dict[str, int] = {}
            for chain in blocked_chains(conn):
                blocked[chain.channel_name] = blocked.get(chain.channel_name, 0) + 1
        return counts, ages, blocked

    def collect(self) -> Iterable[Metric]:
        """Reads the queue and returns its gauges."""
        families = self._families()
        started = time.monotonic()
        try:
            counts, ages, blocked = self._read()
        except Exception as exc:
            logger.warning(
                "queue_metrics_failed",
                database=redact_conninfo(self._conninfo),
                error=f"{type(exc).__name__}: {str(exc).strip()}",
            )
            families["up"].add_metric([], 0)
        else:
            families["up"].add_metric([], 1)
            channels = sorted({channel for channel, _ in counts} | set(blocked))
            for channel in channels:
                states = [
                    *QUEUE_STATES,
                    *(s for c, s in counts if c == channel and s not in QUEUE_STATES),
                ]
                for state in dict.fromkeys(states):
                    families["jobs"].add_metric([channel, state], counts.get((channel, state), 0))
                families["age"].add_metric([channel], ages.get(channel, 0.0))
                families["blocked"].add_metric([channel], blocked.get(channel, 0))
        families["duration"].add_metric([], time.monotonic() - started)
        return list(families.values())


class _Forward(Collector):
    """Exposes another registry's metrics inside a combined registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self._source = source

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        return self._source.collect()


def metrics_registry(
    conninfo: str, *, registry: CollectorRegistry | None = None
) -> CollectorRegistry:
    """A registry with the queue metrics of ``conninfo`` and every metric of ``registry``
    (default: prometheus_client's global ``REGISTRY``, where :class:`PrometheusHooks` and the
    process metrics are unless told otherwise)."""
    combined = CollectorRegistry()
    combined.register(QueueCollector(conninfo))
    combined.register(_Forward(REGISTRY if registry is None else registry))
    return combined


def metrics_asgi_app(conninfo: str, *, registry: CollectorRegistry | None = None) -> ASGIApp:
    """An ASGI app that serves :func:`metrics_registry` in the Prometheus text format (or
    OpenMetrics, when the scraper asks for it) on GET at any path. Add it as a route
    (``app.add_route("/metrics", metrics_asgi_app(dsn))``, or Starlette's
    ``Route("/metrics", ...)``) or mount it. The database is read in a worker thread, so the
    event loop never waits on it."""
    return _MetricsApp(metrics_registry(conninfo, registry=registry))


class _MetricsApp:
    """The ASGI app of :func:`metrics_asgi_app`: an object, not a function, so that Starlette
    routes hand it raw ASGI calls."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(
                send, 405, b"method not allowed\n", b"text/plain", [(b"allow", b"GET, HEAD")]
            )
            return
        accept = ""
        for name, value in scope.get("headers", []):
            if name.lower() == b"accept":
                accept = value.decode("latin-1")
        encoder, content_type = choose_encoder(accept)
        body = await asyncio.to_thread(encoder, self._registry)
        await _respond(
            send,
            200,
            b"" if scope["method"] == "HEAD" else body,
            content_type.encode(),
            [],
            length=len(body),
        )


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: list[tuple[bytes, bytes]],
    *,
    length: int | None = None,
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body) if length is None else length).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
