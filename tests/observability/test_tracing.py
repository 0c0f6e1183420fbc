"""OpenTelemetry: a trace carries from the code that spawns a job into the job's run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from sqlxmq_py import BlockingCurrentJob, CurrentJob, exists, job
from sqlxmq_py.admin import job_status
from sqlxmq_py.hooks import spawn_hooks
from sqlxmq_py.tracing import TracingHooks, inject_trace_context, instrument, uninstrument

from ..helpers import Runner, wait_until


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()


@pytest.fixture
def hooks(provider: TracerProvider) -> Iterator[TracingHooks]:
    """``instrument()`` for this test only."""
    yield instrument(provider)
    uninstrument()


def headers(db: psycopg.Connection[Any], job_id: uuid.UUID) -> dict[str, str] | None:
    row = db.execute("SELECT headers FROM mq_payloads WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def only(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    (span,) = [s for s in spans if s.name == name]
    return span


async def test_job_span_is_a_child_of_the_span_that_spawned_it(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    runner: Runner,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    hooks: TracingHooks,
) -> None:
    tracer = provider.get_tracer("app")

    @job(channel_name="mail")
    async def send_welcome(current_job: CurrentJob) -> None:
        with tracer.start_as_current_span("render template"):
            pass

    with tracer.start_as_current_span("POST /signup", kind=SpanKind.SERVER) as request:
        job_id = send_welcome.builder().set_channel_args("user-7").spawn(conn)
        conn.commit()
    assert set(headers(db, job_id) or {}) >= {"traceparent"}

    async with runner([send_welcome], hooks=[hooks]):
        await wait_until(lambda: not exists(db, job_id))
        await wait_until(lambda: len(exporter.get_finished_spans()) == 3)

    spans = exporter.get_finished_spans()
    request_span = only(spans, "POST /signup")
    job_span = only(spans, f"sqlxmq.job {send_welcome.name}")
    inner = only(spans, "render template")
    assert request_span.context is not None
    assert job_span.context is not None
    assert job_span.context.trace_id == request.get_span_context().trace_id
    assert job_span.parent is not None
    assert job_span.parent.span_id == request_span.context.span_id
    assert inner.parent is not None
    assert inner.parent.span_id == job_span.context.span_id
    assert job_span.kind == SpanKind.CONSUMER
    assert job_span.status.status_code == StatusCode.UNSET
    assert dict(job_span.attributes or {}) == {
        "sqlxmq.job.id": str(job_id),
        "sqlxmq.job.name": send_welcome.name,
        "sqlxmq.job.channel": "mail",
        "sqlxmq.job.channel_args": "user-7",
        "sqlxmq.job.attempt": 1,
        "sqlxmq.job.max_attempts": 5,
        "messaging.system": "sqlxmq",
        "messaging.operation.type": "process",
        "messaging.destination.name": "mail",
        "messaging.message.id": str(job_id),
    }


async def test_failed_attempts_are_error_spans_of_the_same_trace(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    runner: Runner,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    hooks: TracingHooks,
) -> None:
    @job(retries=1, backoff=0)
    async def fragile(current_job: CurrentJob) -> None:
        raise ValueError(f"attempt {current_job.attempt} failed")

    with provider.get_tracer("app").start_as_current_span("nightly batch") as batch:
        job_id = fragile.builder().spawn(conn)
        conn.commit()
    async with runner([fragile], hooks=[hooks]):
        await wait_until(lambda: len(exporter.get_finished_spans()) == 3)
    status = job_status(db, job_id)
    assert status is not None
    assert status.state == "failed"

    attempts = [s for s in exporter.get_finished_spans() if s.name == f"sqlxmq.job {fragile.name}"]
    assert sorted(int(str((s.attributes or {})["sqlxmq.job.attempt"])) for s in attempts) == [1, 2]
    for span in attempts:
        assert span.status.status_code == StatusCode.ERROR
        assert span.context is not None
        assert span.context.trace_id == batch.get_span_context().trace_id
        assert span.parent is not None
        assert span.parent.span_id == batch.get_span_context().span_id
        (event,) = span.events
        assert event.name == "exception"
        assert (event.attributes or {})["exception.type"] == "ValueError"


async def test_thread_jobs_run_inside_their_span(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    runner: Runner,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    hooks: TracingHooks,
) -> None:
    tracer = provider.get_tracer("app")

    @job
    def resize(current_job: BlockingCurrentJob) -> None:
        with tracer.start_as_current_span("resize pixels"):
            pass

    with tracer.start_as_current_span("upload"):
        job_id = resize.builder().spawn(conn)
        conn.commit()
    async with runner([resize], hooks=[hooks]):
        await wait_until(lambda: not exists(db, job_id))
        await wait_until(lambda: len(exporter.get_finished_spans()) == 3)
    spans = exporter.get_finished_spans()
    job_span = only(spans, f"sqlxmq.job {resize.name}")
    inner = only(spans, "resize pixels")
    assert job_span.context is not None
    assert inner.parent is not None
    assert inner.parent.span_id == job_span.context.span_id


async def test_job_spawned_without_a_trace_starts_its_own(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    runner: Runner,
    exporter: InMemorySpanExporter,
    hooks: TracingHooks,
) -> None:
    @job
    async def cleanup(current_job: CurrentJob) -> None: ...

    job_id = cleanup.builder().spawn(conn)  # no span is current
    conn.commit()
    assert headers(db, job_id) is None
    async with runner([cleanup], hooks=[hooks]):
        await wait_until(lambda: len(exporter.get_finished_spans()) == 1)
    (span,) = exporter.get_finished_spans()
    assert span.name == f"sqlxmq.job {cleanup.name}"
    assert span.parent is None


def test_instrument_is_idempotent_and_uninstrument_stops_propagation(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], provider: TracerProvider
) -> None:
    @job
    async def anything(current_job: CurrentJob) -> None: ...

    instrument(provider)
    instrument(provider)
    try:
        assert spawn_hooks().count(inject_trace_context) == 1
    finally:
        uninstrument()
    assert inject_trace_context not in spawn_hooks()
    with provider.get_tracer("app").start_as_current_span("request"):
        job_id = anything.builder().spawn(conn)
    conn.commit()
    assert headers(db, job_id) is None
