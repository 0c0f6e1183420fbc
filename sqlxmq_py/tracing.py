"""OpenTelemetry tracing: a job's run is a span in the trace that spawned it.

Needs the optional ``opentelemetry-api`` (``pip install 'sqlxmq_py[otel]'``); exporting spans
needs an SDK configured by the application, as usual with OpenTelemetry.

:func:`instrument` installs a spawn hook that writes the current trace context into every
spawned job's headers (W3C ``traceparent`` and ``tracestate``, plus ``baggage``: whatever the
global propagator writes), and returns :class:`TracingHooks`, to give to the runner: each
attempt then runs inside a span ``sqlxmq.job <name>``, a child of the span that was current
when the job was spawned (e.g. the HTTP request's).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

try:
    from opentelemetry import propagate, trace
    from opentelemetry.context import Context
    from opentelemetry.trace import SpanKind
except ImportError as exc:  # pragma: no cover - exercised with the module hidden
    raise ImportError(
        "sqlxmq_py.tracing needs opentelemetry-api: pip install 'sqlxmq_py[otel]'"
    ) from exc

from . import __version__
from .hooks import RunnerHooks, add_spawn_hook, remove_spawn_hook

if TYPE_CHECKING:
    from .builder import JobBuilder
    from .current_job import JobInfo

__all__ = ["TracingHooks", "inject_trace_context", "instrument", "uninstrument"]

_lock = threading.Lock()
_installed = False


def inject_trace_context(builder: JobBuilder) -> None:
    """The spawn hook: sets the current trace context as the job's headers (nothing when no
    span is current)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    for name, value in carrier.items():
        builder.set_header(name, value)


def instrument(tracer_provider: trace.TracerProvider | None = None) -> TracingHooks:
    """Propagates the trace context of every spawn from now on (idempotent), and returns the
    runner hooks that continue the trace when the job runs.

    Args:
        tracer_provider: where job spans go (default: the global tracer provider).
    """
    global _installed
    with _lock:
        if not _installed:
            add_spawn_hook(inject_trace_context)
            _installed = True
    return TracingHooks(tracer_provider)


def uninstrument() -> None:
    """Stops propagating the trace context of spawns."""
    global _installed
    with _lock:
        if _installed:
            remove_spawn_hook(inject_trace_context)
            _installed = False


class TracingHooks(RunnerHooks):
    """Runs every job attempt inside a span, continuing the trace its spawn carried.

    The span is named ``sqlxmq.job <job name>``, of kind CONSUMER, with attributes
    ``sqlxmq.job.id``, ``sqlxmq.job.name``, ``sqlxmq.job.channel``, ``sqlxmq.job.attempt``,
    ``sqlxmq.job.max_attempts`` (and ``messaging.system``, ``messaging.operation.type``,
    ``messaging.destination.name``, ``messaging.message.id``). An attempt that raises records
    the exception and sets the span's status to ERROR. A job spawned without a trace context
    starts a new trace. Spans made inside the job, thread jobs included, are its children.
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        """Makes spans with ``tracer_provider`` (default: the global tracer provider)."""
        self._tracer = trace.get_tracer("sqlxmq_py", __version__, tracer_provider=tracer_provider)

    @contextlib.contextmanager
    def running(self, job: JobInfo) -> Iterator[None]:
        """The job attempt's span, current while the job function runs."""
        parent = propagate.extract(job.headers, context=Context())
        attributes: dict[str, str | int] = {
            "sqlxmq.job.id": str(job.id),
            "sqlxmq.job.name": job.name,
            "sqlxmq.job.channel": job.channel_name,
            "sqlxmq.job.attempt": job.attempt,
            "sqlxmq.job.max_attempts": job.max_attempts,
            "messaging.system": "sqlxmq",
            "messaging.operation.type": "process",
            "messaging.destination.name": job.channel_name,
            "messaging.message.id": str(job.id),
        }
        if job.channel_args:
            attributes["sqlxmq.job.channel_args"] = job.channel_args
        with self._tracer.start_as_current_span(
            f"sqlxmq.job {job.name}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=True,
            set_status_on_exception=True,
        ):
            yield
